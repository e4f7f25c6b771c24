"""A model's figures in one row, and the verdict of a comparison computed from them.

``summary`` is what the app's model card and metrics table and the README's quality table show.
``verdict`` weighs every axis that is measured for at least two of the models compared: how well
each fits the test digits (test loss), reads clean test digits (accuracy), reads noisy ones (the
noise curve of ``cvae_core.evaluate``, on the sigmas both share), holds up under the corruption
suite and how honest its confidence is (``cvae_core.robustness``), and its size. It says what
each model is better at, where they tie, what is not measured, whose probabilities are not
calibrated, and recommends one model per purpose: to recognise, to generate, small.

This is the one place the decision and its words live: the Compare page shows the parts of a
``Verdict`` and ``benchmarks.report`` writes ``str(verdict)`` into the README.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cvae_core.checkpoints import CheckpointMeta
from cvae_core.models import MODELS

LOSS_TIE = 0.005  # nats: test losses printed alike (2 decimals) are a tie
ACCURACY_TIE = 5e-5  # clean accuracies printed alike (2 decimals of a percent) are a tie
SHARE_TIE = 5e-4  # noise, corruption and calibration figures printed alike (1 decimal of a percent) tie
PARAMS_RATIO = 2  # one model is "smaller" only when the other has at least this many times its parameters


@dataclass(frozen=True)
class Summary:
    """The figures of one model (None where not recorded); losses in nats per test image."""

    model: str
    arch: str | None = None
    latent_dim: int | None = None
    epochs: int | None = None
    params: int | None = None
    test_loss: float | None = None
    recon: float | None = None
    kl: float | None = None
    accuracy: float | None = None
    training_seconds: float | None = None
    robust_accuracy: float | None = None  # mean accuracy over the corruptions (``python -m cvae_core.robustness``)
    ece: float | None = None  # mean expected calibration error over the corruptions
    noise: tuple[tuple[float, float], ...] = ()  # (sigma, accuracy) for each noise level sigma > 0
    calibrated: bool | None = None  # a temperature was fitted (``recognition`` metadata); None: unknown


def summary(meta: CheckpointMeta, *, name: str | None = None) -> Summary:
    """The row of one checkpoint; ``name`` (default: the one recorded) is how it is shown."""
    test = meta.test
    noise = () if meta.evaluation is None else tuple(
        (float(n["sigma"]), float(n["accuracy"])) for n in meta.evaluation.noise
        if n.get("sigma", 0) > 0 and n.get("accuracy") is not None)
    return Summary(
        model=name or meta.name,
        arch=meta.config.arch,
        latent_dim=meta.config.latent_dim,
        epochs=meta.training.epochs,
        params=meta.training.num_params,
        test_loss=None if test is None else test.loss,
        recon=None if test is None else test.recon,
        kl=None if test is None else test.kl,
        accuracy=meta.accuracy,
        training_seconds=meta.training.seconds,
        robust_accuracy=meta.robust_accuracy,
        ece=None if meta.robustness is None else meta.robustness.mean_ece,
        noise=noise,
        calibrated=meta.recognition is not None,
    )


# ------------------------------------------------------------------------------------ axes


@dataclass(frozen=True)
class Axis:
    """One measured axis of a comparison: the models that have its figure, best first."""

    name: str  # "test loss", "clean digits", "noisy digits", "distorted digits", "calibration", "size"
    doing: str  # what being best on it means, in words: "fitting the test digits"
    ranked: tuple[Summary, ...]
    values: tuple[float, ...]  # the figure of each ranked model, in the same order
    tied: bool  # the two best are alike
    missing: tuple[str, ...]  # models compared without this figure
    show: Callable[[float], str]  # one figure as printed: "92.42", "98.15 %", "26,697"
    label: str = ""  # said before the figures: "test loss "
    note: str = ""  # said after them: "; lower is better", ", mean over noise σ 0.1 to 0.5"

    @property
    def winner(self) -> Summary | None:
        return None if self.tied else self.ranked[0]

    @property
    def phrase(self) -> str:
        """What the best model is better at, with every model's figure: "reading clean test digits
        (98.15 % vs 96.62 %)"; with more than two models the others are named."""
        best, *rest = (self.show(v) for v in self.values)
        if len(rest) > 1:
            rest = [f"{s.model} {v}" for s, v in zip(self.ranked[1:], rest, strict=True)]
        figures = f"{self.label}{best} vs {', '.join(rest)}{self.note}"
        if self.name == "size":
            return f"{self.doing} ({self.values[-1] / self.values[0]:.0f} times fewer parameters: {figures})"
        return f"{self.doing} ({figures})"


