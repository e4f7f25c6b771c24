"""The archive store: round trips, validation, exports, the Streamlit page and its save button.

The fault, load and crash tests are in ``test_archive_faults.py``.
"""

from __future__ import annotations

import io
import os
import zipfile
from datetime import UTC
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from records import make_record
from sqlalchemy import create_engine, event
from streamlit.testing.v1 import AppTest

from cvae_core.archive import (
    FILENAME_MAX,
    ORIGINAL_MAX_SIDE,
    Archive,
    ArchiveError,
    RecordError,
    archive_url,
    fingerprint,
    png_to_array,
    prepare,
    table_rows,
    to_csv,
    to_zip,
)

PAGE = str(Path(__file__).resolve().parent.parent / "app" / "views" / "archive.py")


@pytest.fixture
def archive(tmp_path):
    store = Archive.from_url(f"sqlite:///{tmp_path / 'archive.db'}")
    yield store
    store.engine.dispose()


# -- the store -------------------------------------------------------------------------------


def test_save_get_round_trip(archive):
    record = make_record(3, source="upload", original=Image.new("RGB", (1200, 300), "white"), filename="three.png")
    item_id = archive.save(record)
    item = archive.get(item_id)
    assert (item.id, item.model, item.source, item.label) == (item_id, "conv-2", "upload", 3)
    assert item.confidence == pytest.approx(0.875) and item.sigma == pytest.approx(0.1)
    assert item.filename == "three.png" and item.created_at.tzinfo == UTC
    # PNGs decode to what was saved, to within 8-bit quantisation
    assert np.abs(png_to_array(item.input_png) - record["input_image"]).max() <= 0.5 / 255 + 1e-6
    assert np.abs(png_to_array(item.recon_png) - record["recon_image"]).max() <= 0.5 / 255 + 1e-6
    with Image.open(io.BytesIO(item.original_png)) as original:
        assert original.format == "PNG" and original.size == (ORIGINAL_MAX_SIDE, 128)
    assert record["original"].size == (1200, 300)  # the caller's image is left alone
    assert item.fingerprint == fingerprint(record)
    assert archive.get(item_id + 1) is None


def test_survives_a_restart(tmp_path):
    url = f"sqlite:///{tmp_path / 'archive.db'}"
    first = Archive.from_url(url)
    item_id = first.save(make_record(1))
    first.engine.dispose()
    again = Archive.from_url(url)
    assert again.get(item_id).label == 1 and again.count() == 1


def test_list_filters_count_and_order(archive):
    ids = [
        archive.save(make_record(0, label=1, source="canvas", model="conv-2")),
        archive.save(make_record(1, label=1, source="upload", model="mlp-2")),
        archive.save(make_record(2, label=7, source="upload", model="conv-2")),
    ]
    assert [item.id for item in archive.list()] == ids[::-1]  # newest first
    assert [item.id for item in archive.list(digit=1)] == [ids[1], ids[0]]
    assert [item.id for item in archive.list(source="upload")] == [ids[2], ids[1]]
    assert [item.id for item in archive.list(model="conv-2", digit=7)] == [ids[2]]
    assert archive.list(digit=5) == []
    assert archive.count() == 3 and archive.count(source="upload", model="mlp-2") == 1
    assert archive.models() == ["conv-2", "mlp-2"]
    assert all(item.original_png is None for item in archive.list())  # originals only on request


def test_delete(archive):
    keep, drop = archive.save(make_record(0)), archive.save(make_record(1))
    assert archive.delete(drop) is True
    assert archive.delete(drop) is False
    assert not archive.exists(drop) and archive.exists(keep)
    assert [item.id for item in archive.list()] == [keep]


def test_writes_take_the_lock_up_front_reads_do_not(archive):
    archive.count()  # creates the table
    seen: list[str] = []
    event.listen(archive.engine, "before_cursor_execute", lambda *args: seen.append(args[2]))
    archive.save(make_record(0))
    assert "BEGIN IMMEDIATE" in seen and seen.count("BEGIN IMMEDIATE") == 1  # one transaction per save
    seen.clear()
    archive.list()
    assert "BEGIN" in seen and "BEGIN IMMEDIATE" not in seen
    with archive.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000


