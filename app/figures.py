"""Pictures for the pages: pixel-exact image upscaling and tiling, and the plotly figures.

Digits are enlarged by repeating pixels (nearest neighbour), never interpolated, so a 28x28
image stays sharp at any size. Figures take plain numpy arrays and dicts; they compute nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

DIGIT_COLOURS = qualitative.Plotly  # ten colours, one per label
MODEL_COLOURS = {"conv": "#4C9BE8", "mlp": "#F5A623"}
SPLIT_DASH = {"train": "solid", "val": "dash", "test": "dot"}
SPLIT_NAMES = {"train": "train", "val": "validation", "test": "test"}
# Legends go under the plot: beside it they cover a right-hand axis and squeeze a phone-wide chart.
LEGEND_BELOW = {"orientation": "h", "yanchor": "top", "y": -0.22, "xanchor": "left", "x": 0}
# Confusion matrices: from transparent to full blue, so that an empty cell is the page's own
# background and its text the theme's text colour, readable on the light and the dark theme.
CONFUSION_SCALE = [[0.0, "rgba(76, 155, 232, 0.0)"], [0.02, "rgba(76, 155, 232, 0.18)"], [1.0, "rgba(76, 155, 232, 1.0)"]]


def to_uint8(image: np.ndarray) -> np.ndarray:
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def upscale(image: np.ndarray, factor: int) -> np.ndarray:
    """(H, W) in [0, 1] -> (H * factor, W * factor) uint8, each pixel a solid block."""
    return np.kron(to_uint8(image), np.ones((factor, factor), dtype=np.uint8))


def tile(images: np.ndarray, factor: int, *, gap: int = 2) -> np.ndarray:
    """(rows, cols, H, W) or (N, H, W) in [0, 1] -> one uint8 picture with grey gaps between tiles."""
    if images.ndim == 3:
        images = images[np.newaxis]
    rows, cols, h, w = images.shape
    sh, sw = h * factor, w * factor
    out = np.full((rows * sh + (rows - 1) * gap, cols * sw + (cols - 1) * gap), 64, dtype=np.uint8)
    for r in range(rows):
        for c in range(cols):
            top, left = r * (sh + gap), c * (sw + gap)
            out[top : top + sh, left : left + sw] = upscale(images[r, c], factor)
    return out


def _layout(fig: go.Figure, *, height: int, **kwargs: Any) -> go.Figure:
    fig.update_layout(height=height, margin={"l": 10, "r": 10, "t": 40, "b": 10}, **kwargs)
    return fig


def probability_bar(probs: np.ndarray, label: int, *, not_digit: float | None = None) -> go.Figure:
    """The calibrated probability of every digit, the recognised one highlighted; with a
    background model, one more bar for "not a digit" (the bars then sum to 1)."""
    names = [str(d) for d in range(len(probs))]
    values = list(probs)
    colours = ["#F5A623" if d == label else "#5B6B82" for d in range(len(probs))]
    if not_digit is not None:
        names.append("none")
        values.append(not_digit)
        colours.append("#B5535C")
    fig = go.Figure(go.Bar(
        x=names, y=values, marker_color=colours,
        hovertemplate="%{x}: %{y:.1%}<extra></extra>",
    ))
    fig.update_yaxes(range=[0, 1], tickformat=".0%", title="calibrated probability")
    fig.update_xaxes(title="label" + (" (none: not a digit)" if not_digit is not None else ""), type="category",
                     dtick=1, tickangle=0)
    return _layout(fig, height=300, title="p(label | your digit)")


def latent_map(
    z: np.ndarray,
    labels: np.ndarray,
    *,
    point: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    title: str = "",
    span: float | None = None,
    height: int = 380,
    axis_names: tuple[str, str] = ("z₀", "z₁"),
) -> go.Figure:
    """Test-set latent means coloured by label, with an optional marked point and its 1- and 2-sigma ellipses."""
    fig = go.Figure()
    for d in np.unique(labels):
        keep = labels == d
        fig.add_trace(go.Scatter(
            x=z[keep, 0], y=z[keep, 1], mode="markers", name=str(int(d)),
            marker={"size": 4, "opacity": 0.55, "color": DIGIT_COLOURS[int(d) % len(DIGIT_COLOURS)]},
            hovertemplate=f"label {int(d)}<br>(%{{x:.2f}}, %{{y:.2f}})<extra></extra>",
        ))
    if point is not None:
        if std is not None:
            for k, dash in ((1, "solid"), (2, "dot")):
                fig.add_shape(
                    type="circle", xref="x", yref="y", line={"color": "white", "width": 2, "dash": dash},
                    x0=point[0] - k * std[0], x1=point[0] + k * std[0],
                    y0=point[1] - k * std[1], y1=point[1] + k * std[1],
                )
        fig.add_trace(go.Scatter(
            x=[point[0]], y=[point[1]], mode="markers", name="you",
            marker={"size": 11, "symbol": "x", "color": "white", "line": {"width": 1, "color": "black"}},
            hovertemplate="(%{x:.2f}, %{y:.2f})<extra></extra>",
        ))
    if span is not None:
        fig.update_xaxes(range=[-span, span])
        fig.update_yaxes(range=[-span, span])
    fig.update_xaxes(title=axis_names[0], zeroline=False)
    fig.update_yaxes(title=axis_names[1], zeroline=False, scaleanchor="x", scaleratio=1)
    return _layout(fig, height=height, title=title, legend={"itemsizing": "constant"})


def focus_range(series: list[tuple[list[int], list[float]]]) -> list[float] | None:
    """A y-range that leaves out first-epoch values when later epochs are many: those dwarf the rest.

    ``series`` holds (epochs, values) pairs; None (autorange) for short runs.
    """
    later = [v for epochs, values in series for e, v in zip(epochs, values, strict=True) if e > 1]
    if not series or len(later) < 4 * len(series):
        return None
    low, high = min(v for _, values in series for v in values), max(later)
    pad = 0.05 * ((high - low) or 1.0)
    return [low - pad, high + pad]


def loss_curves(histories: dict[str, list[dict[str, Any]]], archs: dict[str, str]) -> go.Figure:
    """Both models overlaid, one panel each for total loss, reconstruction and KL; dash by split."""
    fig = make_subplots(rows=1, cols=3, subplot_titles=("total loss", "reconstruction", "KL"))
    for col, part in enumerate(("loss", "recon", "kl"), start=1):
        shown = []
        for name, history in histories.items():
            epochs = [h["epoch"] for h in history]
            for split, dash in SPLIT_DASH.items():
                key = f"{split}_{part}"
                if not history or key not in history[0]:
                    continue
                values = [h[key] for h in history]
                shown.append((epochs, values))
                fig.add_trace(go.Scatter(
                    x=epochs, y=values, mode="lines",
                    name=f"{name} {SPLIT_NAMES[split]}", legendgroup=f"{name}-{split}", showlegend=col == 1,
                    line={"color": MODEL_COLOURS.get(archs[name]), "dash": dash},
                    hovertemplate=f"{name} {SPLIT_NAMES[split]}, epoch %{{x}}: %{{y:.2f}} nats<extra></extra>",
                ), row=1, col=col)
        fig.update_yaxes(range=focus_range(shown), row=1, col=col)
    fig.update_xaxes(title="epoch")
    fig.update_yaxes(title="nats per image", row=1, col=1)
    return _layout(fig, height=420, legend=LEGEND_BELOW)


def loss_parts(name: str, history: list[dict[str, Any]], arch: str) -> go.Figure:
    """One model: total, reconstruction and KL per epoch, for train, validation and test."""
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    epochs = [h["epoch"] for h in history]
    styles = {"loss": ("total", MODEL_COLOURS.get(arch), False), "recon": ("reconstruction", "#9B8AFB", False),
              "kl": ("KL (right axis)", "#3CCB7F", True)}
    shown: dict[bool, list[tuple[list[int], list[float]]]] = {False: [], True: []}
    for part, (label, colour, right) in styles.items():
        for split, dash in SPLIT_DASH.items():
            key = f"{split}_{part}"
            if not history or key not in history[0]:
                continue
            values = [h[key] for h in history]
            shown[right].append((epochs, values))
            fig.add_trace(go.Scatter(
                x=epochs, y=values, mode="lines", name=f"{label}, {SPLIT_NAMES[split]}",
                line={"color": colour, "dash": dash},
                hovertemplate=f"{label}, {SPLIT_NAMES[split]}, epoch %{{x}}: %{{y:.2f}}<extra></extra>",
            ), secondary_y=right)
    fig.update_xaxes(title="epoch")
    fig.update_yaxes(title="nats per image", secondary_y=False, range=focus_range(shown[False]))
    fig.update_yaxes(title="KL, nats", secondary_y=True, showgrid=False, range=focus_range(shown[True]))
    return _layout(fig, height=420, title=name, legend=LEGEND_BELOW)


def confusion(matrix: list[list[int]], title: str) -> go.Figure:
    """Counts in the cells, coloured by the share of each true digit (row percentages on hover)."""
    m = np.asarray(matrix, dtype=float)
    rates = m / np.maximum(m.sum(1, keepdims=True), 1)
    fig = go.Figure(go.Heatmap(
        z=rates, x=[str(i) for i in range(len(m))], y=[str(i) for i in range(len(m))],
        text=m.astype(int), texttemplate="%{text}", colorscale=CONFUSION_SCALE, zmin=0, zmax=1, showscale=False,
        xgap=1, ygap=1,
        hovertemplate="true %{y}, recognised %{x}: %{text} (%{z:.1%} of the %{y}s)<extra></extra>",
    ))
    fig.update_xaxes(title="recognised", type="category", showgrid=False)
    fig.update_yaxes(title="true", type="category", autorange="reversed", showgrid=False)
    return _layout(fig, height=380, title=title)


def noise_curves(noise: dict[str, list[dict[str, float]]], archs: dict[str, str]) -> go.Figure:
    fig = go.Figure()
    for name, rows in noise.items():
        fig.add_trace(go.Scatter(
            x=[r["sigma"] for r in rows], y=[r["accuracy"] for r in rows], mode="lines+markers", name=name,
            line={"color": MODEL_COLOURS.get(archs[name])},
            hovertemplate=f"{name}, σ %{{x}}: %{{y:.1%}}<extra></extra>",
        ))
    fig.update_xaxes(title="noise σ")
    fig.update_yaxes(title="recognition accuracy", tickformat=".0%", range=[0, 1])
    return _layout(fig, height=380, title="Recognition under Gaussian noise", legend=LEGEND_BELOW)
