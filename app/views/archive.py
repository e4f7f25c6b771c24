"""Archive page: saved digits a page at a time; filter, label what was written, delete, export.

Reads go straight to the database on every run (no cached queries), so what is shown is current.
Each run asks the database for the counts and one page of items (``PAGE_SIZE``), and draws
thumbnails for that page only: its cost does not grow with the archive. Exports are built when their
button is pressed (Streamlit calls ``data`` then, in another thread), streamed to a temporary file
in small batches and capped (``cvae_core.archive.export``); the finished file is handed to Streamlit
as bytes, which it holds in memory for the download, so the caps bound that too. The page shows the
archive's name, never where it lives on the server.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from functools import partial
from typing import IO

import streamlit as st

from app.archive_table import COLUMNS, LABEL_COLUMNS, label_rows, partner_reading, table_rows
from app.archive_ui import get_archive, pending_panel
from cvae_core.archive import (
    EXPORT_MAX_BYTES,
    EXPORT_MAX_ITEMS,
    SOURCES,
    TRUTHS,
    Archive,
    ArchiveError,
    ArchiveItem,
    Filters,
    export_csv,
    export_idx,
    export_npz,
    export_zip,
    labelled_filters,
)
from cvae_core.config import NUM_CLASSES

log = logging.getLogger(__name__)

KEY = "archive_page_"  # session-state namespace of this page
CONFIRM = KEY + "confirm"  # id awaiting "Yes, delete"
VIEW = KEY + "view"  # bumped by each change, so the table selection and the chosen item start afresh
FLASH = KEY + "flash"
PAGE = KEY + "page"
EXPORT_ERRORS = KEY + "export_errors"  # export name -> why it failed (the download runs outside the page)
PAGE_SIZE = 50
TRUTH_NAMES = {"right": "Right", "wrong": "Wrong", "labelled": "Labelled", "unlabelled": "Unlabelled"}


def _all(value: object) -> str:
    return "All" if value is None else TRUTH_NAMES.get(value, str(value))


def _filter(column: st.delta_generator.DeltaGenerator, label: str, options: list, key: str, help: str = "") -> object:
    """A filter select box; a remembered choice that no longer exists falls back to "All"."""
    if st.session_state.get(key) not in options:
        st.session_state.pop(key, None)
    return column.selectbox(label, options, format_func=_all, key=key, help=help or None)


def _flash(kind: str, message: str) -> None:
    st.session_state[FLASH] = (kind, message)
    st.session_state[VIEW] = st.session_state.get(VIEW, 0) + 1


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
    try:
        gone = get_archive().delete(item_id)
    except ArchiveError as e:
        _flash("error", f"Item #{item_id} was not deleted. {e}")
        return
    _flash("success", f"Deleted item #{item_id}." if gone else f"Item #{item_id} was already gone.")


def _relabel(item_id: int, key: str) -> None:
    label = st.session_state[key]
    try:
        found = get_archive().set_true_label(item_id, label)
    except ArchiveError as e:
        _flash("error", f"The label of item #{item_id} was not changed. {e}")
        return
    said = "marked as not told" if label is None else f"marked as a written {label}"
    _flash("success", f"Item #{item_id} {said}." if found else f"Item #{item_id} is gone.")


def _filters(archive_models: list[str]) -> Filters:
    digit_col, truth_col, source_col, model_col = st.columns(4)
    return Filters(
        digit=_filter(digit_col, "Digit", [None, *range(NUM_CLASSES)], KEY + "digit", "The recognised digit"),
        truth=_filter(truth_col, "Answer", [None, *TRUTHS], KEY + "truth",
                      "Against what the user says they wrote: right, wrong, any labelled, or not told"),
        source=_filter(source_col, "Source", [None, *SOURCES], KEY + "source"),
        model=_filter(model_col, "Model", [None, *archive_models], KEY + "model"),
    )


def _page_number(matching: int) -> int:
    pages = max(1, math.ceil(matching / PAGE_SIZE))
    if not 1 <= st.session_state.get(PAGE, 1) <= pages:  # the filters changed under a later page
        st.session_state[PAGE] = min(max(1, st.session_state.get(PAGE, 1)), pages)
    if pages == 1:
        return 1
    left, right = st.columns([1, 3], vertical_alignment="bottom")
    page = int(left.number_input("Page", min_value=1, max_value=pages, step=1, key=PAGE))
    first = (page - 1) * PAGE_SIZE + 1
    right.caption(f"Page {page} of {pages}: items {first:,}–{min(first + PAGE_SIZE - 1, matching):,} "
                  f"of {matching:,}, newest first.")
    return page


def _download(build: Callable[[], IO[bytes]], name: str) -> Callable[[], bytes]:
    """What a download button calls when pressed: the export built by ``build`` as bytes, its
    temporary file closed (Streamlit takes bytes, not the temporary file's type). A failure is kept
    for the page's next run, and Streamlit shows "failed" under the button meanwhile."""
    errors: dict[str, str] = st.session_state.setdefault(EXPORT_ERRORS, {})

    def data() -> bytes:
        try:
            with build() as out:
                return out.read()
        except ArchiveError as e:
            log.warning("export %s failed: %s", name, e)
            errors[name] = str(e)
            raise

    return data


def _exports(archive: Archive, filters: Filters, matching: int) -> None:
    st.subheader("Export")
    for name, message in st.session_state.pop(EXPORT_ERRORS, {}).items():
        st.error(f"The {name} export failed. {message}")
    originals = st.toggle("Include the original images in the ZIP", value=True, key=KEY + "originals")
    try:
        _, image_bytes = archive.size(filters, with_original=originals)
        labelled = archive.count(labelled_filters(filters))
    except ArchiveError as e:
        st.error(str(e))
        return
    labelled = 0 if filters.truth == "unlabelled" else labelled
    too_many = matching > EXPORT_MAX_ITEMS
    too_big = image_bytes > EXPORT_MAX_BYTES
    limit = (f"One export holds at most {EXPORT_MAX_ITEMS:,} items and {EXPORT_MAX_BYTES / 1e6:,.0f} MB of images; "
             "narrow the filters to export in parts.")
    csv_col, zip_col, idx_col, npz_col = st.columns(4)
    csv_col.download_button(f"Table as CSV ({matching:,})", data=_download(lambda: export_csv(archive, filters), "CSV"),
                            file_name="cvae-archive.csv", mime="text/csv", on_click="ignore", key=KEY + "csv",
                            icon=":material/table:", disabled=too_many, help=limit if too_many else None)
    zip_col.download_button(f"Images as ZIP ({image_bytes / 1e6:,.1f} MB)",
                            data=_download(lambda: export_zip(archive, filters, originals=originals), "ZIP"),
                            file_name="cvae-archive-images.zip", mime="application/zip", on_click="ignore",
                            key=KEY + "zip", icon=":material/folder_zip:", disabled=too_many or too_big,
                            help=limit if too_many or too_big else None)
    dataset = (f"The {labelled:,} labelled items as a data set: the 28x28 inputs with what was written, for "
               "`python -m cvae_core.evaluate --data FILE`. Drawings marked unfinished are left out." if labelled
               else "No finished matching item has a true label yet: say what was written for some items first.")
    no_set = not labelled or labelled > EXPORT_MAX_ITEMS
    idx_col.download_button(f"Labelled set, IDX ({labelled:,})", data=_download(lambda: export_idx(archive, filters), "IDX"),
                            file_name="cvae-archive-idx.zip", mime="application/zip", on_click="ignore",
                            key=KEY + "idx", icon=":material/dataset:", disabled=no_set, help=dataset)
    npz_col.download_button(f"Labelled set, .npz ({labelled:,})", data=_download(lambda: export_npz(archive, filters), ".npz"),
                            file_name="cvae-archive.npz", mime="application/octet-stream", on_click="ignore",
                            key=KEY + "npz", icon=":material/dataset:", disabled=no_set, help=dataset)
    if too_many or too_big:
        st.caption(limit)


def _detail(item: ArchiveItem, view: str) -> None:
    """The chosen item: its images, every digit's probability and log-likelihood, and its label."""
    images = st.columns(3)
    images[0].image(item.input_png, caption="What the model saw", width=112)
    images[1].image(item.recon_png, caption=f"Reconstruction by {item.model}", width=112)
    if item.original_png is not None:
        images[2].image(item.original_png, caption="Original", width=160)
    facts = [f"{item.model} read a **{item.label}** ({item.confidence:.1%})"]
    if item.not_digit is not None:
        facts.append(f"not a digit: {item.not_digit:.1%}")
    if item.partner_model is not None:
        facts.append(f"partner {partner_reading(item)}")
    if item.finished is False:
        facts.append("an unfinished drawing (strokes were added after it was saved; not in the data set)")
    st.markdown(" · ".join(facts))
    if item.probs is not None or item.log_likelihoods is not None:
        st.dataframe(label_rows(item), hide_index=True, column_config=LABEL_COLUMNS, key=f"{KEY}labels_{view}")
    else:
        st.caption("This item was saved before probabilities and log-likelihoods were kept.")
    key = f"{KEY}written_{item.id}_{view}"
    options = [None, *range(NUM_CLASSES)]
    st.selectbox("What was written?", options, index=options.index(item.true_label), key=key,
                 format_func=lambda v: "Not told" if v is None else str(v), on_change=_relabel, args=(item.id, key),
                 help="The digit the user wrote: saved at once, and used by the Answer filter and the data set.")


def _chosen(archive: Archive, found: list[ArchiveItem], view: str) -> None:
    ids = [item.id for item in found]
    names = {item.id: f"#{item.id} · digit {item.label} · {item.model} · {item.created_at:%Y-%m-%d %H:%M}"
             for item in found}
    target = st.selectbox("Item", ids, index=None, format_func=names.get, key=f"{KEY}target_{view}",
                          placeholder="Choose an item of this page, or select its row in the table")
    if target is None:
        return
    try:
        item = archive.get(target)
    except ArchiveError as e:
        st.error(str(e))
        return
    if item is None:
        st.info(f"Item #{target} is gone.")
        return
    _detail(item, view)
    if st.session_state.get(CONFIRM) != target:
        st.button("Delete…", key=KEY + "delete", on_click=_ask, args=(target,), icon=":material/delete:")
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
    st.caption(f"{total:,} saved item{'s' * (total != 1)} in the archive {archive.name}.")
    if total == 0:
        st.info("The archive is empty. On the Draw page, recognise a digit and press **Save to archive**, "
                "or turn on **Save automatically** in the sidebar.", icon=":material/inventory_2:")
        return
    filters = _filters(models)
    try:
        matching = archive.count(filters)
        if filters != Filters():
            st.caption(f"{matching:,} of {total:,} item{'s' * (total != 1)} match these filters.")
        page = _page_number(matching)
        found = archive.list(filters, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE) if matching else []
    except ArchiveError as e:
        st.error(str(e))
        return
    if not found:
        st.info("No saved item matches these filters.")
        return
    view = "_".join(map(str, [st.session_state.get(VIEW, 0), page, *vars(filters).values()]))
    table_key, target_key = f"{KEY}table_{view}", f"{KEY}target_{view}"
    st.dataframe(table_rows(found), hide_index=True, column_config=COLUMNS, row_height=64, key=table_key,
                 on_select=partial(_pick_row, table_key, target_key, [item.id for item in found]),
                 selection_mode="single-row")
    st.subheader("One item")
    _chosen(archive, found, view)
    _exports(archive, filters, matching)


render()
