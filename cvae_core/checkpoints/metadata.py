"""What a checkpoint's JSON says, typed: parsed once when the checkpoint is read, with a clear
``CheckpointError`` naming the field when the file is malformed.

The JSON file is kept as written (``CheckpointMeta.raw``): unknown keys are allowed, so files
written by older or newer code still load, and ``update_metadata`` merges into the raw mapping.
The parts the code reads are dataclasses: the model config, the training record with its
per-epoch history, the evaluation written by ``cvae_core.evaluate``, the provenance, and the
optional recognition settings, robustness results and role.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from cvae_core.calibration import Calibration
from cvae_core.config import ModelConfig

ROLES = ("paper", "recogniser", "reference", "variant")


class CheckpointError(RuntimeError):
    """A checkpoint is missing, damaged, or does not match its own description."""


class _Malformed(ValueError):
    """A field of the metadata has the wrong type; ``parse_meta`` turns it into a CheckpointError."""


@dataclass(frozen=True)
class Losses:
    """Test-set loss in nats per image: the negative ELBO and its two parts."""

    loss: float
    recon: float | None = None
    kl: float | None = None


@dataclass(frozen=True)
class Training:
    """The run that produced the weights (``cvae_core.train``)."""

    command: str | None = None
    train_config: Mapping[str, Any] = field(default_factory=dict)  # TrainConfig as recorded then
    history: tuple[Mapping[str, float], ...] = ()  # one row per epoch: epoch, lr, train_/val_/test_ losses
    num_params: int | None = None
    train_size: int | None = None
    val_size: int | None = None
    best_epoch: int | None = None
    epochs_run: int | None = None
    seconds: float | None = None
    test: Losses | None = None  # at the end of training, on the whole test set
    interrupted: bool = False
    init: Mapping[str, Any] | None = None  # the checkpoint it was fine-tuned from

    @property
    def epochs(self) -> int | None:
        return self.epochs_run or len(self.history) or None

    @property
    def disc_weight(self) -> float:
        """Weight of the class-posterior term (hybrid training); 0 for the paper's plain models."""
        value = self.train_config.get("disc_weight") or 0
        return float(value) if isinstance(value, int | float) else 0.0


@dataclass(frozen=True)
class Evaluation:
    """What ``python -m cvae_core.evaluate`` recorded; every figure may be missing in a partial record."""

    n: int | None = None
    k: int | None = None
    seed: int | None = None
    test_loss: float | None = None
    recon: float | None = None
    kl: float | None = None
    accuracy: float | None = None
    noise: tuple[Mapping[str, float], ...] = ()  # per sigma: sigma, loss, recon, kl, accuracy
    confusion: tuple[tuple[int, ...], ...] | None = None  # rows true labels, columns recognised
    ood_threshold: float | None = None
    command: str | None = None
    created: str | None = None
    code_version: str | None = None


@dataclass(frozen=True)
class Provenance:
    code_version: str | None = None
    torch_version: str | None = None
    device: str | None = None
    created: str | None = None
    data_sha256: Mapping[str, str] = field(default_factory=dict)
    note: str | None = None  # ``provenance_note``: written by a person


@dataclass(frozen=True)
class RecognitionSettings:
    """How the model is used as a recogniser, fitted after training by ``cvae_core.robustness``:
    its calibration (``cvae_core.calibration.Calibration``) and the command that fitted it."""

    calibration: Calibration
    command: str
    created: str

    @property
    def k(self) -> int:
        return self.calibration.k

    @property
    def temperature(self) -> float:
        return self.calibration.temperature


@dataclass(frozen=True)
class CheckpointMeta:
    """A checkpoint's metadata, typed. ``raw`` is the JSON object as read (read-only)."""

    name: str
    config: ModelConfig
    format_version: int | None
    weights_sha256: str | None
    training: Training
    evaluation: Evaluation | None
    provenance: Provenance
    recognition: RecognitionSettings | None = None
    robustness: Mapping[str, Any] | None = None  # per-corruption results: the lead's schema, kept as is
    role: str | None = None  # "paper", "recogniser", "reference" or "variant"
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def test(self) -> Losses | None:
        """Test-set losses: the evaluation's when there is one, else those measured at the end of training."""
        ev = self.evaluation
        if ev is not None and ev.test_loss is not None:
            return Losses(ev.test_loss, ev.recon, ev.kl)
        return self.training.test

    @property
    def accuracy(self) -> float | None:
        return None if self.evaluation is None else self.evaluation.accuracy

    @property
    def robust_accuracy(self) -> float | None:
        """Mean accuracy over the corruptions (``robustness.mean_accuracy``), when recorded."""
        value = (self.robustness or {}).get("mean_accuracy")
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


# ---------------------------------------------------------------------------------- parsing


def _number(value: Any, name: str, kind: type = float) -> Any:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or (kind is int and not isinstance(value, int)):
        raise _Malformed(f"{name} is not {'an integer' if kind is int else 'a number'}")
    return kind(value)


