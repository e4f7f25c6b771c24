"""Generate the README's "Results" section and its figures from the project's own outputs.

    python -m benchmarks.report [--readme README.md] [--no-figures]

Reads every checkpoint's metadata (``checkpoints/*.json``: history, test metrics, the evaluation
written by ``python -m cvae_core.evaluate``) and ``benchmarks/results.json`` (written by
``python -m benchmarks``), and writes:

* ``docs/figures/*.png``: loss curves, the test-set latent scatter, test originals against their
  reconstructions, recognition under noise. Figures are plotly, rendered to a self-contained HTML
  file and screenshotted by Chromium through Playwright (no kaleido needed);
* the README text between ``<!-- results:start -->`` and ``<!-- results:end -->``, replaced whole.

Nothing in the section is typed by hand, so rerunning the command reproduces it. Without the
markers in the README, the section is printed and the command exits with status 1.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks import load as load_benchmark
from benchmarks import memory as memory_benchmark
from benchmarks import recognition_tables, tables
from benchmarks.browser import browser
from benchmarks.paths import RESULTS_JSON, ROOT
from cvae_core import inference
from cvae_core.catalogue import is_paper_model
from cvae_core.checkpoints import Checkpoint, checkpoint_dir, list_checkpoints, load_checkpoint
from cvae_core.corruptions import CORRUPTIONS
from cvae_core.data import DataError, load_mnist
from cvae_core.models import MODELS
from cvae_core.summary import summary, verdict

START, END = "<!-- results:start -->", "<!-- results:end -->"
FIGURES = ROOT / "docs" / "figures"
COLOURS = {"conv": "#4C9BE8", "mlp": "#F5A623"}
DIGIT_COLOURS = ["#636EFA", "#EF553B", "#00CC96", "#AB63FA", "#FFA15A", "#19D3F3", "#FF6692", "#B6E880",
                 "#FF97FF", "#FECB52"]
SPLIT_DASH = {"train": "solid", "val": "dash", "test": "dot"}
WIDTH = 1100  # figure width in CSS pixels
PER_MODEL = ("latency", "throughput", "limit")  # benchmark sections with one entry per model


def load_all() -> list[Checkpoint]:
    return [load_checkpoint(p) for p in list_checkpoints()]


def is_cvae(c: Checkpoint) -> bool:
    """The loss tables and figures are about CVAEs; the CNN reference is in the recognition tables."""
    return c.config.arch in MODELS


def is_hybrid(c: Checkpoint) -> bool:
    """Trained with the extra class-posterior term (``--disc-weight``): not one of the paper's models."""
    return c.info.training.disc_weight > 0


def order(c: Checkpoint) -> tuple[int, bool, str, str]:
    return (c.config.latent_dim, is_hybrid(c), c.config.arch, c.name)


def by_latent(ckpts: list[Checkpoint]) -> dict[int, list[Checkpoint]]:
    """The paper's models (``catalogue.is_paper_model``) grouped by latent size: the conv-vs-MLP comparison."""
    out: dict[int, list[Checkpoint]] = {}
    for c in sorted(ckpts, key=order):
        if is_paper_model(c.info, name=c.name):
            out.setdefault(c.config.latent_dim, []).append(c)
    return out


def notes(c: Checkpoint) -> str:
    command = c.info.training.command or ""
    parts = []
    if c.info.role == "recogniser":
        parts.append("recogniser: distorted digits + non-digits, \"not a digit\" condition")
    if is_hybrid(c):
        parts.append(f"hybrid (class-posterior weight {c.info.training.disc_weight:g})")
    if "--init" in command:
        parts.append("fine-tuned from " + Path(command.split("--init", 1)[1].split()[0]).name
                     + "; time is the fine-tuning only")
    if c.info.training.interrupted:
        parts.append("stopped early")
    return "; ".join(parts)


# ---- text -------------------------------------------------------------------------------------


def _f(v: Any, fmt: str, scale: float = 1.0) -> str:
    return "—" if v is None else format(v * scale, fmt)


