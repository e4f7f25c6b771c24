"""Compare conv vs MLP: the paper's figures, live, from what the checkpoints recorded, and a verdict.

First which model is better at what and which to pick for what purpose (``cvae_core.summary.verdict``,
the function the README's Results also use), then the evidence: a metrics table, loss curves per epoch
(Fig. 6), test-set latent scatters from the stored latent means (Fig. 5), the same ten test digits
reconstructed by both models (Fig. 4), confusion matrices, recognition accuracy against noise
(Fig. 10) and the robustness table written by ``python -m cvae_core.robustness`` (with the
recognisers and the CNN reference beside the pair).

The page opens on the pair of the sidebar model's latent size (the default model's until one is
chosen), follows each new choice made in the sidebar, and either size, and any conv and MLP model,
can be chosen here explicitly. On a phone the robustness table turns: one row per model, the
measures scrolling sideways beside the pinned model name (``app/style.css`` shows one of the two).
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app import cached_models, figures, latent_space, measured, sidebar
from app.examples import mnist_folder, reconstruct_examples, test_examples
from app.markdown import escape_markdown
from cvae_core.catalogue import ModelEntry, closest, paper_pair
from cvae_core.checkpoints import CheckpointMeta
from cvae_core.summary import Verdict, summary, verdict

NO_CHART_BAR = {"displayModeBar": False}

LATENT_KEY = "compare_latent"  # which latent size is compared
FOLLOWED_KEY = "compare_followed"  # the sidebar choice the page last followed
WIDE_TABLE, NARROW_TABLE = "compare_robust_wide", "compare_robust_narrow"  # containers app/style.css switches
EQUAL_WIDE, EQUAL_NARROW = "compare_equal_time_wide", "compare_equal_time_narrow"  # the same, at equal time
NATS = ("Loss is the negative ELBO in nats per image: how many units of surprise (natural-log units of "
        "information) the model needs to describe a test digit, reconstruction plus KL. Lower is better; "
        "the numbers compare these models with each other.")
TERMS = ("**ECE** (expected calibration error): the gap between how sure the model says it is and how often "
         "it is right, averaged over 15 bins of confidence. **AUROC** (area under the ROC curve) of "
         "p(not a digit): the chance that a random non-digit gets a higher p(not a digit) than a random test "
         "digit (1 = always, 0.5 = a coin toss). **Held out**: corruptions no model saw in training.")


def pair_sizes(entries: list[ModelEntry]) -> list[int]:
    """Latent sizes with at least one conv and one MLP model."""
    return sorted({e.latent_dim for e in entries if e.arch == "conv"} & {e.latent_dim for e in entries if e.arch == "mlp"})


def latent_size(selected: ModelEntry, sizes: list[int]) -> int:
    """The compared latent size: the sidebar model's (the default one's until a model is chosen
    there; each new choice once), or what was picked on this page since."""
    chosen = sidebar.chosen_model()
    if chosen is not None and chosen != st.session_state.get(FOLLOWED_KEY):
        st.session_state[FOLLOWED_KEY] = chosen
        if selected.latent_dim in sizes:
            st.session_state[LATENT_KEY] = selected.latent_dim
    if st.session_state.get(LATENT_KEY) not in sizes:
        st.session_state[LATENT_KEY] = min(sizes, key=lambda d: (abs(d - selected.latent_dim), d))
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


# ----------------------------------------------------------------------------------- verdict


def verdict_section(found: Verdict) -> None:
    """What each model is better at, side by side, then one pick per purpose: all words from the
    core's ``Verdict``, the same the README's Results print."""
    st.subheader("Which is better?", help="Every figure measured for both models counts: the test loss, "
                 "clean test digits, the noise curve below, the corruption suite and calibration where they "
                 "were run, and the size. " + NATS)
    strengths = found.strengths()
    for column, (model, phrases) in zip(st.columns(len(strengths)), strengths.items(), strict=True):
        with column.container(border=True):
            st.markdown(f"**{escape_markdown(model)}** is better at")
            st.markdown("\n".join(f"- {escape_markdown(p)}" for p in phrases) if phrases else "nothing measured here.")
    for line in found.ties():
        st.caption(escape_markdown(line + "."))
    picks = "\n".join(f"- **{r.purpose.capitalize()}:** " + escape_markdown(f"{r.model}, {r.reason}" if r.model else r.reason)
                      for r in found.recommendations)
    st.success("**Pick**\n\n" + picks, icon=":material/balance:")
    for model, names in found.missing().items():
        st.caption(f"Not measured for {escape_markdown(model)}: {', '.join(names)}. "
                   "`python -m cvae_core.robustness --checkpoint checkpoints/NAME` adds the corruption suite and a "
                   "calibration.")
    if found.uncalibrated:
        st.warning(f"The probabilities of {' and '.join(map(escape_markdown, found.uncalibrated))} are **not "
                   "calibrated**: no temperature was fitted for them, so a “> 99 %” from them means “its first "
                   "choice”, not a 99 % chance.", icon=":material/warning:")


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
            "test_loss": st.column_config.NumberColumn("Test loss", format="%.2f", help=NATS),
            "recon": st.column_config.NumberColumn("Reconstruction", format="%.2f",
                                                   help="The part of the test loss that measures how far "
                                                        "the reconstruction is from the digit."),
            "kl": st.column_config.NumberColumn("KL", format="%.2f",
                                                help="The part of the test loss that measures how far the "
                                                     "encoder's codes stray from the standard normal prior."),
            "accuracy": st.column_config.NumberColumn("Accuracy (%)", format="%.2f",
                                                      help="Clean MNIST test digits read right."),
            "params": st.column_config.NumberColumn("Parameters", format="localized"),
            "training_minutes": st.column_config.NumberColumn("Training (min)", format="%.1f"),
            "epochs": "Epochs",
        },
    )


# ------------------------------------------------------------------------------------ losses


@st.fragment
def loss_section(pair: list[ModelEntry]) -> None:
    st.subheader("Loss per epoch", help=NATS)
    view = st.segmented_control("View", ["Overlaid", "Side by side"], default="Overlaid", required=True,
                                key="compare_loss_view", persist_state="session")
    histories = {e.name: list(e.info.training.history) for e in pair}
    archs = {e.name: e.arch for e in pair}
    if view == "Overlaid":
        panels = figures.loss_panels(histories, archs)
        for column, part, fig in zip(st.columns(len(panels)), figures.LOSS_PARTS, panels, strict=True):
            column.plotly_chart(fig, key=f"compare_losses_{part}", config=NO_CHART_BAR)
        st.caption("Solid: training, dashed: validation, dotted: test. Training loss is averaged over each "
                   "epoch while the weights change; validation and test use the weights at its end. A first "
                   "epoch far above the rest is left off the scale: double-click a chart to see all of it.")
    else:
        for column, entry in zip(st.columns(2), pair, strict=True):
            column.plotly_chart(figures.loss_parts(entry.name, histories[entry.name], entry.arch),
                                key=f"compare_parts_{entry.arch}", config=NO_CHART_BAR)


# -------------------------------------------------------------------------------- latent, images


def latent_section(pair: list[ModelEntry]) -> None:
    st.subheader("Test digits in latent space")
    for column, entry in zip(st.columns(2), pair, strict=True):
        with column:
            plane = latent_space.latent_plane(entry, entry.signature)
            st.markdown(f"**{escape_markdown(entry.name)}**")
            if plane is None:
                st.caption(f"{escape_markdown(entry.name)} stores no test-set latents.")
                continue
            names = ("z₀", "z₁") if entry.latent_dim == 2 else ("direction 1", "direction 2")
            st.plotly_chart(figures.latent_map(*plane, axis_names=names, height=400),
                            key=f"compare_latent_{entry.arch}", config=NO_CHART_BAR)
    many = any(e.latent_dim > 2 for e in pair)
    st.caption(f"Where {latent_space.MAX_POINTS:,} test digits (a fixed sample) land in the latent space, each "
               "encoded under its own label. With the label given to the decoder, the latent space holds style, "
               "not identity: the digits overlap."
               + (" A 16-D space is shown along the two directions in which the digits spread most." if many else ""),
               help="The points are posterior means. For models with more than two latent dimensions the map "
                    "projects them on the first two principal axes of the test latents." if many else None)


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


# ------------------------------------------------------------------------------- recognition


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
    st.caption("Each row is a digit as written, each column the digit read: the diagonal counts the right "
               "answers, every other cell a mistake (hover for the share of the row).")
    noise = {e.name: list(e.evaluation.noise) for e in evaluated if e.evaluation.noise}
    if noise:
        st.plotly_chart(figures.noise_curves(noise, {e.name: e.arch for e in evaluated}),
                        key="compare_noise", config=NO_CHART_BAR)


def in_words(items: list[str]) -> str:
    """"a", "a and b", "a, b and c"."""
    return " and ".join(filter(None, [", ".join(items[:-1]), *items[-1:]]))


def equal_time_section(pair: list[ModelEntry]) -> None:
    """The conv recogniser at the MLP recogniser's training time, when those two are compared."""
    found = measured.equal_time()
    if found is None:
        return
    recognisers = [found["rows"][2]["label"], found["rows"][0]["label"]]  # conv, MLP
    if {e.name for e in pair} != set(recognisers):
        if all(any(e.name == name for e in cached_models.available_models()) for name in recognisers):
            st.caption(f"Pick **{recognisers[0]}** and **{recognisers[1]}** above to compare the two recognisers, "
                       "also at equal training time.")
        return
    mlp, short, full = found["rows"]
    st.subheader("At equal training time",
                 help="Is the conv better per minute of training, or only because it trained longer? Its own "
                      "recipe, cut to the epochs that cost what the MLP's took, measured on the same digits.")
    better = [label for key, label in measured.EQUAL_TIME_MEASURES.items() if short[key] > mlp[key]]
    worse = [label for key, label in measured.EQUAL_TIME_MEASURES.items() if short[key] < mlp[key]]
    st.markdown(
        f"One conv epoch costs **{found['ratio']:.1f}** MLP epochs here, so in the MLP's {mlp['epochs']} epochs "
        f"the conv trains **{short['epochs']}**. At that budget the conv is ahead on {in_words(better) or 'nothing'}"
        f"{', and behind on ' + in_words(worse) if worse else ''}; "
        f"trained to the end ({full['epochs']} epochs) it reads {100 * full['clean_accuracy']:.2f} % of the clean "
        f"digits against the MLP's {100 * mlp['clean_accuracy']:.2f} %.")
    accuracies = {k: v for k, v in measured.EQUAL_TIME_MEASURES.items() if k != "letters_flagged"}
    rows = [{**mlp, "label": f"{mlp['label']} ({mlp['epochs']} epochs)"},
            {**short, "label": f"conv, {short['epochs']} epochs (equal time)"},
            {**full, "label": f"{full['label']} ({full['epochs']} epochs)"}]
    st.plotly_chart(figures.equal_time_dots(rows, accuracies, ["mlp", "conv", "conv"]),
                    key="compare_equal_time", config=NO_CHART_BAR)
    table = pd.DataFrame({r["label"]: [f"{r['epochs']}", f"{r['minutes']:.0f} min",
                                       *[_share(r[k]) for k in measured.EQUAL_TIME_MEASURES]] for r in rows},
                         index=["epochs", "training time (as recorded)", *measured.EQUAL_TIME_MEASURES.values()])
    with st.container(key=EQUAL_WIDE):
        st.dataframe(table.rename_axis("measure"), width="stretch")
    with st.container(key=EQUAL_NARROW):  # a phone: one row per model, the measures scroll beside its name
        st.dataframe(table.T.rename_axis("model"), width="stretch",
                     column_config={"_index": st.column_config.Column(pinned=True)})
    lettered = [e.name for e in pair if e.info.training.train_config.get("letters")]
    letters_note = (f" Only {in_words(lettered)} learnt letters as non-digits (`--letters`): that row compares "
                    "the recipes, not the architectures." if len(lettered) == 1 else "")
    st.caption(f"The first {found['n']:,} test digits, every corruption and the held-out letters, for all three "
               f"(`{found['command']}`, {found['generated']}). Training times are each run's own, on whatever "
               f"else the machine was doing then; the epoch counts are what the budget bought.{letters_note}")


