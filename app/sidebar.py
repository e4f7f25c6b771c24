"""The sidebar every page shares: the model picker, a compact model card, unavailable models with
their reasons, and the archive's "Save automatically" toggle when the archive is installed.

The picker lists every checkpoint from its metadata; only the selected model is loaded here."""

from __future__ import annotations

import streamlit as st

from app import common


def _describe(entry: common.ModelEntry) -> str:
    return f"{entry.name}  ·  {entry.arch}, {entry.latent_dim}-D latent"


def model_card(entry: common.ModelEntry) -> None:
    s = common.summary(entry)
    kind = "convolutional" if s["arch"] == "conv" else "multilayer (MLP)"
    lines = [
        f"**{kind}**, latent size **{s['latent_dim']}**",
        f"{s['epochs'] or '?'} epochs · {s['params']:,} parameters" if s["params"] else f"{s['epochs'] or '?'} epochs",
    ]
    if s["test_loss"] is not None:
        split = s["recon"] is not None and s["kl"] is not None
        parts = f" (recon {s['recon']:.2f} + KL {s['kl']:.2f})" if split else ""
        lines.append(f"test loss **{s['test_loss']:.2f}** nats{parts}")
    if s["accuracy"] is not None:
        lines.append(f"recognition accuracy **{100 * s['accuracy']:.2f} %**")
    else:
        lines.append("recognition accuracy: not evaluated yet")
    with st.container(border=True):
        st.markdown("  \n".join(lines))
        st.caption(common.LOSS_CONVENTION)


def render() -> None:
    selected = common.selected_model()  # loads it first: a model that fails to load is listed as unavailable
    entries = common.all_models()
    ready = [e for e in entries if e.error is None]
    with st.sidebar:
        if selected is not None:
            names = [e.name for e in ready]
            by_name = {e.name: e for e in ready}
            st.selectbox(
                "Model", names, index=names.index(selected.name), key=common.MODEL_KEY,
                format_func=lambda n: _describe(by_name[n]),
                help="Every checkpoint found in the checkpoint folder. The Compare page pairs conv with MLP.",
            )
            model_card(selected)
        else:
            st.warning("No trained model yet: see the page for how to train one.", icon=":material/warning:")
        for bad in (e for e in entries if e.error is not None):
            st.caption(f":material/error: **{common.escape_markdown(bad.name)}** unavailable: "
                       f"{common.escape_markdown(bad.error)}")
        archive = common.archive_ui()
        if archive is not None:
            archive.autosave_toggle()
