"""Train: watch a CVAE learn. Pick an architecture, a latent size, β and the rest (or a preset), start,
and watch the loss fall, the latent map take shape and the reconstructions sharpen;
then draw a digit for the model you just trained.

The page never trains anything itself: Start queues a run (``cvae_core.runs.queue``), which a
separate worker process trains (``python -m cvae_core.runs.worker``), one run at a time per server,
at low priority on one core. The live view is a fragment that polls the run's folder (metrics and
snapshots, ``cvae_core.runs.folder``) every ``POLL_SECONDS``; a rerun, a closed tab or a second
visitor never touches the worker. The run's id is in the URL (``?run=…``), so a refresh or another
device finds it again. A finished model is published to the trained models and joins the sidebar's
picker ("Trained here") with no restart; it can be deleted here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch
from plotly.subplots import make_subplots

from app import cached_models, figures, sidebar
from app.markdown import escape_markdown
from cvae_core import inference, runs
from cvae_core.runs import PRESETS, RunFolder, RunRefused, RunRequest, queue
from cvae_core.runs.request import ARCHITECTURES, LIMITS, TRAINING_SIZES, budget

POLL_SECONDS = 2.0
RUN_KEY = "train_run"  # the run this session watches; also the URL's ?run=
LEARNING_RATES = (1e-4, 3e-4, 5e-4, 1e-3, 2e-3, 3e-3, 5e-3, 1e-2)
BATCH_SIZES = (16, 32, 64, 128, 256, 512, 1024)
SIZES = (1000, *TRAINING_SIZES)
RUNS_LISTED = 8
CHART = {"displayModeBar": False}
PAGES = Path(__file__).parent
# The form's widgets: session-state key -> RunRequest field.
FIELDS = {"train_arch": "arch", "train_latent_dim": "latent_dim", "train_beta": "beta", "train_epochs": "epochs",
          "train_lr": "lr", "train_batch_size": "batch_size", "train_size": "train_size", "train_augment": "augment",
          "train_disc_weight": "disc_weight", "train_seed": "seed"}


# ------------------------------------------------------------------------------------ the form


def apply_preset(request: RunRequest) -> None:
    for key, name in FIELDS.items():
        st.session_state[key] = getattr(request, name)


def request_form() -> RunRequest:
    """The settings of a new run, as widgets; starts from the quick preset."""
    for key, name in FIELDS.items():
        st.session_state.setdefault(key, getattr(PRESETS[0].request, name))
    with st.container(horizontal=True, gap="small"):
        for preset in PRESETS:
            st.button(preset.label, on_click=apply_preset, args=(preset.request,), icon=":material/bolt:",
                      key=f"train_preset_{PRESETS.index(preset)}")
    a, b, c = st.columns(3)
    arch = a.segmented_control("Architecture", list(ARCHITECTURES), key="train_arch", required=True,
                               format_func=lambda k: k.upper() if k == "mlp" else "Conv",
                               help=" · ".join(ARCHITECTURES.values()))
    latent = b.number_input("Latent size", min_value=1, max_value=int(LIMITS["latent_dim"][1]), step=1,
                            key="train_latent_dim", help="2 draws the latent space as it is; more, on its principal axes.")
    beta = c.number_input("β (weight of the KL term)", min_value=LIMITS["beta"][0], max_value=LIMITS["beta"][1],
                          step=0.25, format="%.2f", key="train_beta",
                          help="1 is the plain CVAE; larger pulls codes towards N(0, I) (smoother map, blurrier digits).")
    a, b, c = st.columns(3)
    epochs = a.number_input("Epochs", min_value=1, max_value=int(LIMITS["epochs"][1]), step=1, key="train_epochs")
    size = b.segmented_control("Training images", SIZES, key="train_size", required=True,
                               format_func=lambda n: "all 55k" if n == SIZES[-1] else f"{n // 1000}k")
    batch = c.select_slider("Batch size", BATCH_SIZES, key="train_batch_size")
    a, b, c = st.columns(3)
    lr = a.select_slider("Learning rate", LEARNING_RATES, key="train_lr", format_func=lambda v: f"{v:g}")
    disc = b.number_input("Hybrid weight", min_value=0.0, max_value=LIMITS["disc_weight"][1], step=1.0,
                          key="train_disc_weight",
                          help="0: the plain CVAE. Above 0, a share of each batch also pays for misreading its digit "
                               "(Bayes' rule over the labels): it recognises better, at some cost in loss and time.")
    seed = c.number_input("Seed", min_value=0, max_value=int(LIMITS["seed"][1]), step=1, key="train_seed")
    augment = st.toggle("Augmentation (random distortions of every batch)", key="train_augment")
    return RunRequest(arch=arch, latent_dim=int(latent), beta=float(beta), epochs=int(epochs), lr=float(lr),
                      batch_size=int(batch), train_size=int(size), augment=bool(augment), disc_weight=float(disc),
                      seed=int(seed))


def minutes(seconds: float) -> str:
    return "under a minute" if seconds < 60 else f"about {round(seconds / 60)} minute{'s' if seconds >= 90 else ''}"


def new_run() -> None:
    st.subheader("Start a run")
    request = request_form()
    try:
        request.check()
        problem = None
    except RunRefused as e:
        problem = str(e)
    if problem:
        st.error(problem, icon=":material/block:")
    else:
        st.caption(f"{request.epochs} epochs × {request.train_size:,} images = {request.cost:,} image passes (this "
                   f"server allows {budget():,} per run); expected time {minutes(request.expected_seconds)} on one "
                   "core, once it starts.")
    st.markdown("The same run from a terminal (`MODEL` is the name the run gives it):")
    st.code(request.command("MODEL"), language="bash", wrap_lines=True)
    if st.button("Start training", type="primary", icon=":material/play_arrow:", disabled=problem is not None,
                 key="train_start"):
        try:
            run = runs.submit(request)
        except RunRefused as e:
            st.error(str(e), icon=":material/block:")
            return
        except OSError as e:
            st.error(f"The run cannot be written to {runs.runs_dir()} ({e.strerror or e}); set CVAE_RUNS_DIR to a "
                     "folder this server may write.", icon=":material/error:")
            return
        watch(run.id)
        st.rerun()


# ------------------------------------------------------------------------------------ watching


def watch(run_id: str) -> None:
    st.session_state[RUN_KEY] = run_id
    st.query_params["run"] = run_id


def watched() -> RunFolder | None:
    """The run in the URL (else the one this session watched), or None with a note when there is none."""
    run_id = st.query_params.get("run") or st.session_state.get(RUN_KEY)
    if not run_id:
        return None
    folder = runs.run_folder(run_id)
    if folder is None:
        st.warning(f"There is no run `{escape_markdown(str(run_id)[:40])}` on this server (old runs are removed after "
                   "a while).", icon=":material/help:")
        st.session_state.pop(RUN_KEY, None)
        st.query_params.pop("run", None)
        return None
    watch(folder.id)
    return folder


def progress(folder: RunFolder, status: runs.Status, metrics: list[dict[str, Any]]) -> None:
    start = next((m for m in metrics if m.get("kind") == "start"), None)
    points = [m for m in metrics if m.get("kind") in ("batch", "epoch")]
    if status.state == "queued":
        place = runs.position(folder) or 1
        ahead = "next to start" if place == 1 else f"{place - 1} runs ahead of it"
        st.info(f"Waiting in this server's queue: number {place} ({ahead}). One run trains at a time; it starts by "
                "itself, and you may close this tab meanwhile.", icon=":material/hourglass_top:")
    elif status.state == "starting" or start is None:
        st.info("Starting the training process (loading PyTorch and MNIST)…", icon=":material/hourglass_top:")
    elif status.state == "evaluating":
        st.info("Training done: calibrating the model on validation digits and measuring its accuracy by Bayes' "
                "rule on test digits…", icon=":material/fact_check:")
    if start is None or not points or status.state not in ("running", "evaluating"):
        return
    last, total = points[-1], max(1, int(start["total_steps"]))
    st.progress(min(1.0, last["step"] / total),
                text=f"epoch {last['epoch']} of {start['epochs']} · step {last['step']:,} of {total:,}")
    batches = [m for m in points if m["kind"] == "batch"][-2:]
    speed = None
    if len(batches) == 2 and batches[1]["seconds"] > batches[0]["seconds"]:
        speed = (batches[1]["step"] - batches[0]["step"]) * start["batch_size"] / (batches[1]["seconds"] - batches[0]["seconds"])
    left = (total - last["step"]) * last["seconds"] / max(1, last["step"])
    a, b, c = st.columns(3)
    a.metric("Images per second", "…" if speed is None else f"{speed:,.0f}")
    b.metric("Training time left", "done" if status.state == "evaluating" else f"{left:,.0f} s")
    c.metric("Elapsed", f"{last['seconds']:,.0f} s")


def loss_figure(metrics: list[dict[str, Any]]) -> go.Figure | None:
    """Training loss every few batches (thin), and per epoch training (solid) and validation (dashed)."""
    start = next((m for m in metrics if m.get("kind") == "start"), None)
    batch = [m for m in metrics if m.get("kind") == "batch"]
    epochs = [m for m in metrics if m.get("kind") == "epoch"]
    if start is None or not (batch or epochs):
        return None
    per_epoch = max(1, int(start["steps_per_epoch"]))
    fig = make_subplots(rows=1, cols=3, subplot_titles=("total loss", "reconstruction", "KL"))
    for col, part in enumerate(("loss", "recon", "kl"), start=1):
        x = [m["step"] / per_epoch for m in batch]
        y = [m.get(part) for m in batch]
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", name="training, every few batches", legendgroup="batch",
                                 showlegend=col == 1, line={"color": "#9AA5B8", "width": 1}, marker={"size": 3},
                                 hovertemplate="epoch %{x:.2f}: %{y:.1f} nats<extra></extra>"), row=1, col=col)
        for split, dash, colour in (("train", "solid", "#F5A623"), ("val", "dash", "#4C9BE8")):
            fig.add_trace(go.Scatter(
                x=[m["epoch"] for m in epochs], y=[m.get(f"{split}_{part}") for m in epochs], mode="lines+markers",
                name="training, per epoch" if split == "train" else "validation", legendgroup=split,
                showlegend=col == 1, line={"color": colour, "dash": dash},
                hovertemplate=f"{split} epoch %{{x}}: %{{y:.1f}} nats<extra></extra>"), row=1, col=col)
        later = [v for xv, v in zip(x, y, strict=True) if xv >= 0.5 and v is not None]
        later += [m[f"{s}_{part}"] for m in epochs for s in ("train", "val") if m.get(f"{s}_{part}") is not None]
        if later and x and x[-1] >= 1:  # the first half-epoch's losses would dwarf the rest
            low, high = min(later), max(later)
            pad = 0.08 * ((high - low) or 1.0)
            fig.update_yaxes(range=[low - pad, high + pad], row=1, col=col)
    fig.update_xaxes(title="epoch")
    fig.update_yaxes(title="nats per image", row=1, col=1)
    fig.update_layout(height=380, margin={"l": 10, "r": 10, "t": 40, "b": 10}, legend=figures.LEGEND_BELOW)
    return fig


def snapshots(folder: RunFolder, *, live: bool) -> None:
    epochs = folder.snapshot_epochs()
    fixed = folder.snapshot("fixed")
    if not epochs or fixed is None:
        st.caption("The latent map and the digits appear once the worker has taken its first snapshot.")
        return
    # While the run trains the view follows the newest snapshot; turned off (or once it has ended),
    # a slider replays it. The page never moves the slider itself: the visitor's position stays.
    follow = live and len(epochs) > 1 and st.toggle(
        "Follow the newest epoch", value=True, key=f"train_follow_{folder.id}",
        help="Turn it off to replay the run with a slider.")
    if len(epochs) > 1 and not follow:
        epoch = st.select_slider("Epoch", epochs, value=epochs[-1], key=f"train_epoch_{folder.id}",
                                 format_func=lambda e: "before training" if e == 0 else str(e),
                                 help="Replay the run: the map and the digits as they were after that epoch.")
    else:
        epoch = epochs[-1]
    snap = folder.snapshot(f"epoch-{epoch:04d}")
    if snap is None:
        return
    z = snap["latents"].astype(np.float32)
    plane = inference.principal_plane(torch.from_numpy(z)).numpy()
    names = ("z₀", "z₁") if z.shape[1] <= 2 else ("principal axis 1", "principal axis 2")
    left, right = st.columns([1.3, 1], gap="medium")
    when = "before training" if epoch == 0 else f"after epoch {epoch}"
    left.plotly_chart(figures.latent_map(plane, snap["labels"].astype(np.int64), axis_names=names, height=420,
                                         title=f"{len(z):,} validation digits in latent space, {when}"),
                      key=f"train_map_{folder.id}", config=CHART)
    with right:
        st.image(figures.tile(fixed["images"] / 255.0, 2), caption="Ten fixed validation digits", output_format="PNG")
        st.image(figures.tile(snap["recon"] / 255.0, 2), caption=f"Their reconstructions, {when}", output_format="PNG")
        st.image(figures.tile(snap["samples"] / 255.0, 2), caption=f"One sample of each digit (fixed codes), {when}",
                 output_format="PNG")


def charts(folder: RunFolder, *, live: bool) -> None:
    fig = loss_figure(folder.metrics())
    if fig is not None:
        st.plotly_chart(fig, key=f"train_losses_{folder.id}", config=CHART)
    snapshots(folder, live=live)


@st.fragment(run_every=POLL_SECONDS)
def live(folder: RunFolder) -> None:
    """Polls the run folder; when the run ends, reruns the whole page (its result, and the sidebar's picker)."""
    runs.advance()  # notices a worker that died, and starts the next queued run
    status = folder.status()
    if status.finished:
        st.rerun()
    st.button("Cancel", icon=":material/stop:", key=f"train_cancel_{folder.id}", on_click=runs.cancel, args=(folder,),
              help="Stop the run; nothing is saved.")
    progress(folder, status, folder.metrics())
    charts(folder, live=True)


def use_model(name: str, page: str) -> None:
    st.session_state[cached_models.MODEL_KEY] = name
    st.session_state[sidebar.CHOSEN_KEY] = name
    st.switch_page(PAGES / page)


def finished(folder: RunFolder, status: runs.Status) -> None:
    if status.state == "done":
        entry = next((e for e in cached_models.available_models() if e.name == status.model), None)
        st.success(f"Done: **{escape_markdown(status.model or '')}** is in the model picker, under “Trained here”.",
                   icon=":material/check_circle:")
        if entry is not None:
            figures_line = [f"test loss {entry.info.test.loss:.1f} nats" if entry.info.test else None,
                            f"accuracy by Bayes' rule {100 * entry.info.accuracy:.1f} %"
                            + (f" on {entry.evaluation.n:,} test digits" if entry.evaluation and entry.evaluation.n else "")
                            if entry.info.accuracy is not None else None]
            st.markdown(" · ".join(f for f in figures_line if f))
            with st.container(horizontal=True, gap="small"):
                if st.button("Draw a digit for it", icon=":material/draw:", type="primary", key="train_use_draw"):
                    use_model(entry.name, "draw.py")
                if st.button("Explore its latent space", icon=":material/tune:", key="train_use_latent"):
                    use_model(entry.name, "latent.py")
        elif status.model:
            st.caption("That model has since been deleted.")
    elif status.state == "cancelled":
        st.warning(status.message, icon=":material/cancel:")
    else:
        st.error(status.message or "The run failed.", icon=":material/error:")
    if status.state != "done":
        with st.expander("The run's log"):
            st.code(folder.log_tail() or "(empty)", language="text")
    charts(folder, live=False)


def run_view(folder: RunFolder) -> None:
    status = folder.status()
    st.subheader(f"Run {folder.id}")
    try:
        st.code(folder.command, language="bash", wrap_lines=True)
    except RunRefused as e:
        st.error(str(e))
        return
    if status.finished:
        finished(folder, status)
    else:
        live(folder)


# ------------------------------------------------------------------------------------ the server's runs and models


def server_runs() -> None:
    listed = runs.all_runs()[::-1][:RUNS_LISTED]
    if not listed:
        return
    st.subheader("Runs on this server")
    for run in listed:
        status = run.status()
        place = runs.position(run) if status.state == "queued" else None
        state = f"queued, number {place}" if place else status.state
        with st.container(horizontal=True, gap="small", vertical_alignment="center"):
            st.markdown(f"`{run.id}` · {state}" + (f" · {escape_markdown(status.model)}" if status.model else ""))
            st.button("Watch", key=f"train_watch_{run.id}", on_click=watch, args=(run.id,))


def trained_models() -> None:
    mine = [e for e in cached_models.all_models() if e.trained_here]
    if not mine:
        return
    st.subheader("Models trained here")
    st.caption("Every visitor of this server can use them (sidebar, “Trained here”), and delete them.")
    for entry in mine:
        with st.container(horizontal=True, gap="small", vertical_alignment="center"):
            accuracy = entry.info.accuracy if entry.ok else None
            facts = entry.error if not entry.ok else (
                f"accuracy {100 * accuracy:.1f} %" if accuracy is not None else "not evaluated")
            st.markdown(f"**{escape_markdown(entry.name)}** · {escape_markdown(facts or '')}")
            with st.popover("Delete", icon=":material/delete:"):
                st.markdown(f"Delete **{escape_markdown(entry.name)}** for everyone on this server?")
                if st.button("Delete it", type="primary", key=f"train_delete_{entry.name}"):
                    delete(entry.name)


def delete(name: str) -> None:
    try:
        runs.delete(name)
    except runs.TrainedModelError as e:
        st.error(str(e))
        return
    for key in (cached_models.MODEL_KEY, sidebar.CHOSEN_KEY):
        if st.session_state.get(key) == name:
            st.session_state.pop(key)
    st.rerun()


def render() -> None:
    st.title("Train a model")
    st.caption("Watch a CVAE learn: the loss falling, the latent map taking shape, the reconstructions sharpening. "
               f"The run is a separate process on this server ({queue.slots()} at a time, each on one core at low "
               "priority, so the other pages stay quick); you may close the tab and come back to its link.")
    folder = watched()
    if folder is not None:
        run_view(folder)
        st.divider()
    new_run()
    st.divider()
    trained_models()
    server_runs()


if __name__ == "__main__":
    render()