def _share(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f} %"


def robustness_column(meta: CheckpointMeta) -> dict[str, str]:
    """One model's robustness figures by row name (empty when it has no record)."""
    r = meta.robustness
    if r is None:
        return {}
    col = {
        "clean digits": _share(None if r.clean is None else r.clean.accuracy),
        "mean over the corruptions": _share(r.mean_accuracy),
        "mean over the held-out corruptions": _share(r.mean_accuracy_held_out),
        "calibration error, mean (lower is better)": _share(r.mean_ece),
    }
    if r.ood is not None and r.ood.auroc_not_digit_like is not None:
        col["tells non-digits from digits"] = _share(r.ood.auroc_not_digit_like)
    for name, c in r.corruptions.items():
        col[name.replace("_", " ") + (" (held out)" if c.held_out else "")] = _share(c.accuracy)
    return col


def robustness_table(models: list[ModelEntry]) -> pd.DataFrame:
    """Rows: clean accuracy, the corruption means, mean calibration error, not-a-digit separation,
    then each corruption (accuracy over its severities); one column per model, "not measured" where
    it has no record."""
    columns = {entry.name: robustness_column(entry.info) for entry in models}
    order = list(dict.fromkeys(k for col in columns.values() for k in col)) or ["clean digits"]
    rows = {name: [col.get(k, "—") if col else "not measured" for k in order] for name, col in columns.items()}
    return pd.DataFrame(rows, index=order).rename_axis("measure")


