"""Pictures for the pages: pixel-exact image upscaling and tiling, and the plotly figures.

Digits are enlarged by repeating pixels (nearest neighbour), never interpolated, so a 28x28
image stays sharp at any size. Figures take plain numpy arrays and dicts; they compute nothing.

The app has a light and a dark theme. Text, axes, grid and background of every figure come from
Streamlit's plotly theme, which follows the active one; the colours set here are chosen to read on
both backgrounds: marks at least 3:1 against white and against the dark background, text that sits
on a coloured cell (the confusion matrix) coloured for that cell, and the marks over a scatter
drawn with a halo. Titles that could be cut off on a phone are left to the page, in its own text.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

DIGIT_COLOURS = qualitative.Plotly  # ten colours, one per label
# At least 3:1 against white and against the dark theme's #0E1117 (WCAG's bound for graphics).
MODEL_COLOURS = {"conv": "#2F7FD8", "mlp": "#D97706"}
BAR_COLOUR, PICKED_COLOUR, NOT_DIGIT_COLOUR = "#5B6B82", "#D97706", "#B5535C"
HALO, INK = "#FFFFFF", "#111111"  # a mark drawn in ink over a wider halo shows on any background
SPLIT_DASH = {"train": "solid", "val": "dash", "test": "dot"}
SPLIT_NAMES = {"train": "train", "val": "validation", "test": "test"}
# Legends go under the plot: beside it they cover a right-hand axis and squeeze a phone-wide chart.
LEGEND_BELOW = {"orientation": "h", "yanchor": "top", "y": -0.22, "xanchor": "left", "x": 0}
# Confusion matrices: an empty cell is left unpainted (the page's own background, either theme); a
# mistake is pale blue, deeper with its share of the row (most are under 5 %), up to 30 %; from there
# cells are dark. So every count sits on a colour that dark or white text reads on at 4.5:1 or more
# (a continuous scale would pass through blues that no text colour reaches).
CONFUSION_SCALE = [[0.0, "#EEF4FB"], [0.05, "#C4D8F1"], [0.3, "#8FB5E3"], [0.3, "#2F6DB5"], [1.0, "#173F73"]]
CONFUSION_DARK_FROM = 0.3  # rates from here on are dark cells with white text
DARK_TEXT, LIGHT_TEXT = "#1A1F2B", "#FFFFFF"


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


def _layout(fig: go.Figure, *, height: int, margin: dict[str, int] | None = None, **kwargs: Any) -> go.Figure:
    fig.update_layout(height=height, margin=margin or {"l": 10, "r": 10, "t": 40, "b": 10}, **kwargs)
    return fig


@functools.lru_cache(maxsize=8)
def _probability_frame(classes: int, with_not_digit: bool, calibrated: bool) -> dict[str, Any]:
    """``probability_bar``'s figure for one shape of reading, validated by plotly once, as a dict:
    everything but the bars' lengths and colours."""
    names = [str(d) for d in range(classes)] + (["not a digit"] if with_not_digit else [])
    fig = go.Figure(go.Bar(
        x=[0.0] * len(names), y=names, orientation="h", marker_color=[BAR_COLOUR] * len(names),
        hovertemplate="%{y}: %{x:.1%}<extra></extra>",
    ))
    fig.update_xaxes(range=[0, 1], tickformat=".0%", title="probability" if calibrated else "probability (not calibrated)")
    fig.update_yaxes(type="category", autorange="reversed", ticksuffix=" ")
    return _layout(fig, height=40 + 24 * len(names), margin={"l": 10, "r": 20, "t": 10, "b": 10}).to_dict()


def probability_bar(probs: np.ndarray, label: int, *, not_digit: float | None = None,
                    calibrated: bool = True) -> go.Figure:
    """The probability of every digit, the recognised one highlighted; with a background model, one
    more bar for "not a digit" (the bars then sum to 1). Bars run sideways, one label per row, so
    no label runs into the next on a narrow screen.

    Built on every drawn digit, so it is made from a frame plotly validated once per shape
    (``_probability_frame``) with only the numbers and colours filled in: validating the whole
    figure again took 7 of the 8 ms the chart cost the server per digit. ``tests/test_figures.py``
    checks that the result is the figure plotly validates."""
    spec = copy.deepcopy(_probability_frame(len(probs), not_digit is not None, calibrated))
    bar = spec["data"][0]
    bar["x"] = [float(p) for p in probs] + ([] if not_digit is None else [float(not_digit)])
    bar["marker"]["color"] = [PICKED_COLOUR if d == label else BAR_COLOUR for d in range(len(probs))] + (
        [] if not_digit is None else [NOT_DIGIT_COLOUR])
    return go.Figure(spec, _validate=False)


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
    """Test-set latent means coloured by label (a legend under the map when there are several), with an
    optional marked point and its 1- and 2-sigma ellipses, in ink over a halo so that they show on
    either theme and over the points."""
    fig = go.Figure()
    shown = np.unique(labels)
    for d in shown:
        keep = labels == d
        fig.add_trace(go.Scatter(
            x=z[keep, 0], y=z[keep, 1], mode="markers", name=str(int(d)),
            marker={"size": 4, "opacity": 0.55, "color": DIGIT_COLOURS[int(d) % len(DIGIT_COLOURS)]},
            hovertemplate=f"label {int(d)}<br>(%{{x:.2f}}, %{{y:.2f}})<extra></extra>",
        ))
    if point is not None:
        if std is not None:
            for k, dash in ((2, "dot"), (1, "solid")):
                for colour, width in ((HALO, 5), (INK, 2)):
                    fig.add_shape(
                        type="circle", xref="x", yref="y", line={"color": colour, "width": width, "dash": dash},
                        x0=point[0] - k * std[0], x1=point[0] + k * std[0],
                        y0=point[1] - k * std[1], y1=point[1] + k * std[1],
                    )
        fig.add_trace(go.Scatter(
            x=[point[0]], y=[point[1]], mode="markers", name="you",
            marker={"size": 9, "symbol": "x-thin", "color": INK, "line": {"width": 2.5, "color": INK}},
            hovertemplate="(%{x:.2f}, %{y:.2f})<extra></extra>",
        ))
    if span is not None:
        fig.update_xaxes(range=[-span, span])
        fig.update_yaxes(range=[-span, span])
    fig.update_xaxes(title=axis_names[0], zeroline=False)
    fig.update_yaxes(title=axis_names[1], zeroline=False, scaleanchor="x", scaleratio=1)
    top = 40 if title else 10
    return _layout(fig, height=height, title=title, showlegend=len(shown) > 1,
                   legend={**LEGEND_BELOW, "y": -0.18, "itemsizing": "constant"}, margin={"l": 10, "r": 10, "t": top, "b": 10})


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


