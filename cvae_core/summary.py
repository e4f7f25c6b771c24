"""A model's figures in one row, and the conv-vs-MLP verdict computed from them.

``summary`` is what the app's model card and metrics table and the README's quality table show;
``verdict`` decides which of several models has the lowest test loss and which recognises best,
with ties called as such. The app shows ``str(verdict)``; ``benchmarks.report`` words the same
decision for the README.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cvae_core.checkpoints import CheckpointMeta

LOSS_TIE = 0.005  # nats: test losses printed alike (2 decimals) are a tie
ACCURACY_TIE = 5e-5  # accuracies printed alike (2 decimals of a percent) are a tie


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
    )


@dataclass(frozen=True)
class Verdict:
    """Which model is best at what, from ``verdict``; ``str()`` gives one sentence."""

    by_loss: tuple[Summary, ...]  # the models with a test loss, lowest first
    by_accuracy: tuple[Summary, ...]  # the models with an accuracy, best first
    loss_tied: bool  # the two lowest are alike
    accuracy_tied: bool
    not_evaluated: tuple[str, ...]  # models without an accuracy
    given: tuple[str, ...] = ()  # the models in the order given: a tie names them so

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
    )
