"""What a checkpoint's JSON says, typed: parsed once when the checkpoint is read, with a clear
``CheckpointError`` naming the field when the file is malformed.

Unknown keys are allowed, so files written by older or newer code still load; the file is kept
as written (``update_metadata`` merges into the JSON object read from it), and the code reads
only the typed fields. The parts the code reads are dataclasses: the model config, the training record with its
per-epoch history, the evaluation written by ``cvae_core.evaluate``, the provenance, and the
optional recognition settings, robustness results and role.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from cvae_core.calibration import MAX_K, check_settings
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
    """How the model is used as a recogniser, fitted after training by ``cvae_core.robustness``
    (bounded by ``cvae_core.calibration.check_settings``); ``Calibration.for_checkpoint`` builds
    the calibration from it."""

    k: int
    temperature: float
    not_digit_threshold: float
    command: str
    created: str
    fitted_on: str = ""
    loglik_threshold: float | None = None  # nats; set on distorted validation digits
    clean_flagged: float | None = None  # shares of the validation digits the rule flags
    distorted_flagged: float | None = None


@dataclass(frozen=True)
class Graded:
    """Recognition of one set of labelled digits (``cvae_core.robustness.graded``); shares in [0, 1]."""

    n: int | None = None
    accuracy: float | None = None
    ece: float | None = None
    mean_confidence: float | None = None
    not_digit_rate: float | None = None
    accepted_accuracy: float | None = None
    severity: float | None = None  # for one severity of a corruption


@dataclass(frozen=True)
class CorruptionResult:
    """One corruption of the suite: its severities and their mean."""

    held_out: bool = False
    unit: str | None = None
    n: int | None = None
    severities: tuple[Graded, ...] = ()
    accuracy: float | None = None
    ece: float | None = None


@dataclass(frozen=True)
class FamilyResult:
    """One family of non-digits: how well p(not a digit) separates it from the test digits."""

    n: int | None = None
    refused_by_preprocessing: int | None = None
    held_out: bool = False
    auroc: float | None = None
    detected: float | None = None


@dataclass(frozen=True)
class NotDigitResult:
    digits_flagged: float | None = None  # share of test digits flagged
    auroc_not_digit_like: float | None = None
    families: Mapping[str, FamilyResult] = field(default_factory=dict)


@dataclass(frozen=True)
class Robustness:
    """What ``python -m cvae_core.robustness`` recorded; every figure may be missing in a partial record."""

    n: int | None = None
    k: int | None = None
    seed: int | None = None
    clean: Graded | None = None
    corruptions: Mapping[str, CorruptionResult] = field(default_factory=dict)
    mean_accuracy: float | None = None
    mean_accuracy_trained: float | None = None
    mean_accuracy_held_out: float | None = None
    mean_ece: float | None = None
    accuracy_noise_03: float | None = None  # ``accuracy_noise_0.3``: Gaussian noise sigma 0.3
    ood: NotDigitResult | None = None
    seconds: float | None = None
    command: str | None = None
    created: str | None = None
    code_version: str | None = None


@dataclass(frozen=True)
class CheckpointMeta:
    """A checkpoint's metadata, typed."""

    name: str
    config: ModelConfig
    format_version: int | None
    weights_sha256: str | None
    training: Training
    evaluation: Evaluation | None
    provenance: Provenance
    recognition: RecognitionSettings | None = None
    robustness: Robustness | None = None
    role: str | None = None  # "paper", "recogniser", "reference" or "variant"

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
        return None if self.robustness is None else self.robustness.mean_accuracy


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
    k = _number(ev.get("k"), "evaluation.k", int)
    if k is not None and not 1 <= k <= MAX_K:  # a model without a calibration is read with this K
        raise _Malformed(f"evaluation.k must be from 1 to {MAX_K}, not {k}")
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
    n = lambda key, kind=float: _number(data.get(key), f"recognition.{key}", kind)  # noqa: E731
    settings = RecognitionSettings(
        k=n("k", int), temperature=n("temperature"), not_digit_threshold=n("not_digit_threshold"),
        command=_text(data["command"], "recognition.command"), created=_text(data["created"], "recognition.created"),
        fitted_on=_text(data.get("fitted_on"), "recognition.fitted_on") or "", loglik_threshold=n("loglik_threshold"),
        clean_flagged=_share(data.get("clean_flagged"), "recognition.clean_flagged"),
        distorted_flagged=_share(data.get("distorted_flagged"), "recognition.distorted_flagged"),
    )
    try:
        check_settings(k=settings.k, temperature=settings.temperature,
                       not_digit_threshold=settings.not_digit_threshold, loglik_threshold=settings.loglik_threshold)
    except ValueError as e:
        raise _Malformed(f"recognition.{e}") from None
    return settings


