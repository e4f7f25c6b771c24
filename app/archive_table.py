"""The archive as the app shows it: thumbnails as data URLs, one table row per item, an item's detail.

Only the items of the visible page are ever turned into rows here (the page asks the store for one
page), so the cost of a page does not grow with the archive.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterable
from typing import Any

import streamlit as st
from PIL import Image

from cvae_core.archive import ArchiveItem
from cvae_core.config import NUM_CLASSES

THUMB_SCALE = 2  # 28x28 thumbnails shown at 56x56, enlarged without blur
VERDICT_MARKS = {"right": "✓ right", "wrong": "✗ wrong", "unlabelled": ""}

COLUMNS = {
    "id": st.column_config.NumberColumn("#", format="%d", width="small"),
    "input": st.column_config.ImageColumn("Input", width=64, help="The 28x28 image the model saw"),
    "reconstruction": st.column_config.ImageColumn("Recon.", width=64, help="Its reconstruction by the model"),
    "digit": st.column_config.NumberColumn("Digit", width="small", help="The digit the model recognised"),
    "confidence": st.column_config.ProgressColumn("Confidence", min_value=0.0, max_value=1.0, format="percent"),
    "true_label": st.column_config.NumberColumn("Written", width="small", help="What the user says they wrote"),
    "verdict": st.column_config.TextColumn("Answer", width="small"),
    "unfinished": st.column_config.TextColumn("Drawing", width="small",
                                              help="Unfinished: strokes were added after it was saved. "
                                                   "The labelled data set leaves it out."),
    "probs": st.column_config.BarChartColumn("p(0) … p(9)", y_min=0.0, y_max=1.0,
                                             help="The probability of every digit, 0 to 9"),
    "not_digit": st.column_config.ProgressColumn("Not a digit", min_value=0.0, max_value=1.0, format="percent",
                                                 help="The probability that the input is no digit at all"),
    "partner": st.column_config.TextColumn("Partner reads", help="The other architecture's model and its digit"),
    "model": st.column_config.TextColumn("Model"),
    "source": st.column_config.TextColumn("Source"),
    "sigma": st.column_config.NumberColumn("Noise σ", format="%.2f"),
    "saved": st.column_config.DatetimeColumn("Saved (UTC)", format="YYYY-MM-DD HH:mm:ss"),
    "filename": st.column_config.TextColumn("File name"),
}


def data_url(png: bytes, *, scale: int = 1) -> str:
    """PNG bytes as a ``data:`` URL, optionally enlarged without blur (for table thumbnails)."""
    if scale > 1:
        with Image.open(io.BytesIO(png), formats=["PNG"]) as img:
            big = img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)
        out = io.BytesIO()
        big.save(out, format="PNG")
        png = out.getvalue()
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def partner_reading(item: ArchiveItem) -> str:
    """"mlp-2: 7 (93 %)", or "" when no partner was recorded."""
    if item.partner_model is None:
        return ""
    digit = "?" if item.partner_label is None else str(item.partner_label)
    share = "" if item.partner_confidence is None else f" ({item.partner_confidence:.0%})"
    return f"{item.partner_model}: {digit}{share}"


def table_rows(found: Iterable[ArchiveItem], *, thumb_scale: int = THUMB_SCALE) -> list[dict[str, Any]]:
    """One plain dict per item for the archive table (images as data URLs)."""
    return [
        {
            "id": item.id,
            "input": data_url(item.input_png, scale=thumb_scale),
            "reconstruction": data_url(item.recon_png, scale=thumb_scale),
            "digit": item.label,
            "confidence": item.confidence,
            "true_label": item.true_label,
            "verdict": VERDICT_MARKS[item.verdict],
            "unfinished": "unfinished" if item.finished is False else "",
            "probs": list(item.probs) if item.probs is not None else None,
            "not_digit": item.not_digit,
            "partner": partner_reading(item),
            "model": item.model,
            "source": item.source,
            "sigma": item.sigma,
            "saved": item.created_at,
            "filename": item.filename or "",
        }
        for item in found
    ]


def label_rows(item: ArchiveItem) -> list[dict[str, Any]]:
    """Per digit: its probability and log-likelihood (empty for items saved before they were kept)."""
    probs = item.probs or (None,) * NUM_CLASSES
    # The digits' log-likelihoods come first; a model with a "not a digit" condition adds its own.
    logliks = (item.log_likelihoods or (None,) * NUM_CLASSES)[:NUM_CLASSES]
    pairs = enumerate(zip(probs, logliks, strict=True))
    return [{"digit": d, "probability": p, "log-likelihood": v} for d, (p, v) in pairs]


LABEL_COLUMNS = {
    "digit": st.column_config.NumberColumn("Digit", width="small"),
    "probability": st.column_config.ProgressColumn("Probability", min_value=0.0, max_value=1.0, format="percent"),
    "log-likelihood": st.column_config.NumberColumn("log p(x | digit) (nats)", format="%.1f"),
}
