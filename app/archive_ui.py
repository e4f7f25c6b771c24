"""The archive in the app: its connection, the save button, automatic saving and the retry queue.

The database is reached through Streamlit's SQL connection (``st.connection("archive",
type="sql")``) at ``cvae_core.archive.archive_url()``, with the archive's engine options
(``pool_pre_ping``); its engine is handed to ``Archive`` and queried directly, never through
``conn.query``'s cache, so reads are never stale.

A save is one call to the core (``Archive.store``), which validates, de-duplicates and stores: the
same input saved again (a second click, a retry after an outage, a new session after a replica
died) is the item the archive already holds. An item is reported saved only once its transaction
has committed. A save that fails is kept in ``st.session_state["archive_pending"]`` and offered for
retry (here and on the Archive page) until it lands or the user discards it.

Automatic saving stores an upload at once, and a drawing once it is finished: on Clear, on a label
("What did you write?"), or when the canvas is left for an upload. A drawing that goes on after it
was saved (by the button, say) has that item marked unfinished, and the labelled data set leaves
it out; should the drawing come back to the saved state (Undo), the mark is taken back.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import streamlit as st
from sqlalchemy.exc import SQLAlchemyError
from streamlit.errors import StreamlitAPIException

from cvae_core.archive import (
    ENGINE_OPTIONS,
    Archive,
    ArchiveError,
    Entry,
    Record,
    RecordError,
    Saved,
    archive_url,
    fingerprint,
    prepare,
)
from cvae_core.archive.records import as_record, true_label

log = logging.getLogger(__name__)

AUTOSAVE_KEY = "archive_autosave"  # the sidebar toggle
PENDING_KEY = "archive_pending"  # fingerprint -> Entry not saved yet
SAVED_KEY = "archive_saved"  # fingerprint -> id of items this session saved
DRAWING_KEY = "archive_drawing"  # the Drawing on the canvas
FLASH_KEY = "archive_flash"  # (kind, message) from a retry/discard callback, shown once
SAVED_MEMORY = 1000  # fingerprints remembered for labelling
AUTOSAVE_HELP = ("Save each upload at once, and each drawing once it is finished: on Clear, when you say "
                 "what you wrote, or when you switch to Upload.")


@dataclass
class Drawing:
    """The drawing on the canvas: its latest record and state (``mark``, the canvas image's hash),
    and the items this session saved of it, with the state each was saved at."""

    record: Record
    mark: str
    saved: dict[int, str] = field(default_factory=dict)


def get_archive() -> Archive:
    """The archive over the app's shared SQL connection; ``ArchiveError`` if it cannot be set up."""
    url = archive_url()
    try:
        conn = st.connection("archive", type="sql", url=url, **ENGINE_OPTIONS)
    except (ImportError, SQLAlchemyError, StreamlitAPIException, ValueError) as e:
        log.warning("archive connection failed: %s", e)
        raise ArchiveError(f"The archive database cannot be opened: {e}") from None
    return Archive(conn.engine)


def _pending() -> dict[str, Entry]:
    return st.session_state.setdefault(PENDING_KEY, {})


def _saved() -> dict[str, int]:
    return st.session_state.setdefault(SAVED_KEY, {})


def _store(record: Record | Mapping[str, Any] | Entry) -> Saved:
    """Save one record (an entry waiting for retry keeps its label); on failure keep it for retry
    and re-raise."""
    entry = prepare(record)
    queued = _pending().get(entry.fingerprint)
    if queued is not None and entry.true_label is None:
        entry = replace(entry, true_label=queued.true_label)
    try:
        saved = get_archive().store(entry)
    except ArchiveError:
        _pending()[entry.fingerprint] = entry
        raise
    _pending().pop(entry.fingerprint, None)
    remembered = _saved()
    remembered[entry.fingerprint] = saved.id
    while len(remembered) > SAVED_MEMORY:
        del remembered[next(iter(remembered))]
    drawing = st.session_state.get(DRAWING_KEY)
    if drawing is not None and fingerprint(drawing.record) == entry.fingerprint:
        drawing.saved[saved.id] = drawing.mark
    return saved


def autosave_toggle() -> None:
    """The sidebar toggle "Save automatically" (call it inside ``with st.sidebar``)."""
    st.toggle("Save automatically", key=AUTOSAVE_KEY, help=AUTOSAVE_HELP)


def autosave_enabled() -> bool:
    """Is the "Save automatically" toggle on?"""
    return bool(st.session_state.get(AUTOSAVE_KEY, False))


def save_button(record: Record | Mapping[str, Any], *, key: str) -> None:
    """A "Save to archive" button for ``record``, with its outcome and any items awaiting retry."""
    if st.button("Save to archive", key=key, icon=":material/bookmark_add:"):
        try:
            saved = _store(record)
        except RecordError as e:
            st.error(str(e))
        except ArchiveError as e:  # _store has kept the entry for retry
            st.error(f"Not saved. {e} The item is kept in this session; press Retry to try again.")
        else:
            if saved.new:
                st.success(f"Saved to the archive as item #{saved.id}.")
            else:
                st.info(f"Already in the archive as item #{saved.id}.")
    pending_panel(key=f"{key}_pending")


def set_true_label(record: Record | Mapping[str, Any], label: int | None) -> int | None:
    """Record what the user wrote for ``record``: on the item this session saved of it (or on the
    one held for retry), or, with automatic saving on and a label given, by saving it now (a label
    says the drawing is finished). The id it is stored under, or None when it is not in the archive
    (then the label travels with the record when it is saved). Raises ``ArchiveError`` when the
    archive cannot be written."""
    key, label = fingerprint(record), true_label(label)
    pending = _pending()
    if key in pending:
        pending[key] = replace(pending[key], true_label=label)
        return None
    item_id = _saved().get(key)
    if item_id is not None and get_archive().set_true_label(item_id, label):
        return item_id
    if label is None or not autosave_enabled():
        return None
    return _store(replace(as_record(record), true_label=label, finished=True)).id


def autosave(record: Record | Mapping[str, Any]) -> None:
    """Save ``record`` once (an upload): the same input, model and sigma is not saved again on later
    reruns."""
    key = fingerprint(record)
    if key in _saved() or key in _pending():
        return
    _save_quietly(record, how="automatically")


def _save_quietly(record: Record | Mapping[str, Any], *, how: str) -> None:
    """Save with a toast for the outcome (an error is also kept for the page's next run)."""
    try:
        saved = _store(record)
    except RecordError as e:
        _flash("error", f"Not saved {how}. {e}")
    except ArchiveError as e:
        _flash("error", f"Not saved {how}. {e} The item is kept in this session; press Retry to try again.")
    else:
        st.toast(f"Saved to the archive as item #{saved.id}." if saved.new
                 else f"Already in the archive as item #{saved.id}.", icon=":material/bookmark_added:")


def _flash(kind: str, message: str) -> None:
    st.session_state[FLASH_KEY] = (kind, message)


# -- the drawing on the canvas ---------------------------------------------------------------------


def drawing_shown(record: Record | Mapping[str, Any], *, mark: str) -> None:
    """The Draw page read the canvas: ``record`` is what it shows of the drawing, whose state is
    ``mark``. Items saved of this drawing at another state are marked unfinished (it went on after
    them), and the one saved at this state finished again."""
    record = as_record(record)
    drawing: Drawing | None = st.session_state.get(DRAWING_KEY)
    if drawing is None:
        st.session_state[DRAWING_KEY] = Drawing(record, mark)
        return
    moved = drawing.mark != mark
    drawing.record, drawing.mark = record, mark
    if moved and drawing.saved:
        _mark_saved(drawing)


def _mark_saved(drawing: Drawing) -> None:
    try:
        archive = get_archive()
        for item_id, saved_at in drawing.saved.items():
            archive.set_finished(item_id, saved_at == drawing.mark)
    except ArchiveError as e:
        _flash("error", f"A saved drawing could not be marked as unfinished. {e}")


def finish_drawing() -> None:
    """The drawing is finished (Clear, or the canvas left for an upload): with automatic saving on,
    save it unless this session already saved it as it is now; then forget it."""
    drawing: Drawing | None = st.session_state.pop(DRAWING_KEY, None)
    if drawing is None or not autosave_enabled() or drawing.mark in drawing.saved.values():
        return
    _save_quietly(replace(drawing.record, finished=True), how="automatically")


def abandon_drawing() -> None:
    """The drawing was taken back stroke by stroke to nothing: what was saved of it is unfinished."""
    drawing: Drawing | None = st.session_state.pop(DRAWING_KEY, None)
    if drawing is not None and drawing.saved:
        drawing.mark = ""  # no saved state is the drawing's last
        _mark_saved(drawing)


# -- items awaiting retry --------------------------------------------------------------------------


def _retry_pending() -> None:
    pending = _pending()
    failures: list[str] = []
    saved = 0
    for entry in list(pending.values()):
        try:
            _store(entry)
            saved += 1
        except ArchiveError as e:
            failures.append(str(e))
    if failures:
        _flash("error", f"Saved {saved}; {len(failures)} still not saved. {failures[-1]}")
    else:
        _flash("success", f"Saved {saved} item{'s' * (saved != 1)} to the archive.")


def _discard_pending() -> None:
    count = len(_pending())
    _pending().clear()
    _flash("info", f"Discarded {count} unsaved item{'s' * (count != 1)}.")


def pending_panel(*, key: str) -> None:
    """Items that could not be saved yet, with Retry and Discard (and the last outcome of those)."""
    flash = st.session_state.pop(FLASH_KEY, None)
    if flash is not None:
        {"success": st.success, "error": st.error, "info": st.info}[flash[0]](flash[1])
    count = len(_pending())
    if not count:
        return
    with st.container(border=True):
        st.warning(f"{count} item{'s' * (count != 1)} could not be saved yet and {'are' if count != 1 else 'is'} "
                   "kept in this session.", icon=":material/sync_problem:")
        retry, discard = st.columns(2)
        retry.button("Retry saving", key=f"{key}_retry", type="primary", on_click=_retry_pending)
        discard.button("Discard", key=f"{key}_discard", on_click=_discard_pending,
                       help="Forget the items that could not be saved.")