def _shared_noise(summaries: Sequence[Summary]) -> tuple[float, ...]:
    """The noise levels every model with a noise curve was measured at."""
    curves = [dict(s.noise) for s in summaries if s.noise]
    return tuple(sorted(set.intersection(*(set(c) for c in curves)))) if len(curves) >= 2 else ()


def _axis(name: str, doing: str, summaries: Sequence[Summary], figure: Callable[[Summary], float | None], *,
          lower_is_better: bool, alike: Callable[[float, float], bool], show: Callable[[float], str],
          label: str = "", note: str = "") -> Axis | None:
    """The axis ``name`` over the models that have ``figure``; None when fewer than two do."""
    scored = [(figure(s), s) for s in summaries]
    present = sorted(((v, s) for v, s in scored if v is not None), key=lambda p: p[0] if lower_is_better else -p[0])
    if len(present) < 2:
        return None
    values = tuple(v for v, _ in present)
    return Axis(name=name, doing=doing, ranked=tuple(s for _, s in present), values=values,
                tied=alike(values[0], values[1]), missing=tuple(s.model for v, s in scored if v is None),
                show=show, label=label, note=note)


def _within(tolerance: float) -> Callable[[float, float], bool]:
    return lambda a, b: abs(a - b) < tolerance


def _percent(digits: int) -> Callable[[float], str]:
    return lambda v: f"{100 * v:.{digits}f} %"


def axes(summaries: Sequence[Summary]) -> tuple[Axis, ...]:
    """Every axis measured for at least two of ``summaries``, in a fixed order. The test loss (a
    negative ELBO) is compared among the CVAEs only: a discriminative model's loss is another measure."""
    generative = [s for s in summaries if s.arch is None or s.arch in MODELS]
    sigmas = _shared_noise(summaries)
    span = f"σ {sigmas[0]:g}" if len(sigmas) == 1 else f"σ {sigmas[0]:g} to {sigmas[-1]:g}" if sigmas else ""

    def noise(s: Summary) -> float | None:
        curve = dict(s.noise)
        return sum(curve[x] for x in sigmas) / len(sigmas) if sigmas and curve else None

    found = (
        _axis("test loss", "fitting the test digits", generative, lambda s: s.test_loss, lower_is_better=True,
              alike=_within(LOSS_TIE), show=lambda v: f"{v:.2f}", label="test loss ", note="; lower is better"),
        _axis("clean digits", "reading clean test digits", summaries, lambda s: s.accuracy, lower_is_better=False,
              alike=_within(ACCURACY_TIE), show=_percent(2)),
        _axis("noisy digits", "reading noisy digits", summaries, noise, lower_is_better=False,
              alike=_within(SHARE_TIE), show=_percent(1), note=f", mean over noise {span}"),
        _axis("distorted digits", "reading distorted digits", summaries, lambda s: s.robust_accuracy,
              lower_is_better=False, alike=_within(SHARE_TIE), show=_percent(1),
              note=", mean over the corruption suite"),
        _axis("calibration", "confidence that matches its accuracy", summaries, lambda s: s.ece,
              lower_is_better=True, alike=_within(SHARE_TIE), show=_percent(1), label="calibration error "),
        _axis("size", "being small", summaries, lambda s: float(s.params) if s.params else None,
              lower_is_better=True, alike=lambda a, b: b < PARAMS_RATIO * a, show=lambda v: f"{v:,.0f}"),
    )
    return tuple(a for a in found if a is not None)


# --------------------------------------------------------------------------------- verdict


@dataclass(frozen=True)
class Recommendation:
    purpose: str  # "to recognise", "to generate" or "small", in that order in ``Verdict.recommendations``
    model: str | None  # None: no pick (the deciding figures tie, or none is recorded); the reason says which
    reason: str

    def __str__(self) -> str:
        return f"{self.purpose.capitalize()}: {self.model + ', ' if self.model else ''}{self.reason}."


