"""The Draw page's archive controls: the record of the reading on screen, "Save to archive", and
automatic saving (a drawing once finished, an upload once per model).
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from app import archive_ui
from app.draw import inputs, reading
from app.draw.tally import RECORD_KEY
from cvae_core.archive import Record
from cvae_core.catalogue import ModelEntry

AUTOSAVED_KEY = "draw_autosaved"  # (model signature, input mark) of the uploads saved automatically


def build_record(*, entry: ModelEntry, mine: reading.Recognition, recon: np.ndarray, x: np.ndarray, sigma: float,
                 source: str, data: bytes, filename: str | None, truth: int | None,
                 partner: ModelEntry | None, theirs: reading.Recognition | None) -> Record:
    """The archive record of one reading, and of the partner model's beside it."""
    classes = len(mine.probs)
    return Record(
        model=entry.name, source=source, label=mine.label, confidence=mine.confidence,
        sigma=sigma, input_image=x, recon_image=recon,
        original=inputs.original_image(data), filename=filename, true_label=truth,
        probs=tuple(mine.probs.tolist()), log_likelihoods=tuple(mine.log_px[:classes].tolist()),
        not_digit=mine.not_digit,
        partner_model=None if partner is None else partner.name,
        partner_label=None if theirs is None else theirs.label,
        partner_confidence=None if theirs is None else theirs.confidence,
        finished=True,  # as saved now; a drawing that goes on after it was saved is marked unfinished
    )


@st.fragment
def save_controls(record: Record) -> None:
    """"Save to archive" in a fragment of its own: pressing it reruns these lines, not the whole
    reading (which was a third of the server's CPU per saved digit)."""
    archive_ui.save_button(record, key="draw_save")


def archive_controls(entry: ModelEntry, record: Record, mark: str, source: str) -> None:
    st.session_state[RECORD_KEY] = record
    if source == "canvas":
        archive_ui.drawing_shown(record, mark=mark)  # saved automatically once finished (Clear, a label)
    save_controls(record)
    if source == "upload" and archive_ui.autosave_enabled():
        # Each upload is saved once per model; moving the noise slider is not a new input.
        done = st.session_state.setdefault(AUTOSAVED_KEY, set())
        if (entry.signature, mark) not in done:
            archive_ui.autosave(record)
            done.add((entry.signature, mark))