def test_many_archives_share_one_engine(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'archive.db'}")
    for i in range(3):  # the app builds one per rerun over the cached connection's engine
        Archive(engine).save(make_record(i))
    assert Archive(engine).count() == 3


@pytest.mark.parametrize(
    ("change", "message"),
    [
        pytest.param({"label": 10}, "digit", id="label-10"),
        pytest.param({"label": -1}, "digit", id="label-negative"),
        pytest.param({"label": True}, "digit", id="label-bool"),
        pytest.param({"label": 3.0}, "digit", id="label-float"),
        pytest.param({"confidence": 1.5}, "confidence", id="confidence-above-1"),
        pytest.param({"confidence": float("nan")}, "confidence", id="confidence-nan"),
        pytest.param({"confidence": "0.9"}, "confidence", id="confidence-text"),
        pytest.param({"sigma": float("inf")}, "sigma", id="sigma-inf"),
        pytest.param({"sigma": -0.1}, "sigma", id="sigma-negative"),
        pytest.param({"source": "camera"}, "source", id="source-unknown"),
        pytest.param({"model": ""}, "model", id="model-empty"),
        pytest.param({"model": "x" * 65}, "model", id="model-too-long"),
        pytest.param({"input_image": np.zeros((28, 27))}, "input image", id="input-wrong-shape"),
        pytest.param({"input_image": np.full((28, 28), np.nan)}, "non-finite", id="input-nan"),
        pytest.param({"input_image": np.full((28, 28), 2.0)}, "outside", id="input-out-of-range"),
        pytest.param({"input_image": "pixels"}, "input image", id="input-not-array"),
        pytest.param({"recon_image": np.zeros((2, 28, 28))}, "reconstruction", id="recon-wrong-shape"),
        pytest.param({"original": b"\x89PNG not an image object"}, "original", id="original-bytes"),
        pytest.param({"original": Image.new("1", (5000, 5000))}, "original", id="original-too-large"),
    ],
)
def test_invalid_records_are_refused_before_writing(archive, change, message):
    with pytest.raises(RecordError, match=message):
        archive.save(make_record(0, **change))
    assert archive.count() == 0


def test_missing_field_is_named(archive):
    record = make_record(0)
    del record["recon_image"]
    with pytest.raises(RecordError, match="recon_image"):
        archive.save(record)


def test_accepted_forms():
    entry = prepare(make_record(0, label=np.int64(4), confidence=np.float32(0.5),
                                input_image=np.zeros((1, 1, 28, 28), dtype=np.float32)))
    assert entry.label == 4 and entry.confidence == 0.5
    assert prepare(entry) is entry


@pytest.mark.parametrize(
    "original",
    [
        Image.new("I;16", (40, 30), 40000),
        Image.new("1", (40, 30), 1),
        Image.new("CMYK", (40, 30), (0, 0, 0, 255)),
        Image.new("LA", (40, 30), (255, 128)),
        Image.new("P", (40, 30), 3),
        Image.new("F", (40, 30), 0.5),
    ],
    ids=lambda img: img.mode,
)
def test_originals_of_any_mode_are_re_encoded_as_png(original):
    entry = prepare(make_record(0, original=original))
    with Image.open(io.BytesIO(entry.original_png)) as img:
        assert img.format == "PNG" and img.size == (40, 30)


def test_file_name_is_only_inert_text(archive, tmp_path):
    hostile = "../../" + "evil\n\x00<b>name</b>" * 20 + ".png"
    item_id = archive.save(make_record(0, source="upload", filename=hostile))
    stored = archive.get(item_id).filename
    assert len(stored) <= FILENAME_MAX and "\n" not in stored and "\x00" not in stored
    assert stored.startswith("../../evil<b>name</b>")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["archive.db", "archive.db-shm", "archive.db-wal"]
    assert not (tmp_path.parent / "evil").exists()
    names = zipfile.ZipFile(io.BytesIO(to_zip(archive.list(with_original=True)))).namelist()
    assert not any("evil" in name or ".." in name for name in names)