@dataclass(frozen=True)
class Verdict:
    """What each model is better at, and which to use for what; ``str()`` gives it in sentences."""

    given: tuple[str, ...]  # the models in the order given
    axes: tuple[Axis, ...]
    recommendations: tuple[Recommendation, ...]
    uncalibrated: tuple[str, ...]  # models whose probabilities are softmaxed log-likelihoods, no temperature

    def axis(self, name: str) -> Axis | None:
        return next((a for a in self.axes if a.name == name), None)

    def strengths(self) -> dict[str, list[str]]:
        """Model -> what it is better at (the axes it wins), for every model given."""
        out: dict[str, list[str]] = {m: [] for m in self.given}
        for a in self.axes:
            if a.winner is not None:
                out.setdefault(a.winner.model, []).append(a.phrase)
        return out

    def ties(self) -> list[str]:
        """One sentence per tied axis: "a and b are alike at fitting the test digits (test loss 100.00)"."""
        out = []
        for a in self.axes:
            if not a.tied:
                continue
            first, second = sorted((a.ranked[0].model, a.ranked[1].model), key=self._position)
            if a.name == "size":
                out.append(f"{first} and {second} are about the same size")
            else:
                out.append(f"{first} and {second} are alike at {a.doing} ({a.label}{a.show(a.values[0])})")
        return out

    def missing(self) -> dict[str, list[str]]:
        """Model -> the axes measured for others but not for it."""
        out: dict[str, list[str]] = {}
        for a in self.axes:
            for m in a.missing:
                out.setdefault(m, []).append(a.name)
        return out

    def sentences(self) -> list[str]:
        """What each model is better at, the ties, what is missing, calibration, then the recommendations."""
        word = "best" if len(self.given) > 2 else "better"
        out = [f"{model} is {word} at {_and(phrases)}." for model, phrases in self.strengths().items() if phrases]
        out += [t + "." for t in self.ties()]
        out += [f"Not measured for {model}: {_and(names)}." for model, names in self.missing().items()]
        if self.uncalibrated:
            out.append(f"The probabilities of {_and(list(self.uncalibrated))} are not calibrated (no temperature "
                       "fitted), so their percentages overstate how sure they are.")
        out += [str(r) for r in self.recommendations]
        return out

    def __str__(self) -> str:
        return " ".join(self.sentences())

    def _position(self, model: str) -> int:
        return self.given.index(model) if model in self.given else len(self.given)


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _recognise(found: dict[str, Axis]) -> Recommendation:
    """The broadest recognition measure that is not a tie decides: the corruption suite, then the
    noise curve, then clean test digits. Drawn and photographed digits are not test digits, so how
    a model holds up under distortion is the better guide; the trade-off is named."""
    deciding = [found[n] for n in ("distorted digits", "noisy digits", "clean digits") if n in found]
    for a in deciding:
        if a.winner is None:
            continue
        reason = "better at " + a.phrase
        clean = found.get("clean digits")
        if a.name != "clean digits" and clean is not None and clean.winner not in (None, a.winner):
            reason += f"; {clean.winner.model} is ahead on clean test digits only"
        return Recommendation("to recognise", a.winner.model, reason)
    return Recommendation("to recognise", None, "either, they read digits alike" if deciding else "recognition is not measured")


def _generate(loss: Axis | None) -> Recommendation:
    """The lowest test loss: the model that gives test digits the highest likelihood (its bound)."""
    if loss is None:
        return Recommendation("to generate", None, "no test loss to compare")
    if loss.winner is None:
        return Recommendation("to generate", None, "either, they fit the test digits alike")
    return Recommendation("to generate", loss.winner.model, "better at " + loss.phrase)


def _small(size: Axis | None) -> Recommendation:
    if size is None:
        return Recommendation("small", None, "no parameter counts to compare")
    if size.winner is None:
        return Recommendation("small", None, "either, they are about the same size")
    return Recommendation("small", size.winner.model, f"{size.values[-1] / size.values[0]:.0f} times fewer parameters")


def verdict(summaries: Sequence[Summary]) -> Verdict:
    """Weigh every measured axis of ``summaries`` and recommend a model to recognise, to generate, and small."""
    found = {a.name: a for a in axes(summaries)}
    return Verdict(
        given=tuple(s.model for s in summaries),
        axes=tuple(found.values()),
        recommendations=(_recognise(found), _generate(found.get("test loss")), _small(found.get("size"))),
        uncalibrated=tuple(s.model for s in summaries if s.calibrated is False),
    )
