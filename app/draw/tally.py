"""The Draw page's "What did you write?": the visitor's label for an input, kept for this
session's score of how many of their digits each model read right, and stored with the archive
item of the input when it is saved.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import streamlit as st

from app import archive_ui
from app.draw import reading
from app.markdown import escape_markdown
from cvae_core.archive import ArchiveError

TRUTH_KEY = "draw_truth"  # the "What did you write?" control
TRUTH_INPUT = "draw_truth_input"  # which input the control currently describes
TALLY_KEY = "draw_tally"  # input mark -> Labelled
RECORD_KEY = "draw_record"  # the archive record of the result on screen (for the truth callback)
TRUTH_FLASH = "draw_truth_flash"
TALLY_MAX = 500  # labelled inputs remembered per session


@dataclass
class Labelled:
    """One of the visitor's inputs with what they say it is, and what each model read in it."""

    truth: int | None = None
    readings: dict[str, str] = field(default_factory=dict)  # model name -> its answer ("7", "not a digit", ...)


def _tally() -> dict[str, Labelled]:
    return st.session_state.setdefault(TALLY_KEY, {})


def truth_given() -> None:
    """Callback of "What did you write?": remember the label for the tally and store it with the
    archive item of this input if it was saved (otherwise it goes with the record when saved)."""
    mark = st.session_state.get(TRUTH_INPUT)
    truth = st.session_state.get(TRUTH_KEY)
    if mark is None:
        return
    tally = _tally()
    tally.setdefault(mark, Labelled()).truth = truth
    while len(tally) > TALLY_MAX:
        del tally[next(iter(tally))]
    record = st.session_state.get(RECORD_KEY)
    if record is None:
        return
    try:
        item = archive_ui.set_true_label(record, truth)
    except ArchiveError as e:
        st.session_state[TRUTH_FLASH] = ("error", f"The label was not stored in the archive. {e}")
        return
    if item is not None:
        said = "removed" if truth is None else f"stored as {truth}"
        st.session_state[TRUTH_FLASH] = ("success", f"Label {said} with archive item #{item}.")


def truth_control(mark: str) -> int | None:
    """"What did you write?": one click on 0-9 (click again to take it back). Returns the label."""
    if st.session_state.get(TRUTH_INPUT) != mark or TRUTH_KEY not in st.session_state:
        # A new input (or the page again): the control starts from what it was told about this input.
        st.session_state[TRUTH_INPUT] = mark
        st.session_state[TRUTH_KEY] = _tally().get(mark, Labelled()).truth
    return st.segmented_control("What did you write?", list(range(10)), key=TRUTH_KEY, on_change=truth_given,
                                help="Optional. Tell the page which digit you meant: it keeps score of how "
                                     "many of your digits each model reads right, and stores the label with "
                                     "the archive item.")


def tally_line(mark: str, truth: int | None, readings: dict[str, reading.Recognition]) -> None:
    """Record what each model read for a labelled input, and show the session's score per model."""
    tally = _tally()
    if truth is not None:
        tally.setdefault(mark, Labelled(truth=truth)).readings.update({m: r.answer for m, r in readings.items()})
    flash = st.session_state.pop(TRUTH_FLASH, None)
    if flash is not None:
        {"success": st.success, "error": st.error}[flash[0]](flash[1])
    scores: dict[str, list[int]] = {}
    for item in tally.values():
        if item.truth is None:
            continue
        for model, answer in item.readings.items():
            right, total = scores.setdefault(model, [0, 0])
            scores[model] = [right + (answer == str(item.truth)), total + 1]
    if scores:
        parts = [f"**{escape_markdown(m)}** {right} of {total}" for m, (right, total) in sorted(scores.items())]
        st.caption("Your digits this session, read right: " + " · ".join(parts),
                   help="Counted over the inputs you labelled. An unsure answer (“3 or 5?”) or “not a digit” "
                        "counts as not read right.")