def test_fingerprint_is_input_model_and_sigma():
    record = make_record(0)
    assert fingerprint(record) == fingerprint(make_record(0, label=9, recon_image=np.zeros((28, 28))))
    assert fingerprint(record) != fingerprint({**record, "sigma": 0.2})
    assert fingerprint(record) != fingerprint({**record, "model": "mlp-2"})
    assert fingerprint(record) != fingerprint(make_record(1))


def test_archive_url(monkeypatch):
    monkeypatch.delenv("CVAE_ARCHIVE_URL", raising=False)
    assert archive_url().startswith("sqlite:///") and archive_url().endswith("/archive/archive.db")
    monkeypatch.setenv("CVAE_ARCHIVE_URL", "postgresql+psycopg://app:secret@db/archive")
    assert archive_url() == "postgresql+psycopg://app:secret@db/archive"
    monkeypatch.setenv("CVAE_ARCHIVE_URL", "not a url")
    with pytest.raises(ArchiveError, match="CVAE_ARCHIVE_URL"):
        archive_url()


def test_csv_zip_and_table_rows(archive):
    archive.save(make_record(0, source="upload", filename="=HYPERLINK(1)", original=Image.new("L", (64, 64))))
    archive.save(make_record(1))
    found = archive.list(with_original=True)
    lines = to_csv(found).decode().splitlines()
    assert lines[0] == "id,saved_utc,digit,confidence,model,source,sigma,filename"
    assert len(lines) == 3 and lines[2].endswith(",'=HYPERLINK(1)")  # no formula for spreadsheets
    with zipfile.ZipFile(io.BytesIO(to_zip(found))) as zf:
        assert sorted(zf.namelist()) == [
            "archive.csv", "item-000001/input.png", "item-000001/original.png", "item-000001/reconstruction.png",
            "item-000002/input.png", "item-000002/reconstruction.png",
        ]
        assert png_to_array(zf.read("item-000002/input.png")).shape == (28, 28)
    rows = table_rows(found)
    assert rows[0]["id"] == 2 and rows[0]["input"].startswith("data:image/png;base64,")


# -- the app ---------------------------------------------------------------------------------


@pytest.fixture
def app_url(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'app' / 'archive.db'}"
    monkeypatch.setenv("CVAE_ARCHIVE_URL", url)
    return url


def draw_page():
    """A stand-in for the Draw page: the sidebar toggle, the save button and automatic saving."""
    import numpy as np
    import streamlit as st

    from app.archive_ui import autosave, autosave_enabled, autosave_toggle, save_button

    rng = np.random.default_rng(st.session_state.get("seed", 0))
    record = {
        "model": "conv-2", "source": "upload", "label": 7, "confidence": 0.93, "sigma": 0.0,
        "input_image": rng.random((28, 28)), "recon_image": rng.random((28, 28)), "original": None,
        "filename": "seven.png",
    }
    with st.sidebar:
        autosave_toggle()
    save_button(record, key="draw_save")
    if autosave_enabled():
        autosave(record)


def item_to_delete(at: AppTest):
    return next(box for box in at.selectbox if box.label == "Item to delete")


def test_page_empty_state(app_url):
    at = AppTest.from_file(PAGE, default_timeout=30).run()
    assert not at.exception
    assert "The archive is empty" in at.info[0].value
    assert not at.dataframe


