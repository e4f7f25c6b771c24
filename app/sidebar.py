"""The sidebar every page shares: the model picker (grouped: the paper's models, recognisers, other
variants), a model card that says what the model is and what it is best at, unavailable models
with their reasons, and the archive's "Save automatically" toggle. Being on every page, it also
loads the app's stylesheet (``app/style.css``).

The picker lists every checkpoint from its metadata; only the selected model is loaded here."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path, PurePath

import streamlit as st

from app import archive_ui, cached_models
from app.markdown import escape_markdown
from cvae_core.catalogue import ModelEntry, is_paper_model
from cvae_core.summary import summary

LOSS_CONVENTION = (
    "Loss = negative ELBO in nats per image (natural-log units of information): Bernoulli cross-entropy "
    "with the grey levels as targets (the usual convention) + KL to N(0, I). Lower is better."
)
STYLE = Path(__file__).parent / "style.css"
CHOSEN_KEY = "sidebar_model_chosen"  # the model the visitor last picked (absent: the picker shows the default)
GROUPS = ("paper", "recogniser", "variant", "trained")
GROUP_NAMES = {"paper": "Paper", "recogniser": "Recogniser", "variant": "Variant", "trained": "Trained here"}


def group(entry: ModelEntry) -> str:
    """"paper" (the paper's plain models), "recogniser", "variant" (everything else shipped) or
    "trained" (made on this server's Train page)."""
    if entry.trained_here:
        return "trained"
    if is_paper_model(entry.info, name=entry.name):
        return "paper"
    return "recogniser" if entry.role == "recogniser" else "variant"


def ordered(entries: Sequence[ModelEntry]) -> list[ModelEntry]:
    """The paper's models first, then the recognisers, then the other variants; by name within each."""
    return sorted(entries, key=lambda e: (GROUPS.index(group(e)), e.latent_dim, e.name))


def _label(entry: ModelEntry) -> str:
    star = "★ " if group(entry) == "paper" else ""
    return f"{star}{entry.name} · {GROUP_NAMES[group(entry)]}"


def _remember_choice() -> None:
    st.session_state[CHOSEN_KEY] = st.session_state.get(cached_models.MODEL_KEY)


def chosen_model() -> str | None:
    """The model the visitor last picked in the sidebar, or None while it shows the default."""
    return st.session_state.get(CHOSEN_KEY)


def what_it_is(entry: ModelEntry) -> list[str]:
    """The model's kind and how it was trained, in words."""
    kind = "convolutional" if entry.arch == "conv" else "multilayer (MLP)"
    lines = [f"A **{kind}** CVAE with a **{entry.latent_dim}-D** latent space."]
    if group(entry) == "paper":
        lines.append("★ One of the paper's models, trained as the paper describes.")
    training = entry.info.training
    if entry.trained_here:
        lines.append(f"**Trained here**, on this server's Train page: `{training.command}`")
    if training.disc_weight > 0:
        lines.append(f"**Hybrid**: besides the CVAE loss, a share of each batch also paid for misreading its digit "
                     f"(Bayes' rule over the labels, weight {training.disc_weight:g}). It recognises better, at a "
                     "small cost in test loss.")
    if training.init:
        source = PurePath(str(training.init.get("path") or "another checkpoint")).stem
        lines.append(f"**Fine-tuned** from {escape_markdown(source)}: it started from those weights and trained a few "
                     "more epochs; its training time counts those epochs only.")
    if entry.config.background:
        lines.append("**Knows non-digits**: trained with an extra “not a digit” class of generated scribbles, "
                     "shapes and textures, so it can say when an input is no digit at all.")
    if entry.info.recognition is not None:
        lines.append("Its probabilities are **calibrated** (a temperature fitted on validation digits).")
    else:
        lines.append("Its probabilities are **not calibrated** (no temperature fitted): a “> 99 %” from it means "
                     "“its first choice”, not a 99 % chance.")
    return lines


def best_at(entry: ModelEntry, entries: Sequence[ModelEntry]) -> list[str]:
    """What this model is best at among the available ones (ties: the first by name)."""
    same_size = [e for e in entries if e.latent_dim == entry.latent_dim]

    def top(models: Sequence[ModelEntry], score) -> str | None:
        scored = [(score(e), e.name) for e in models if score(e) is not None]
        return min(scored)[1] if scored else None

    found = []
    if top(same_size, lambda e: e.info.test.loss if e.info.test else None) == entry.name:
        found.append(f"lowest test loss of the {entry.latent_dim}-D models")
    if top(entries, lambda e: None if e.info.accuracy is None else -e.info.accuracy) == entry.name:
        found.append("best recogniser of clean digits")
    if top(entries, lambda e: None if e.info.robust_accuracy is None else -e.info.robust_accuracy) == entry.name:
        found.append("most robust (accuracy under corruptions)")
    if top(entries, lambda e: e.info.training.num_params) == entry.name:
        found.append("fewest parameters")
    return found


def model_card(entry: ModelEntry, entries: Sequence[ModelEntry]) -> None:
    s = summary(entry.info, name=entry.name)
    figures = [f"{s.epochs or '?'} epochs · {s.params:,} parameters" if s.params else f"{s.epochs or '?'} epochs"]
    if s.test_loss is not None:
        split = s.recon is not None and s.kl is not None
        parts = f" (recon {s.recon:.2f} + KL {s.kl:.2f})" if split else ""
        figures.append(f"test loss **{s.test_loss:.2f}**{parts}")
    if s.accuracy is not None:
        figures.append(f"recognition accuracy **{100 * s.accuracy:.2f} %**")
    else:
        figures.append("recognition accuracy: not evaluated yet")
    if entry.info.robust_accuracy is not None:
        figures.append(f"under corruptions **{100 * entry.info.robust_accuracy:.1f} %** (mean)")
    with st.container(border=True):
        st.markdown(f"#### {escape_markdown(entry.name)}")
        st.markdown("  \n".join(what_it_is(entry)))
        st.markdown("  \n".join(figures))
        best = best_at(entry, entries)
        if best:
            st.markdown(":material/emoji_events: Best at: " + "; ".join(best) + ".")
        st.caption("Test loss: lower is better.", help=LOSS_CONVENTION)


def render() -> None:
    st.html(STYLE)  # style only: Streamlit puts it where it takes no room
    selected = cached_models.selected_model()  # loads it first: a model that fails to load is listed as unavailable
    entries = cached_models.all_models()
    ready = ordered(cached_models.available_models())
    with st.sidebar:
        if selected is not None:
            names = [e.name for e in ready]
            by_name = {e.name: e for e in ready}
            # The picker shows the model in use: the visitor's pick, or the default when that is gone
            # (set through the key alone: an index beside a key set elsewhere, e.g. by the Train page, warns).
            st.session_state[cached_models.MODEL_KEY] = selected.name
            st.selectbox(
                "Model", names, key=cached_models.MODEL_KEY,
                format_func=lambda n: _label(by_name[n]), on_change=_remember_choice,
                help="★ the paper's models (conv and MLP, plain training); recognisers (trained to read digits "
                     "and to refuse non-digits); other variants (hybrid or fine-tuned); trained here (on "
                     "this server's Train page). The Compare page pairs conv with MLP.",
            )
            model_card(selected, ready)
        else:
            st.warning("No trained model yet: see the page for how to train one.", icon=":material/warning:")
        for bad in (e for e in entries if e.error is not None):
            st.caption(f":material/error: **{escape_markdown(bad.name)}** unavailable: {escape_markdown(bad.error)}")
        archive_ui.autosave_toggle()