LOSS_PARTS = {"loss": "Total loss", "recon": "Reconstruction", "kl": "KL"}


def loss_panels(histories: dict[str, list[dict[str, Any]]], archs: dict[str, str]) -> list[go.Figure]:
    """One figure per part of the loss (total, reconstruction, KL), the models overlaid, dash by split:
    three figures rather than three subplots, so that a page can put them side by side on a wide
    screen and one under another on a phone, each with its own readable y axis. The legend names
    the models; the caption says which dash is which split."""
    out = []
    for part, title in LOSS_PARTS.items():
        fig, shown = go.Figure(), []
        for name, history in histories.items():
            epochs = [h["epoch"] for h in history]
            for split, dash in SPLIT_DASH.items():
                key = f"{split}_{part}"
                if not history or key not in history[0]:
                    continue
                values = [h[key] for h in history]
                shown.append((epochs, values))
                fig.add_trace(go.Scatter(
                    x=epochs, y=values, mode="lines", name=name, legendgroup=name, showlegend=split == "train",
                    line={"color": MODEL_COLOURS.get(archs[name]), "dash": dash},
                    hovertemplate=f"{name} {SPLIT_NAMES[split]}, epoch %{{x}}: %{{y:.2f}}<extra></extra>",
                ))
        fig.update_xaxes(title="epoch")
        fig.update_yaxes(title="nats per image", range=focus_range(shown), nticks=6)
        out.append(_layout(fig, height=340, title=title, legend=LEGEND_BELOW))
    return out


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
    """Counts in the cells (none drawn where there are none), coloured by the share of each true
    digit (row percentages on hover). The counts are a text trace of their own, each coloured for its cell."""
    m = np.asarray(matrix, dtype=float)
    rates = m / np.maximum(m.sum(1, keepdims=True), 1)
    labels = [str(i) for i in range(len(m))]
    fig = go.Figure(go.Heatmap(
        z=np.where(m > 0, rates, np.nan), x=labels, y=labels, customdata=m.astype(int), colorscale=CONFUSION_SCALE,
        zmin=0, zmax=1, hoverongaps=False,
        showscale=False, xgap=1, ygap=1,
        hovertemplate="true %{y}, recognised %{x}: %{customdata} (%{z:.1%} of the %{y}s)<extra></extra>",
    ))
    rows, cols = np.nonzero(m)
    fig.add_trace(go.Scatter(
        x=[labels[c] for c in cols], y=[labels[r] for r in rows], mode="text", hoverinfo="skip",
        text=[str(int(m[r, c])) for r, c in zip(rows, cols, strict=True)],
        textfont={"size": 11, "color": [LIGHT_TEXT if rates[r, c] >= CONFUSION_DARK_FROM else DARK_TEXT
                                        for r, c in zip(rows, cols, strict=True)]},
    ))
    fig.update_xaxes(title="recognised", type="category", showgrid=False)
    fig.update_yaxes(title="true", type="category", autorange="reversed", showgrid=False)
    return _layout(fig, height=380, title=title, showlegend=False)


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


def equal_time_dots(rows: Sequence[dict[str, Any]], measures: dict[str, str], archs: Sequence[str]) -> go.Figure:
    """A dot per model row on each measure (``measures``: key -> label), the axis zoomed to the
    figures so that a point's difference shows; the conv rows in the conv colour, the one trained
    for the shorter time hollow."""
    fig = go.Figure()
    values = [row[k] for row in rows for k in measures]
    for i, (row, arch) in enumerate(zip(rows, archs, strict=True)):
        hollow = arch == "conv" and i < len(rows) - 1
        fig.add_trace(go.Scatter(
            y=list(measures.values()), x=[row[k] for k in measures], mode="markers", name=row["label"],
            marker={"color": MODEL_COLOURS.get(arch), "size": 13, "symbol": "circle-open" if hollow else "circle",
                    "line": {"width": 3 if hollow else 1, "color": MODEL_COLOURS.get(arch) if hollow else HALO}},
            hovertemplate=f"{row['label']}, %{{y}}: %{{x:.2%}}<extra></extra>",
        ))
    low = max(0.0, min(values) - 0.02)
    fig.update_xaxes(tickformat=".0%", range=[low, min(1.0, max(values) + 0.01)])
    fig.update_yaxes(autorange="reversed", type="category")
    return _layout(fig, height=110 + 55 * len(measures), legend=LEGEND_BELOW)