def _text(value: Any, name: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise _Malformed(f"{name} is not text")


def _mapping(value: Any, name: str) -> dict[str, Any] | None:
    if value is None or isinstance(value, dict):
        return value
    raise _Malformed(f"{name} is not an object")


def _rows(value: Any, name: str) -> tuple[Mapping[str, float], ...]:
    """A list of records of numbers (the history, the noise results)."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _Malformed(f"{name} is not a list")
    for i, row in enumerate(value):
        if not isinstance(row, dict):
            raise _Malformed(f"{name}[{i}] is not an object")
        for key, v in row.items():
            _number(v, f"{name}[{i}].{key}")
    return tuple(MappingProxyType(dict(row)) for row in value)


def _losses(value: Any, name: str) -> Losses | None:
    data = _mapping(value, name)
    if not data or data.get("loss") is None:
        return None
    return Losses(_number(data["loss"], f"{name}.loss"), _number(data.get("recon"), f"{name}.recon"),
                  _number(data.get("kl"), f"{name}.kl"))


def _confusion(value: Any) -> tuple[tuple[int, ...], ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(row, list) for row in value):
        raise _Malformed("evaluation.confusion is not a matrix")
    return tuple(tuple(_number(v, "evaluation.confusion", int) for v in row) for row in value)


def _training(meta: dict[str, Any]) -> Training:
    return Training(
        command=_text(meta.get("command"), "command"),
        train_config=MappingProxyType(_mapping(meta.get("train_config"), "train_config") or {}),
        history=_rows(meta.get("history"), "history"),
        num_params=_number(meta.get("num_params"), "num_params", int),
        train_size=_number(meta.get("train_size"), "train_size", int),
        val_size=_number(meta.get("val_size"), "val_size", int),
        best_epoch=_number(meta.get("best_epoch"), "best_epoch", int),
        epochs_run=_number(meta.get("epochs_run"), "epochs_run", int),
        seconds=_number(meta.get("training_seconds"), "training_seconds"),
        test=_losses(meta.get("test"), "test"),
        interrupted=bool(meta.get("interrupted")),
        init=_mapping(meta.get("init"), "init"),
    )


def _evaluation(value: Any) -> Evaluation | None:
    ev = _mapping(value, "evaluation")
    if ev is None:
        return None
    n = lambda key, kind=float: _number(ev.get(key), f"evaluation.{key}", kind)  # noqa: E731
    t = lambda key: _text(ev.get(key), f"evaluation.{key}")  # noqa: E731
    return Evaluation(
        n=n("n", int), k=n("k", int), seed=n("seed", int), test_loss=n("test_loss"), recon=n("recon"), kl=n("kl"),
        accuracy=n("accuracy"), noise=_rows(ev.get("noise"), "evaluation.noise"), confusion=_confusion(ev.get("confusion")),
        ood_threshold=n("ood_threshold"), command=t("command"), created=t("created"), code_version=t("code_version"),
    )


def _provenance(meta: dict[str, Any]) -> Provenance:
    checksums = _mapping(meta.get("data_sha256"), "data_sha256") or {}
    return Provenance(
        code_version=_text(meta.get("code_version"), "code_version"),
        torch_version=_text(meta.get("torch_version"), "torch_version"),
        device=_text(meta.get("device"), "device"),
        created=_text(meta.get("created"), "created"),
        data_sha256=MappingProxyType({str(k): str(v) for k, v in checksums.items()}),
        note=_text(meta.get("provenance_note"), "provenance_note"),
    )


def _recognition(value: Any) -> RecognitionSettings | None:
    data = _mapping(value, "recognition")
    if data is None:
        return None
    missing = [f for f in ("k", "temperature", "not_digit_threshold", "command", "created") if data.get(f) is None]
    if missing:
        raise _Malformed(f"recognition lacks {', '.join(missing)}")
    threshold = data.get("loglik_threshold")
    calibration = Calibration(
        k=_number(data["k"], "recognition.k", int),
        temperature=_number(data["temperature"], "recognition.temperature"),
        not_digit_threshold=_number(data["not_digit_threshold"], "recognition.not_digit_threshold"),
        fitted_on=_text(data.get("fitted_on"), "recognition.fitted_on") or "",
        loglik_threshold=None if threshold is None else _number(threshold, "recognition.loglik_threshold"),
    )
    if calibration.k < 1 or not calibration.temperature > 0:
        raise _Malformed("recognition needs k >= 1 and a positive temperature")
    return RecognitionSettings(calibration, command=_text(data["command"], "recognition.command"),
                               created=_text(data["created"], "recognition.created"))


def parse_config(meta: Mapping[str, Any], source: str) -> ModelConfig:
    """The model config from a metadata object (``source`` names the file in the error)."""
    try:
        return ModelConfig.from_dict(meta["config"])
    except (TypeError, ValueError, KeyError) as e:
        raise CheckpointError(f"{source}: invalid model config ({e})") from None


def parse_meta(meta: dict[str, Any], source: str, *, name: str) -> CheckpointMeta:
    """Typed metadata from the JSON object of ``source`` (a file name, for errors); ``name`` is
    the checkpoint's stem, used when the file records none."""
    config = parse_config(meta, source)
    try:
        role = _text(meta.get("role"), "role")
        if role is not None and role not in ROLES:
            raise _Malformed(f"role {role!r} is not one of {', '.join(ROLES)}")
        return CheckpointMeta(
            name=_text(meta.get("name"), "name") or name,
            config=config,
            format_version=_number(meta.get("format_version"), "format_version", int),
            weights_sha256=_text(meta.get("weights_sha256"), "weights_sha256"),
            training=_training(meta),
            evaluation=_evaluation(meta.get("evaluation")),
            provenance=_provenance(meta),
            recognition=_recognition(meta.get("recognition")),
            robustness=(MappingProxyType(r) if (r := _mapping(meta.get("robustness"), "robustness")) is not None else None),
            role=role,
            raw=MappingProxyType(meta),
        )
    except _Malformed as e:
        raise CheckpointError(f"{source}: malformed metadata ({e})") from None