def quality_table(ckpts: list[Checkpoint]) -> str:
    sigmas: list[float] = sorted({n["sigma"] for c in ckpts if c.info.evaluation for n in c.info.evaluation.noise})
    noisy = [s for s in sigmas if s > 0]
    head = ["model", "latent", "parameters", "epochs", "test loss (nats)", "recon", "KL", "accuracy",
            *[f"acc. σ={s:g}" for s in noisy], "training time", "notes"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in sorted(filter(is_cvae, ckpts), key=order):
        s, ev = summary(c.info, name=c.name), c.info.evaluation
        acc_at = {n["sigma"]: n["accuracy"] for n in (ev.noise if ev else ())}
        row = [f"`{c.name}`", str(c.config.latent_dim), f"{s.params or 0:,}", str(c.info.training.epochs_run or "—"),
               _f(s.test_loss, ".2f"), _f(s.recon, ".2f"), _f(s.kl, ".2f"),
               _f(s.accuracy, ".2f", 100) + (" %" if ev else ""),
               *[_f(acc_at.get(x), ".1f", 100) + (" %" if x in acc_at else "") for x in noisy],
               "—" if s.training_seconds is None else f"{s.training_seconds / 60:.1f} min", notes(c)]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def verdicts(ckpts: list[Checkpoint]) -> str:
    """One line per latent size: ``cvae_core.summary.verdict``'s sentence, the same the Compare page shows."""
    out = []
    for d, group in by_latent(ckpts).items():
        if len(group) >= 2:
            out.append(f"- latent {d}: {str(verdict([summary(c.info, name=c.name) for c in group])).rstrip('.')}.")
    return "\n".join(out)


def section(ckpts: list[Checkpoint], results: dict[str, Any] | None, figures: list[tuple[str, str]]) -> str:
    parts = [
        START,
        "<!-- Generated by `python -m benchmarks.report` from checkpoints/*.json and benchmarks/results.json. "
        "Do not edit by hand: rerun the command. -->",
        "## Results",
        "",
        "### Quality: conv vs MLP",
        "",
        "Test loss is the negative ELBO in nats per image (Bernoulli cross-entropy with grey levels as targets + KL), "
        "on the 10,000 MNIST test images; accuracy is the CVAE itself used as a classifier through Bayes' rule "
        "(importance-weighted log p(x | y), K samples per label); σ is the Gaussian noise added to the test "
        "images. Training time is the whole run as recorded in the checkpoint (its command, e.g. `--threads 1` "
        "while several models trained at once, shapes it). The verdicts compare the paper's plain models only.",
        "",
        quality_table(ckpts),
        "",
        verdicts(ckpts),
        "",
    ]
    for title, name in figures:
        parts += [f"![{title}](docs/figures/{name})", ""]
    parts += recognition_tables.section(ckpts)
    parts += recognition_tables.pair_section((results or {}).get("sections", {}).get("pair"))
    parts += recognition_tables.equal_time_section((results or {}).get("sections", {}).get("equal_time"))
    parts += ["### Speed and memory", ""]
    if results is None:
        parts += ["No benchmark results yet: run `python -m benchmarks`.", ""]
    else:
        results, unmeasured = shipped_only(results, ckpts)
        m = results.get("machine", {})
        runs = "; ".join(f"{k} {v.get('generated', results.get('generated'))} (1-minute load average "
                         f"{v['load_average'][0]}–{v['load_average'][1]})"
                         for k, v in results.get("sections", {}).items() if "load_average" in v)
        parts += [
            f"Measured by `python -m benchmarks` on {m.get('cpu')} ({m.get('cores')} cores, no GPU), torch "
            f"{m.get('torch')}; each part with its date and the load during it: {runs}. Timings are only as good "
            "as the machine was quiet. All tables, with p50 and p95 of every measure, are in "
            "[benchmarks/results.md](benchmarks/results.md).",
            "",
        ]
        if unmeasured:
            parts += [f"Not measured yet (shipped since the last run; `python -m benchmarks` measures them): "
                      f"{', '.join(f'`{n}`' for n in unmeasured)}. Models measured then but no longer shipped "
                      "are left out.", ""]
        parts += [
            tables.targets_table(results),
            "",
        ]
        sc = (results.get("sections") or {}).get("scaling")
        if sc:
            parts += ["Scaling:", "", tables.scaling_lines(sc), ""]
        mem = (results.get("sections") or {}).get("memory")
        if mem and not mem.get("quick"):
            parts += ["Resident memory, part by part (`python -m benchmarks.memory`):", "",
                      *memory_benchmark.report_lines(mem), ""]
        train_page = (results.get("sections") or {}).get("training")
        if train_page and not train_page.get("quick") and train_page.get("targets"):
            parts += ["The Train page (`python -m benchmarks --only training`: the quick preset through the run "
                      "queue and worker, the first curve point in Chromium, other sessions' strokes while it trains):",
                      "", *train_page_lines(train_page), ""]
        load = (results.get("sections") or {}).get("load")
        if load and not load.get("quick"):
            parts += ["A classroom on one server core, without browsers (`python -m benchmarks.load`):", "",
                      *load_benchmark.report_lines(load), ""]
    parts.append(END)
    return "\n".join(parts)


def train_page_lines(section: dict[str, Any]) -> list[str]:
    """The Train page's targets (``benchmarks.training.target_rows``) as a table."""
    lines = ["| target | measured | bound | met |", "|---|---|---|---|"]
    for row in section["targets"]:
        value = "not measured" if row["measured"] is None else f"{row['measured']:.4g}"
        met = "—" if row["met"] is None else ("yes" if row["met"] else "**no**")
        lines.append(f"| {row['target']} | {value} | {row['bound']} | {met} |")
    return lines


def shipped_only(results: dict[str, Any], ckpts: list[Checkpoint]) -> tuple[dict[str, Any], list[str]]:
    """The benchmark results with only the models that ship (a model measured once but no longer in
    the checkpoint folder is not described), and the shipped CVAEs the per-model sections lack."""
    results, shipped = copy.deepcopy(results), {c.name for c in ckpts}
    measured: set[str] = set()
    for name, sec in results.get("sections", {}).items():
        tables = [sec.get("models")] if name.split("@")[0] in PER_MODEL else []
        tables += [sec.get("inference"), sec.get("training")] if name == "scaling" else []
        for table in filter(None, tables):
            measured |= set(table)
            for model in [m for m in table if m not in shipped]:
                del table[model]
    return results, sorted(c.name for c in ckpts if is_cvae(c) and c.name not in measured)


def replace_section(readme: Path, text: str) -> bool:
    """Put ``text`` (markers included) in place of the README's marked section; False if no markers."""
    if not readme.exists():
        return False
    old = readme.read_text()
    start, end = old.find(START), old.find(END)
    if start < 0 or end < start:
        return False
    readme.write_text(old[:start] + text + old[end + len(END):])
    return True


# ---- figures ----------------------------------------------------------------------------------


def fig_losses(ckpts: list[Checkpoint]) -> Any:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    groups = by_latent(ckpts)
    fig = make_subplots(rows=1, cols=len(groups), subplot_titles=[f"latent {d}" for d in groups])
    for col, group in enumerate(groups.values(), start=1):
        for c in group:
            h = c.info.training.history
            for split, dash in SPLIT_DASH.items():
                fig.add_trace(go.Scatter(
                    x=[e["epoch"] for e in h], y=[e.get(f"{split}_loss") for e in h], mode="lines",
                    name=f"{c.name} {split}", line={"color": COLOURS.get(c.config.arch), "dash": dash},
                ), row=1, col=col)
    fig.update_xaxes(title="epoch")
    fig.update_yaxes(title="loss (nats per image)", row=1, col=1)
    return _layout(fig, "Train / validation / test loss per epoch", 420)


def fig_latents(ckpts: list[Checkpoint]) -> Any:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    shown = [c for group in by_latent(ckpts).values() for c in group if c.latents is not None]
    cols = min(len(shown), 4)
    titles = [f"{c.name}" + (" (first 2 principal axes)" if c.config.latent_dim > 2 else "") for c in shown]
    fig = make_subplots(rows=1, cols=cols, subplot_titles=titles[:cols])
    rng = np.random.default_rng(0)
    for col, c in enumerate(shown[:cols], start=1):
        keep = rng.permutation(len(c.latent_labels))[:4000]  # a fixed subsample keeps the PNG readable
        z = inference.principal_plane(c.latents[keep]).numpy()
        labels = c.latent_labels[keep].numpy()
        for d in range(10):
            m = labels == d
            fig.add_trace(go.Scattergl(
                x=z[m, 0], y=z[m, 1], mode="markers", name=str(d), legendgroup=str(d), showlegend=col == 1,
                marker={"size": 3, "opacity": 0.6, "color": DIGIT_COLOURS[d]},
            ), row=1, col=col)
    return _layout(fig, "Test-set latent means, coloured by label", 440, legend={"itemsizing": "constant"})


def fig_reconstructions(ckpts: list[Checkpoint]) -> Any:
    import plotly.express as px

    data = load_mnist(checksums=False)
    idx = [int(torch.nonzero(data.test_labels == d)[0]) for d in range(10)]
    x = data.test_images[idx].float().div(255).unsqueeze(1)  # (10, 1, 28, 28)
    y = data.test_labels[idx]
    rows = [("test originals", x[:, 0])]
    rows += [(c.name, inference.reconstruct(c.model, x, y)) for c in sorted(filter(is_cvae, ckpts), key=order)]
    gap = 2
    strip = [np.concatenate([np.pad(img.numpy(), ((0, 0), (0, gap)), constant_values=0.25) for img in r], 1)
             for _, r in rows]
    picture = np.concatenate([np.pad(s, ((0, gap), (0, 0)), constant_values=0.25) for s in strip], 0)
    fig = px.imshow(picture, color_continuous_scale="gray", zmin=0, zmax=1)
    step = 28 + gap
    fig.update_yaxes(tickvals=[i * step + 14 for i in range(len(rows))], ticktext=[n for n, _ in rows])
    fig.update_xaxes(showticklabels=False)
    fig.update_coloraxes(showscale=False)
    return _layout(fig, "The same 10 test digits and their reconstructions (posterior mean, true label)",
                   80 + 58 * len(rows), width=760)


def fig_noise(ckpts: list[Checkpoint]) -> Any:
    import plotly.graph_objects as go

    fig = go.Figure()
    for c in sorted(ckpts, key=order):
        noise = () if c.info.evaluation is None else c.info.evaluation.noise
        if noise:
            fig.add_trace(go.Scatter(
                x=[n["sigma"] for n in noise], y=[n["accuracy"] for n in noise], mode="lines+markers", name=c.name,
                line={"color": COLOURS.get(c.config.arch), "dash": "solid" if c.config.latent_dim == 2 else "dash",
                      "width": 1.5 if is_hybrid(c) else 2.5},
            ))
    fig.update_xaxes(title="noise σ")
    fig.update_yaxes(title="recognition accuracy", tickformat=".0%", range=[0, 1])
    return _layout(fig, "Recognition accuracy under Gaussian noise", 380, width=760)


def fig_robustness(ckpts: list[Checkpoint]) -> Any:
    """Accuracy per corruption (mean over its severities), one bar per measured model."""
    import plotly.graph_objects as go

    models = recognition_tables.measured_models(ckpts)
    names = list(CORRUPTIONS)
    labels = ["clean", *(n.replace("_", " ") + (" *" if CORRUPTIONS[n].held_out else "") for n in names)]
    fig = go.Figure()
    for c in models:
        r = c.info.robustness
        fig.add_trace(go.Bar(x=labels, y=[r.clean.accuracy, *[r.corruptions[n].accuracy for n in names]],
                             name=c.name))
    fig.update_yaxes(title="accuracy (mean over severities)", tickformat=".0%", range=[0, 1])
    fig.update_layout(barmode="group", legend={"orientation": "h", "y": -0.35})
    return _layout(fig, "Recognition under each corruption (* never used in training)", 460)


def _layout(fig: Any, title: str, height: int, *, width: int = WIDTH, **kwargs: Any) -> Any:
    fig.update_layout(title=title, width=width, height=height, template="plotly_white",
                      margin={"l": 60, "r": 20, "t": 60, "b": 50}, **kwargs)
    return fig


def render_png(figures: dict[str, Any], folder: Path) -> None:
    """Each plotly figure -> a self-contained HTML page -> a Chromium screenshot of the plot."""
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="cvae-figures-") as tmp, browser() as b:
        page = b.new_context(viewport={"width": WIDTH + 40, "height": 900}, device_scale_factor=1).new_page()
        page.set_default_timeout(180_000)  # plotly.js is 4 MB of script: slow to parse on a busy machine
        for name, fig in figures.items():
            html = Path(tmp) / f"{name}.html"
            # "directory": one plotly.min.js beside the pages, offline, parsed once and then cached
            fig.write_html(html, include_plotlyjs="directory", full_html=True, config={"staticPlot": True})
            page.goto(html.as_uri())
            page.wait_for_selector(".main-svg")
            page.wait_for_timeout(300)  # let WebGL scatter traces draw
            page.locator(".plotly-graph-div").first.screenshot(path=str(folder / name))
            print(f"wrote {(folder / name).relative_to(ROOT)}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--readme", default=str(ROOT / "README.md"), help="the README to update")
    p.add_argument("--no-figures", action="store_true", help="only the text (figures are kept as they are)")
    args = p.parse_args(argv)

    ckpts = load_all()
    if not ckpts:
        print(f"error: no checkpoints in {checkpoint_dir()}", file=sys.stderr)
        return 2
    results = json.loads(RESULTS_JSON.read_text()) if RESULTS_JSON.exists() else None
    makers = {"loss_curves.png": ("Loss curves", fig_losses), "latent_scatter.png": ("Latent scatter", fig_latents),
              "reconstructions.png": ("Originals and reconstructions", fig_reconstructions),
              "noise_robustness.png": ("Recognition under noise", fig_noise),
              "corruptions.png": ("Recognition under each corruption", fig_robustness)}
    if not args.no_figures:
        figures = {}
        for name, (_, make) in makers.items():
            try:
                figures[name] = make(ckpts)
            except DataError as e:  # the reconstructions need MNIST; keep the old figure without it
                print(f"warning: {name} not redrawn: {e}", file=sys.stderr)
        render_png(figures, FIGURES)
    shown = [(title, name) for name, (title, _) in makers.items() if (FIGURES / name).exists()]
    text = section(ckpts, results, shown)
    readme = Path(args.readme)
    if not replace_section(readme, text):
        print(text)
        print(f"error: {readme} has no '{START}' ... '{END}' markers; put them where the Results section goes, "
              "then rerun (the section is printed above)", file=sys.stderr)
        return 1
    print(f"updated the Results section of {readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
