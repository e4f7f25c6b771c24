"""Archive page: every saved digit with its reconstruction; filter, delete, export as CSV or ZIP.

Reads go straight to the database on every run (no cached queries), so what is shown is current.
"""

from __future__ import annotations

from functools import partial

import streamlit as st

from app.archive_ui import get_archive, pending_panel
from cvae_core.archive import SOURCES, Archive, ArchiveError, ArchiveItem, table_rows, to_csv, to_zip

KEY = "archive_page_"  # session-state namespace of this page
CONFIRM = KEY + "confirm"  # id awaiting "Yes, delete"
VIEW = KEY + "view"  # bumped by each delete, so the table selection and the chosen item start afresh
FLASH = KEY + "flash"

COLUMNS = {
    "id": st.column_config.NumberColumn("#", format="%d", width="small"),
    "input": st.column_config.ImageColumn("Input", width=64, help="The 28x28 image the model saw"),
    "reconstruction": st.column_config.ImageColumn("Recon.", width=64, help="Its reconstruction by the model"),
    "digit": st.column_config.NumberColumn("Digit", width="small"),
    "confidence": st.column_config.ProgressColumn("Confidence", min_value=0.0, max_value=1.0, format="percent"),
    "model": st.column_config.TextColumn("Model"),
    "source": st.column_config.TextColumn("Source"),
    "sigma": st.column_config.NumberColumn("Noise σ", format="%.2f"),
    "saved": st.column_config.DatetimeColumn("Saved (UTC)", format="YYYY-MM-DD HH:mm:ss"),
    "filename": st.column_config.TextColumn("File name"),
}


def _all(value: object) -> str:
    return "All" if value is None else str(value)


def _filter(column: st.delta_generator.DeltaGenerator, label: str, options: list, key: str) -> object:
    """A filter select box; a remembered choice that no longer exists falls back to "All"."""
    if st.session_state.get(key) not in options:
        st.session_state.pop(key, None)
    return column.selectbox(label, options, format_func=_all, key=key)


def _pick_row(table_key: str, target_key: str, ids: list[int]) -> None:
    rows = st.session_state[table_key].selection.rows
    if rows and rows[0] < len(ids):
        st.session_state[target_key] = ids[rows[0]]


def _ask(item_id: int) -> None:
    st.session_state[CONFIRM] = item_id


def _cancel() -> None:
    st.session_state.pop(CONFIRM, None)


def _delete(item_id: int) -> None:
    st.session_state.pop(CONFIRM, None)
    st.session_state[VIEW] = st.session_state.get(VIEW, 0) + 1
    try:
        gone = get_archive().delete(item_id)
    except ArchiveError as e:
        st.session_state[FLASH] = ("error", f"Item #{item_id} was not deleted. {e}")
        return
    st.session_state[FLASH] = ("success", f"Deleted item #{item_id}." if gone else f"Item #{item_id} was already gone.")


def _table(archive: Archive, found: list[ArchiveItem], filters: dict[str, object], view: str) -> None:
    ids = [item.id for item in found]
    table_key, target_key = f"{KEY}table_{view}", f"{KEY}target_{view}"
    st.dataframe(table_rows(found), hide_index=True, column_config=COLUMNS, row_height=64, key=table_key,
                 on_select=partial(_pick_row, table_key, target_key, ids), selection_mode="single-row")
    csv_col, zip_col = st.columns(2)
    csv_col.download_button(f"Table as CSV ({len(found)} items)", data=to_csv(found), file_name="cvae-archive.csv",
                            mime="text/csv", on_click="ignore", key=KEY + "csv", icon=":material/table:")
    zip_col.download_button(f"Images as ZIP ({len(found)} items)", file_name="cvae-archive-images.zip",
                            data=lambda: to_zip(archive.list(**filters, with_original=True)),
                            mime="application/zip", on_click="ignore", key=KEY + "zip", icon=":material/folder_zip:")

    st.subheader("Delete an item")
    names = {item.id: f"#{item.id} · digit {item.label} · {item.model} · {item.created_at:%Y-%m-%d %H:%M}"
             for item in found}
    target = st.selectbox("Item to delete", ids, index=None, format_func=names.get, key=target_key,
                          placeholder="Choose an item, or select its row in the table")
    if target is None or st.session_state.get(CONFIRM) != target:
        st.button("Delete…", key=KEY + "delete", disabled=target is None, on_click=_ask, args=(target,),
                  icon=":material/delete:")
        return
    st.warning(f"Delete item #{target} permanently? This cannot be undone.")
    yes, no = st.columns(2)
    yes.button("Yes, delete", key=KEY + "yes", type="primary", on_click=_delete, args=(target,))
    no.button("Cancel", key=KEY + "cancel", on_click=_cancel)


def render() -> None:
    st.title("Archive")
    flash = st.session_state.pop(FLASH, None)
    if flash is not None:
        {"success": st.success, "error": st.error}[flash[0]](flash[1])
    pending_panel(key=KEY + "pending")
    try:
        archive = get_archive()
        total = archive.count()
        models = archive.models()
    except ArchiveError as e:
        st.error(str(e))
        return
    st.caption(f"{total} saved item{'s' * (total != 1)}, stored in `{archive.location}`.")
    if total == 0:
        st.info("The archive is empty. On the Draw page, recognise a digit and press **Save to archive**, "
                "or turn on **Save automatically** in the sidebar.", icon=":material/inventory_2:")
        return
    digit_col, source_col, model_col = st.columns(3)
    filters = {
        "digit": _filter(digit_col, "Digit", [None, *range(10)], KEY + "digit"),
        "source": _filter(source_col, "Source", [None, *SOURCES], KEY + "source"),
        "model": _filter(model_col, "Model", [None, *models], KEY + "model"),
    }
    try:
        found = archive.list(**filters)
    except ArchiveError as e:
        st.error(str(e))
        return
    if not found:
        st.info("No saved item matches these filters.")
        return
    _table(archive, found, filters, "_".join(map(str, [st.session_state.get(VIEW, 0), *filters.values()])))


render()