def test_save_then_page_lists_it_then_delete(app_url):
    draw = AppTest.from_function(draw_page, default_timeout=30).run()
    draw.button(key="draw_save").click().run()
    assert not draw.exception
    assert draw.success[0].value == "Saved to the archive as item #1."
    draw.button(key="draw_save").click().run()
    assert draw.info[0].value == "Already in the archive as item #1."

    page = AppTest.from_file(PAGE, default_timeout=30).run()
    assert not page.exception
    table = page.dataframe[0].value
    assert table["id"].tolist() == [1] and table["digit"].tolist() == [7]
    assert table["filename"].tolist() == ["seven.png"] and table["input"][0].startswith("data:image/png")
    item_to_delete(page).set_value(1).run()
    page.button(key="archive_page_delete").click().run()
    assert "Delete item #1 permanently?" in page.warning[0].value
    page.button(key="archive_page_yes").click().run()
    assert not page.exception
    assert page.success[0].value == "Deleted item #1."
    assert "The archive is empty" in page.info[0].value and not page.dataframe
    assert Archive.from_url(app_url).count() == 0


def test_page_filters_and_cancelled_delete(app_url):
    store = Archive.from_url(app_url)
    store.save(make_record(0, label=2, model="mlp-2"))
    store.save(make_record(1, label=5, source="upload"))
    page = AppTest.from_file(PAGE, default_timeout=30).run()
    assert len(page.dataframe[0].value) == 2
    page.selectbox(key="archive_page_model").set_value("mlp-2").run()
    assert page.dataframe[0].value["digit"].tolist() == [2]
    page.selectbox(key="archive_page_digit").set_value(9).run()
    assert page.info[0].value == "No saved item matches these filters."
    page.selectbox(key="archive_page_digit").set_value(None).run()
    page.selectbox(key="archive_page_model").set_value(None).run()
    item_to_delete(page).set_value(2).run()
    page.button(key="archive_page_delete").click().run()
    page.button(key="archive_page_cancel").click().run()
    assert not page.exception and store.count() == 2


def test_autosave_saves_each_input_once(app_url):
    draw = AppTest.from_function(draw_page, default_timeout=30).run()
    draw.toggle(key="archive_autosave").set_value(True).run()
    draw.run()
    draw.run()
    assert not draw.exception
    assert Archive.from_url(app_url).count() == 1
    draw.session_state["seed"] = 1  # a new drawing
    draw.run()
    assert Archive.from_url(app_url).count() == 2


def test_failed_save_is_kept_and_retried(app_url, tmp_path):
    db = tmp_path / "app" / "archive.db"
    db.parent.mkdir()
    db.write_bytes(b"this is not a database" * 100)
    draw = AppTest.from_function(draw_page, default_timeout=30).run()
    draw.button(key="draw_save").click().run()
    assert not draw.exception
    assert "is not an archive database" in draw.error[0].value
    assert len(draw.session_state["archive_pending"]) == 1
    assert "1 item could not be saved yet" in draw.warning[0].value

    page = AppTest.from_file(PAGE, default_timeout=30).run()
    assert not page.exception and "is not an archive database" in page.error[0].value

    db.unlink()  # the user moves the damaged file aside
    draw.button(key="draw_save_pending_retry").click().run()
    assert not draw.exception
    assert draw.success[0].value == "Saved 1 item to the archive."
    assert not draw.session_state["archive_pending"] and not draw.warning
    assert Archive.from_url(app_url).count() == 1


def test_invalid_record_is_reported_not_queued(app_url):
    def bad_draw():
        import numpy as np

        from app.archive_ui import save_button

        save_button({"model": "conv-2", "source": "canvas", "label": 3, "confidence": float("nan"), "sigma": 0.0,
                     "input_image": np.zeros((28, 28)), "recon_image": np.zeros((28, 28)), "original": None,
                     "filename": None}, key="bad")

    at = AppTest.from_function(bad_draw, default_timeout=30).run()
    at.button(key="bad").click().run()
    assert not at.exception and "confidence" in at.error[0].value
    assert "archive_pending" not in at.session_state or not at.session_state["archive_pending"]
    assert not os.path.exists(app_url.removeprefix("sqlite:///"))  # nothing was even opened
