"""Compare conv vs MLP: the paper's figures, live, from what the checkpoints recorded.

Loss curves per epoch (Fig. 6), test-set latent scatters from the stored latent means (Fig. 5),
the same ten test digits reconstructed by both models (Fig. 4), a metrics table, confusion
matrices, recognition accuracy against noise (Fig. 10) and a verdict computed from the numbers.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app import common, figures

NO_CHART_BAR = {"displayModeBar": False}


def pick(column: st.delta_generator.DeltaGenerator, label: str, options: list[common.ModelEntry],
         latent_dim: int, key: str) -> common.ModelEntry:
    names = [e.name for e in options]
    preferred = common.closest(options, latent_dim).name
    name = column.selectbox(label, names, index=names.index(preferred), key=key)
    return next(e for e in options if e.name == name)


def metrics_table(rows: list[dict]) -> None:
    table = pd.DataFrame(rows)
    table["accuracy"] = table["accuracy"].map(lambda a: None if a is None else 100 * a)
    st.dataframe(
        table, hide_index=True,
        column_order=["model", "arch", "latent_dim", "test_loss", "recon", "kl", "accuracy", "params",
                      "training_seconds", "epochs"],
        column_config={
            "model": "Model", "arch": "Architecture", "latent_dim": "Latent",
            "test_loss": st.column_config.NumberColumn("Test loss (nats)", format="%.2f"),
            "recon": st.column_config.NumberColumn("Reconstruction", format="%.2f"),
            "kl": st.column_config.NumberColumn("KL", format="%.2f"),
            "accuracy": st.column_config.NumberColumn("Accuracy (%)", format="%.2f"),
            "params": st.column_config.NumberColumn("Parameters", format="localized"),
            "training_seconds": st.column_config.NumberColumn("Training (s)", format="%.0f"),
            "epochs": "Epochs",
        },
    )


@st.fragment
def loss_section(pair: list[common.ModelEntry]) -> None:
    st.subheader("Loss per epoch")
    view = st.segmented_control("View", ["Overlaid", "Side by side"], default="Overlaid", required=True,
                                key="compare_loss_view", persist_state="session")
    histories = {e.name: e.meta.get("history") or [] for e in pair}
    archs = {e.name: e.arch for e in pair}
    if view == "Overlaid":
        st.plotly_chart(figures.loss_curves(histories, archs), key="compare_losses", config=NO_CHART_BAR)
        st.caption("Solid: training, dashed: validation, dotted: test. Training loss is averaged over each "
                   "epoch while the weights change; validation and test use the weights at its end. A first "
                   "epoch far above the rest is left off the scale: double-click a chart to see all of it.")
    else:
        for column, entry in zip(st.columns(2), pair, strict=True):
            column.plotly_chart(figures.loss_parts(entry.name, histories[entry.name], entry.arch),
                                key=f"compare_parts_{entry.arch}", config=NO_CHART_BAR)


def latent_section(pair: list[common.ModelEntry]) -> None:
    st.subheader("Test digits in latent space")
    for column, entry in zip(st.columns(2), pair, strict=True):
        with column:
            plane = common.latent_plane(entry, entry.signature)
            if plane is None:
                st.caption(f"{entry.name} stores no test-set latents.")
                continue
            names = ("z₀", "z₁") if entry.latent_dim == 2 else ("principal axis 1", "principal axis 2")
            title = entry.name + ("" if entry.latent_dim == 2 else f" ({entry.latent_dim}-D, first two principal axes)")
            st.plotly_chart(figures.latent_map(*plane, title=title, axis_names=names, height=420),
                            key=f"compare_latent_{entry.arch}", config=NO_CHART_BAR)
    st.caption(f"Posterior means of {common.MAX_POINTS:,} test digits (a fixed sample), each under its own label. "
               "With the label given to the decoder, the latent space holds style, not identity.")


def reconstruction_section(pair: list[common.ModelEntry]) -> None:
    st.subheader("Ten test digits and their reconstructions")
    folder, problem = common.mnist_folder()
    examples = common.test_examples(str(folder)) if folder else problem
    if isinstance(examples, str):
        st.info(f"The MNIST test images are not available, so this figure is skipped. {examples}",
                icon=":material/info:")
        return
    images, labels = examples
    st.image(figures.tile(images, 3, gap=4), caption="Originals: the first test image of each digit",
             output_format="PNG")
    for entry in pair:
        recon = common.reconstruct_examples(entry, entry.signature, images, labels)
        st.image(figures.tile(recon, 3, gap=4), caption=f"Reconstructed by {entry.name}", output_format="PNG")


def recognition_section(pair: list[common.ModelEntry]) -> None:
    st.subheader("Recognition")
    missing = [e.name for e in pair if not e.evaluation]
    if missing:
        st.info(f"No evaluation recorded for {', '.join(missing)}; run "
                f"`python -m cvae_core.evaluate --checkpoint checkpoints/NAME` to add accuracy, "
                "confusion matrix and noise curves.", icon=":material/info:")
    evaluated = [e for e in pair if e.evaluation]
    if not evaluated:
        return
    for column, entry in zip(st.columns(2), pair, strict=True):
        if entry.evaluation.get("confusion"):
            column.plotly_chart(figures.confusion(entry.evaluation["confusion"], f"{entry.name}: confusion"),
                                key=f"compare_confusion_{entry.arch}", config=NO_CHART_BAR)
    noise = {e.name: e.evaluation["noise"] for e in evaluated if e.evaluation.get("noise")}
    if noise:
        st.plotly_chart(figures.noise_curves(noise, {e.name: e.arch for e in evaluated}),
                        key="compare_noise", config=NO_CHART_BAR)


def render() -> None:
    st.title("Compare conv vs MLP")
    selected = common.require_model()
    if selected is None:
        return
    entries = common.available_models()
    convs = [e for e in entries if e.arch == "conv"]
    mlps = [e for e in entries if e.arch == "mlp"]
    if not convs or not mlps:
        found = ", ".join(e.name for e in entries)
        st.info(f"The comparison needs one convolutional and one MLP model; found only: {found}. "
                "Train the missing one with `python -m cvae_core.train --model conv` (or `--model mlp`).",
                icon=":material/info:")
        return
    left, right = st.columns(2)
    pair = [pick(left, "Convolutional model", convs, selected.latent_dim, "compare_conv"),
            pick(right, "Multilayer model", mlps, selected.latent_dim, "compare_mlp")]
    loaded = [common.load(e) for e in pair]
    if None in loaded:
        bad = " and ".join(e.name for e, got in zip(pair, loaded, strict=True) if got is None)
        st.warning(f"{bad} could not be loaded (the sidebar says why); pick another model.", icon=":material/error:")
        return
    pair = loaded
    rows = [common.summary(e) for e in pair]
    st.success(common.verdict(*rows), icon=":material/balance:")
    metrics_table(rows)
    loss_section(pair)
    latent_section(pair)
    reconstruction_section(pair)
    recognition_section(pair)


if __name__ == "__main__":
    render()
