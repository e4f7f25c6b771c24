"""The archive in the app: its connection, the save button, automatic saving and the retry queue.

The database is reached through Streamlit's SQL connection (``st.connection("archive",
type="sql")``) at ``cvae_core.archive.archive_url()``, with the archive's engine options
(``pool_pre_ping``); its engine is handed to ``Archive`` and queried directly, never through
``conn.query``'s cache, so reads are never stale.

An item is reported saved only once its transaction has committed. A save that fails is kept in
``st.session_state["archive_pending"]`` and offered for retry (here and on the Archive page) until it
lands or the user discards it; a retry of an item whose commit was in doubt finds it instead of
storing it twice. The queue lives in the session, so it does not outlive the server process.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
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
    archive_url,
    fingerprint,
    prepare,
)
from cvae_core.archive.records import true_label

log = logging.getLogger(__name__)

AUTOSAVE_KEY = "archive_autosave"  # the sidebar toggle
PENDING_KEY = "archive_pending"  # fingerprint -> Entry not saved yet
SAVED_KEY = "archive_saved"  # fingerprint -> id of items this session saved
FLASH_KEY = "archive_flash"  # (kind, message) from a retry/discard callback, shown once
SAVED_MEMORY = 1000  # fingerprints remembered for de-duplication


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


def _remember(key: str, item_id: int) -> None:
    saved = _saved()
    saved[key] = item_id
    while len(saved) > SAVED_MEMORY:
        del saved[next(iter(saved))]


def _store(entry: Entry) -> int:
    """Save one entry; on failure keep it for retry and re-raise."""
    try:
        item_id = get_archive().save(entry)
    except ArchiveError:
        _pending()[entry.fingerprint] = entry
        raise
    _pending().pop(entry.fingerprint, None)
    _remember(entry.fingerprint, item_id)
    return item_id


def _queued_or_new(record: Record | Mapping[str, Any]) -> Entry:
    """The entry to save for ``record``: the one already waiting for retry (its save token finds it
    if an earlier attempt did commit), else a new one."""
    entry = prepare(record)
    queued = _pending().get(entry.fingerprint)
    if queued is None:
        return entry
    return queued if entry.true_label is None else replace(queued, true_label=entry.true_label)


def _already_saved(entry: Entry) -> int | None:
    """The id under which this session saved the same input, if that item still exists."""
    known = _saved().get(entry.fingerprint)
    try:
        return known if known is not None and get_archive().exists(known) else None
    except ArchiveError:
        return None  # the save itself will report the problem


def autosave_toggle() -> None:
    """The sidebar toggle "Save automatically" (call it inside ``with st.sidebar``)."""
    st.toggle("Save automatically", key=AUTOSAVE_KEY, help="Save every new recognised input to the archive.")


def autosave_enabled() -> bool:
    """Is the "Save automatically" toggle on?"""
    return bool(st.session_state.get(AUTOSAVE_KEY, False))


def save_button(record: Record | Mapping[str, Any], *, key: str) -> None:
    """A "Save to archive" button for ``record``, with its outcome and any items awaiting retry."""
    if st.button("Save to archive", key=key, icon=":material/bookmark_add:"):
        try:
            entry = _queued_or_new(record)
            known = _already_saved(entry)
            if known is not None:
                if entry.true_label is not None:
                    get_archive().set_true_label(known, entry.true_label)
                st.info(f"Already in the archive as item #{known}.")
            else:
                st.success(f"Saved to the archive as item #{_store(entry)}.")
        except RecordError as e:
            st.error(str(e))
        except ArchiveError as e:  # _store has kept the entry for retry
            st.error(f"Not saved. {e} The item is kept in this session; press Retry to try again.")
    pending_panel(key=f"{key}_pending")


def set_true_label(record: Record | Mapping[str, Any], label: int | None) -> int | None:
    """Record what the user wrote for ``record`` if this session saved it (or holds it for retry):
    the id it was stored under, or None when it is not in the archive (then the label travels with
    the record when it is saved). Raises ``ArchiveError`` when the archive cannot be written."""
    key, label = fingerprint(record), true_label(label)
    pending = _pending()
    if key in pending:
        pending[key] = replace(pending[key], true_label=label)
        return None
    item_id = _saved().get(key)
    if item_id is None or not get_archive().set_true_label(item_id, label):
        return None
    return item_id


def autosave(record: Record | Mapping[str, Any]) -> None:
    """Save ``record`` once: the same input, model and sigma is not saved again on later reruns."""
    try:
        key = fingerprint(record)
        if key in _saved() or key in _pending():
            return
        item_id = _store(prepare(record))
    except RecordError as e:
        st.error(f"Not saved automatically. {e}")
    except ArchiveError as e:
        st.error(f"Not saved automatically. {e} The item is kept in this session; press Retry to try again.")
    else:
        st.toast(f"Saved to the archive as item #{item_id}.", icon=":material/bookmark_added:")


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
        message = f"Saved {saved}; {len(failures)} still not saved. {failures[-1]}"
        st.session_state[FLASH_KEY] = ("error", message)
    else:
        st.session_state[FLASH_KEY] = ("success", f"Saved {saved} item{'s' * (saved != 1)} to the archive.")


def _discard_pending() -> None:
    count = len(_pending())
    _pending().clear()
    st.session_state[FLASH_KEY] = ("info", f"Discarded {count} unsaved item{'s' * (count != 1)}.")


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
