"""A model's figures in one row, and the conv-vs-MLP verdict computed from them.

``summary`` is what the app's model card and metrics table and the README's quality table show;
``verdict`` decides which of several models has the lowest test loss and which recognises best,
with ties called as such, and, where recorded, which holds up best under corruptions, whose
confidence is best calibrated and how many times smaller the smaller model is. The app shows ``str(verdict)``; ``benchmarks.report`` words the same
decision for the README.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cvae_core.checkpoints import CheckpointMeta

LOSS_TIE = 0.005  # nats: test losses printed alike (2 decimals) are a tie
ACCURACY_TIE = 5e-5  # accuracies printed alike (2 decimals of a percent) are a tie
PARAMS_RATIO = 2  # the parameter counts are worth a word when one model is at least this many times larger


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


def summary(meta: CheckpointMeta, *, name: str | None = None) -> Summary:
    """The row of one checkpoint; ``name`` (default: the one recorded) is how it is shown."""
    test = meta.test
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
    )


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class Verdict:
    """Which model is best at what, from ``verdict``; ``str()`` gives one sentence."""

    by_loss: tuple[Summary, ...]  # the models with a test loss, lowest first
    by_accuracy: tuple[Summary, ...]  # the models with an accuracy, best first
    loss_tied: bool  # the two lowest are alike
    accuracy_tied: bool
    not_evaluated: tuple[str, ...]  # models without an accuracy
    given: tuple[str, ...] = ()  # the models in the order given: a tie names them so
    by_robustness: tuple[Summary, ...] = ()  # the models with a corruption accuracy, best first
    by_calibration: tuple[Summary, ...] = ()  # the models with an ECE, lowest first
    by_params: tuple[Summary, ...] = ()  # the models with a parameter count, fewest first

    def __str__(self) -> str:
        parts = []
        if len(self.by_loss) >= 2:
            low, *rest = self.by_loss
            if self.loss_tied and len(self.by_loss) == 2:
                first, second = sorted((low.model, rest[0].model), key=self._position)
                parts.append(f"{first} and {second} reach the same test loss ({low.test_loss:.2f} nats)")
            else:
                word = "lower" if len(self.by_loss) == 2 else "lowest"
                others = ", ".join(f"{s.test_loss:.2f}" for s in rest)
                parts.append(f"{low.model} has the {word} test loss ({low.test_loss:.2f} vs {others} nats)")
        if self.not_evaluated:
            parts.append(f"recognition accuracy is not recorded for {' and '.join(self.not_evaluated)} yet")
        elif len(self.by_accuracy) >= 2:
            good, *rest = self.by_accuracy
            if self.accuracy_tied and len(self.by_accuracy) == 2:
                parts.append(f"both recognise {100 * good.accuracy:.2f} % of the test digits")
            else:
                word = "better" if len(self.by_accuracy) == 2 else "best"
                others = ", ".join(f"{100 * s.accuracy:.2f} %" for s in rest)
                parts.append(f"{good.model} recognises {word} ({100 * good.accuracy:.2f} % vs {others})")
        if len(self.by_robustness) >= 2:
            good, *rest = self.by_robustness
            others = ", ".join(f"{100 * s.robust_accuracy:.1f} %" for s in rest)
            parts.append(f"{good.model} holds up best under corruptions ({100 * good.robust_accuracy:.1f} % vs {others})")
        if len(self.by_calibration) >= 2:
            good, *rest = self.by_calibration
            others = ", ".join(f"{100 * s.ece:.1f} %" for s in rest)
            parts.append(f"{good.model} is the best calibrated (ECE {100 * good.ece:.1f} % vs {others})")
        if len(self.by_params) >= 2 and self.by_params[-1].params >= PARAMS_RATIO * self.by_params[0].params:
            small, big = self.by_params[0], self.by_params[-1]
            parts.append(f"{small.model} is {big.params / small.params:.0f} times smaller "
                         f"({small.params:,} vs {big.params:,} parameters)")
        return "; ".join(parts) + "."

    def _position(self, model: str) -> int:
        return self.given.index(model) if model in self.given else len(self.given)


def verdict(summaries: Sequence[Summary]) -> Verdict:
    """Rank the models by test loss and by accuracy (ties: within ``LOSS_TIE`` / ``ACCURACY_TIE``)."""
    by_loss = tuple(sorted((s for s in summaries if s.test_loss is not None), key=lambda s: s.test_loss))
    by_accuracy = tuple(sorted((s for s in summaries if s.accuracy is not None), key=lambda s: -s.accuracy))
    return Verdict(
        by_loss=by_loss,
        by_accuracy=by_accuracy,
        loss_tied=len(by_loss) >= 2 and abs(by_loss[0].test_loss - by_loss[1].test_loss) < LOSS_TIE,
        accuracy_tied=len(by_accuracy) >= 2 and abs(by_accuracy[0].accuracy - by_accuracy[1].accuracy) < ACCURACY_TIE,
        not_evaluated=tuple(s.model for s in summaries if s.accuracy is None),
        given=tuple(s.model for s in summaries),
        by_robustness=tuple(sorted((s for s in summaries if s.robust_accuracy is not None), key=lambda s: -s.robust_accuracy)),
        by_calibration=tuple(sorted((s for s in summaries if s.ece is not None), key=lambda s: s.ece)),
        by_params=tuple(sorted((s for s in summaries if s.params), key=lambda s: s.params)),
    )
