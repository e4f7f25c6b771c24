"""Compare conv vs MLP: the paper's figures, live, from what the checkpoints recorded.

Loss curves per epoch (Fig. 6), test-set latent scatters from the stored latent means (Fig. 5),
the same ten test digits reconstructed by both models (Fig. 4), a metrics table, confusion
matrices, recognition accuracy against noise (Fig. 10), the robustness table written by
``python -m cvae_core.robustness`` (with the recognisers and the CNN reference beside the pair)
and a verdict computed from the numbers (``cvae_core.summary.verdict``).

The page opens on the paper's pair at latent size 2 (conv-2 vs mlp-2); once a model is chosen
in the sidebar it follows that model's latent size. Either size, and any conv and MLP model, can
be chosen here explicitly.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app import cached_models, figures, latent_space, sidebar
from app.examples import mnist_folder, reconstruct_examples, test_examples
from cvae_core.catalogue import ModelEntry, closest, paper_pair
from cvae_core.summary import summary, verdict

NO_CHART_BAR = {"displayModeBar": False}
LATENT_KEY = "compare_latent"  # which latent size is compared
FOLLOWED_KEY = "compare_followed"  # the sidebar choice the page last followed
PAPER_LATENT = 2  # the page opens on the paper's pair at this size


def pair_sizes(entries: list[ModelEntry]) -> list[int]:
    """Latent sizes with at least one conv and one MLP model."""
    return sorted({e.latent_dim for e in entries if e.arch == "conv"} & {e.latent_dim for e in entries if e.arch == "mlp"})


def latent_size(selected: ModelEntry, sizes: list[int]) -> int:
    """The compared latent size: the paper's at first, the sidebar's once a model is chosen there
    (each new choice once), or what was picked on this page since."""
    chosen = sidebar.chosen_model()
    if chosen is not None and chosen != st.session_state.get(FOLLOWED_KEY):
        st.session_state[FOLLOWED_KEY] = chosen
        if selected.latent_dim in sizes:
            st.session_state[LATENT_KEY] = selected.latent_dim
    if st.session_state.get(LATENT_KEY) not in sizes:
        st.session_state[LATENT_KEY] = PAPER_LATENT if PAPER_LATENT in sizes else sizes[0]
    return st.segmented_control("Latent size", sizes, key=LATENT_KEY, required=True, persist_state="session",
                                format_func=lambda d: f"{d}-D models",
                                help="Which pair to compare; the sidebar's model sets it too.")


def pick(column: st.delta_generator.DeltaGenerator, label: str, options: list[ModelEntry],
         preferred: ModelEntry, key: str) -> ModelEntry:
    names = [e.name for e in options]
    st.session_state.setdefault(key, preferred.name)
    if st.session_state[key] not in names:
        st.session_state[key] = preferred.name
    name = column.selectbox(label, names, key=key, persist_state="session")
    return next(e for e in options if e.name == name)


def metrics_table(rows: list[dict]) -> None:
    table = pd.DataFrame(rows)
    table["accuracy"] = table["accuracy"].map(lambda a: None if a is None else 100 * a)
    table["training_minutes"] = table["training_seconds"].map(lambda t: None if t is None else t / 60)
    st.dataframe(
        table, hide_index=True,
        column_order=["model", "arch", "latent_dim", "test_loss", "recon", "kl", "accuracy", "params",
                      "training_minutes", "epochs"],
        column_config={
            "model": "Model", "arch": "Architecture", "latent_dim": "Latent",
            "test_loss": st.column_config.NumberColumn("Test loss (nats)", format="%.2f"),
            "recon": st.column_config.NumberColumn("Reconstruction", format="%.2f"),
            "kl": st.column_config.NumberColumn("KL", format="%.2f"),
            "accuracy": st.column_config.NumberColumn("Accuracy (%)", format="%.2f"),
            "params": st.column_config.NumberColumn("Parameters", format="localized"),
            "training_minutes": st.column_config.NumberColumn("Training (min)", format="%.1f"),
            "epochs": "Epochs",
        },
    )


@st.fragment
def loss_section(pair: list[ModelEntry]) -> None:
    st.subheader("Loss per epoch")
    view = st.segmented_control("View", ["Overlaid", "Side by side"], default="Overlaid", required=True,
                                key="compare_loss_view", persist_state="session")
    histories = {e.name: list(e.info.training.history) for e in pair}
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


def latent_section(pair: list[ModelEntry]) -> None:
    st.subheader("Test digits in latent space")
    for column, entry in zip(st.columns(2), pair, strict=True):
        with column:
            plane = latent_space.latent_plane(entry, entry.signature)
            if plane is None:
                st.caption(f"{entry.name} stores no test-set latents.")
                continue
            names = ("z₀", "z₁") if entry.latent_dim == 2 else ("principal axis 1", "principal axis 2")
            title = entry.name + ("" if entry.latent_dim == 2 else f" ({entry.latent_dim}-D, first two principal axes)")
            st.plotly_chart(figures.latent_map(*plane, title=title, axis_names=names, height=420),
                            key=f"compare_latent_{entry.arch}", config=NO_CHART_BAR)
    st.caption(f"Posterior means of {latent_space.MAX_POINTS:,} test digits (a fixed sample), each under its own label. "
               "With the label given to the decoder, the latent space holds style, not identity.")


def reconstruction_section(pair: list[ModelEntry]) -> None:
    st.subheader("Ten test digits and their reconstructions")
    folder, problem = mnist_folder()
    examples = test_examples(str(folder)) if folder else problem
    if isinstance(examples, str):
        st.info(f"The MNIST test images are not available, so this figure is skipped. {examples}",
                icon=":material/info:")
        return
    images, labels = examples
    st.image(figures.tile(images, 3, gap=4), caption="Originals: the first test image of each digit",
             output_format="PNG")
    for entry in pair:
        recon = reconstruct_examples(entry, entry.signature, images, labels)
        st.image(figures.tile(recon, 3, gap=4), caption=f"Reconstructed by {entry.name}", output_format="PNG")


def recognition_section(pair: list[ModelEntry]) -> None:
    st.subheader("Recognition")
    missing = [e.name for e in pair if e.evaluation is None]
    if missing:
        st.info(f"No evaluation recorded for {', '.join(missing)}; run "
                f"`python -m cvae_core.evaluate --checkpoint checkpoints/NAME` to add accuracy, "
                "confusion matrix and noise curves.", icon=":material/info:")
    evaluated = [e for e in pair if e.evaluation is not None]
    if not evaluated:
        return
    for column, entry in zip(st.columns(2), pair, strict=True):
        if entry.evaluation is not None and entry.evaluation.confusion:
            column.plotly_chart(figures.confusion([list(row) for row in entry.evaluation.confusion],
                                                  f"{entry.name}: confusion"),
                                key=f"compare_confusion_{entry.arch}", config=NO_CHART_BAR)
    noise = {e.name: list(e.evaluation.noise) for e in evaluated if e.evaluation.noise}
    if noise:
        st.plotly_chart(figures.noise_curves(noise, {e.name: e.arch for e in evaluated}),
                        key="compare_noise", config=NO_CHART_BAR)


def _share(value: object) -> str:
    return f"{100 * value:.1f} %" if isinstance(value, int | float) and not isinstance(value, bool) else "—"


def robustness_table(models: list[ModelEntry]) -> pd.DataFrame:
    """Rows: clean accuracy, the corruption means, mean calibration error, then each corruption
    (accuracy over its severities); one column per model, "not measured" where it has no record."""
    columns: dict[str, dict[str, str]] = {}
    order: list[str] = []
    for entry in models:
        r = entry.info.robustness
        if r is None:
            columns[entry.name] = {}
            continue
        col = {
            "clean": _share(None if r.clean is None else r.clean.accuracy),
            "mean over corruptions": _share(r.mean_accuracy),
            "mean over held-out corruptions": _share(r.mean_accuracy_held_out),
            "mean calibration error (ECE)": _share(r.mean_ece),
        }
        if r.ood is not None and r.ood.auroc_not_digit_like is not None:
            col["not-a-digit AUROC"] = _share(r.ood.auroc_not_digit_like)
        for name, c in r.corruptions.items():
            row = name.replace("_", " ") + (" (held out)" if c.held_out else "")
            col[row] = _share(c.accuracy)
        columns[entry.name] = col
        order += [k for k in col if k not in order]
    order = order or ["clean"]
    rows = {name: [col.get(k, "—") if col else "not measured" for k in order] for name, col in columns.items()}
    return pd.DataFrame(rows, index=order).rename_axis("accuracy under")


def robustness_section(pair: list[ModelEntry]) -> None:
    st.subheader("Robustness")
    others = [e for e in cached_models.all_models()
              if e.ok and e.role in ("recogniser", "reference") and e.name not in {p.name for p in pair}]
    models = pair + sorted(others, key=lambda e: (e.role != "recogniser", e.name))
    if not any(e.info.robustness for e in models):
        st.caption("No robustness measured yet: `python -m cvae_core.robustness --checkpoint checkpoints/NAME` "
                   "scores a model on 15 corruptions (noise, blur, rotation, scans, …) and on non-digits.")
    st.dataframe(robustness_table(models), width="stretch")
    st.caption("Accuracy on the 10,000 test digits under each corruption, averaged over its severities (held out: "
               "never seen in any model's training), with calibrated probabilities; ECE is the mean gap between "
               "confidence and accuracy (lower is better). A CNN reference is a plain classifier of the same data, "
               "for scale: it is not offered as an app model.")


def render() -> None:
    st.title("Compare conv vs MLP")
    selected = cached_models.require_model()
    if selected is None:
        return
    entries = cached_models.available_models()
    sizes = pair_sizes(entries)
    if not sizes:
        found = ", ".join(e.name for e in entries)
        st.info(f"The comparison needs one convolutional and one MLP model; found only: {found}. "
                "Train the missing one with `python -m cvae_core.train --model conv` (or `--model mlp`).",
                icon=":material/info:")
        return
    size = latent_size(selected, sizes)
    convs = [e for e in entries if e.arch == "conv"]
    mlps = [e for e in entries if e.arch == "mlp"]
    paper = paper_pair(entries, size) or (closest(convs, size), closest(mlps, size))
    left, right = st.columns(2)
    pair = [pick(left, "Convolutional model", convs, paper[0], f"compare_conv_{size}"),
            pick(right, "Multilayer model", mlps, paper[1], f"compare_mlp_{size}")]
    loaded = [cached_models.load(e) for e in pair]
    if None in loaded:
        bad = " and ".join(e.name for e, got in zip(pair, loaded, strict=True) if got is None)
        st.warning(f"{bad} could not be loaded (the sidebar says why); pick another model.", icon=":material/error:")
        return
    pair = loaded
    rows = [summary(e.info, name=e.name) for e in pair]
    st.success(str(verdict(rows)), icon=":material/balance:")
    metrics_table(rows)
    loss_section(pair)
    latent_section(pair)
    reconstruction_section(pair)
    recognition_section(pair)
    robustness_section(pair)


if __name__ == "__main__":
    render()