def _share(value: Any, name: str) -> float | None:
    """A proportion: a finite number from 0 to 1 (NaN fails both comparisons)."""
    share = _number(value, name)
    if share is not None and not 0 <= share <= 1:
        raise _Malformed(f"{name} is not a share from 0 to 1")
    return share


def _auroc(value: Any, name: str) -> float | None:
    """An area under the ROC curve; NaN (recorded for an empty family) is "not measured"."""
    if isinstance(value, float) and math.isnan(value):
        return None
    return _share(value, name)


def _flag(value: Any, name: str) -> bool:
    if value is None or isinstance(value, bool):
        return bool(value)
    raise _Malformed(f"{name} is not true or false")


def _graded(value: Any, name: str) -> Graded | None:
    data = _mapping(value, name)
    if data is None:
        return None
    s = lambda key: _share(data.get(key), f"{name}.{key}")  # noqa: E731
    return Graded(n=_number(data.get("n"), f"{name}.n", int), accuracy=s("accuracy"), ece=s("ece"),
                  mean_confidence=s("mean_confidence"), not_digit_rate=s("not_digit_rate"),
                  accepted_accuracy=s("accepted_accuracy"), severity=_number(data.get("severity"), f"{name}.severity"))


def _table(value: Any, name: str, parse) -> Mapping[str, Any]:
    """An object of named records, each parsed by ``parse(record, its name)``."""
    data = _mapping(value, name) or {}
    return MappingProxyType({str(key): parse(item, f"{name}.{key}") for key, item in data.items()})


def _corruption(value: Any, name: str) -> CorruptionResult:
    data = _mapping(value, name)
    if data is None:
        raise _Malformed(f"{name} is not an object")
    rows = data.get("severities")
    if rows is not None and not isinstance(rows, list):
        raise _Malformed(f"{name}.severities is not a list")
    return CorruptionResult(
        held_out=_flag(data.get("held_out"), f"{name}.held_out"), unit=_text(data.get("unit"), f"{name}.unit"),
        n=_number(data.get("n"), f"{name}.n", int),
        severities=tuple(_graded(row, f"{name}.severities[{i}]") or Graded() for i, row in enumerate(rows or ())),
        accuracy=_share(data.get("accuracy"), f"{name}.accuracy"), ece=_share(data.get("ece"), f"{name}.ece"),
    )


def _family(value: Any, name: str) -> FamilyResult:
    data = _mapping(value, name)
    if data is None:
        raise _Malformed(f"{name} is not an object")
    return FamilyResult(
        n=_number(data.get("n"), f"{name}.n", int),
        refused_by_preprocessing=_number(data.get("refused_by_preprocessing"), f"{name}.refused_by_preprocessing", int),
        held_out=_flag(data.get("held_out"), f"{name}.held_out"), auroc=_auroc(data.get("auroc"), f"{name}.auroc"),
        detected=_share(data.get("detected"), f"{name}.detected"),
    )


def _robustness(value: Any) -> Robustness | None:
    r = _mapping(value, "robustness")
    if r is None:
        return None
    ood = _mapping(r.get("ood"), "robustness.ood")
    s = lambda key: _share(r.get(key), f"robustness.{key}")  # noqa: E731
    return Robustness(
        n=_number(r.get("n"), "robustness.n", int), k=_number(r.get("k"), "robustness.k", int),
        seed=_number(r.get("seed"), "robustness.seed", int), clean=_graded(r.get("clean"), "robustness.clean"),
        corruptions=_table(r.get("corruptions"), "robustness.corruptions", _corruption),
        mean_accuracy=s("mean_accuracy"), mean_accuracy_trained=s("mean_accuracy_trained"),
        mean_accuracy_held_out=s("mean_accuracy_held_out"), mean_ece=s("mean_ece"),
        accuracy_noise_03=s("accuracy_noise_0.3"),
        ood=None if ood is None else NotDigitResult(
            digits_flagged=_share(ood.get("digits_flagged"), "robustness.ood.digits_flagged"),
            auroc_not_digit_like=_auroc(ood.get("auroc_not_digit_like"), "robustness.ood.auroc_not_digit_like"),
            families=_table(ood.get("families"), "robustness.ood.families", _family),
        ),
        seconds=_number(r.get("seconds"), "robustness.seconds"), command=_text(r.get("command"), "robustness.command"),
        created=_text(r.get("created"), "robustness.created"),
        code_version=_text(r.get("code_version"), "robustness.code_version"),
    )


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
            robustness=_robustness(meta.get("robustness")),
            role=role,
        )
    except _Malformed as e:
        raise CheckpointError(f"{source}: malformed metadata ({e})") from None