def robustness_section(pair: list[ModelEntry]) -> None:
    st.subheader("Robustness", help=TERMS)
    others = [e for e in cached_models.all_models()
              if e.ok and e.role in ("recogniser", "reference") and e.name not in {p.name for p in pair}]
    models = pair + sorted(others, key=lambda e: (e.role != "recogniser", e.name))
    if not any(e.info.robustness for e in models):
        st.caption("No robustness measured yet: `python -m cvae_core.robustness --checkpoint checkpoints/NAME` "
                   "scores a model on 15 corruptions (noise, blur, rotation, scans, …) and on non-digits.")
    table = robustness_table(models)
    with st.container(key=WIDE_TABLE):
        st.dataframe(table, width="stretch")
    with st.container(key=NARROW_TABLE):  # a phone: one row per model, the measures scroll beside its name
        st.dataframe(table.T.rename_axis("model"), width="stretch",
                     column_config={"_index": st.column_config.Column(pinned=True)})
    st.caption("Accuracy on the 10,000 test digits under each corruption, averaged over its severities (held out: "
               "never seen in any model's training). The calibration error is how far the model's confidence "
               "is from how often it is right (lower is better); “tells non-digits from digits” is how often a "
               "generated non-digit looks less like a digit to the model than a real digit does. A CNN reference "
               "is a plain classifier of the same data, for scale: it is not offered as an app model.", help=TERMS)


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
    verdict_section(verdict(rows))
    metrics_table(rows)
    equal_time_section(pair)
    loss_section(pair)
    latent_section(pair)
    reconstruction_section(pair)
    recognition_section(pair)
    robustness_section(pair)


if __name__ == "__main__":
    render()
