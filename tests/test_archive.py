"""The archive store on SQLite and on a real PostgreSQL: round trips, validation, labels, pages,
schema upgrades of older archives.

Exports are in ``test_archive_export.py``, the Streamlit page in ``test_archive_page.py``, faults,
load and crashes in ``test_archive_faults.py``. PostgreSQL comes from ``tests/postgres.py``
(skipped when it is not installed, failing under ``CI=true``).
"""

from __future__ import annotations

import io
from datetime import UTC, datetime

import numpy as np
import pytest
from PIL import Image
from postgres import postgres, postgres_url  # noqa: F401 -- fixtures
from records import full_record, make_record
from sqlalchemy import Column, DateTime, Float, Integer, LargeBinary, MetaData, String, Table, create_engine, event

from cvae_core.archive import (
    FILENAME_MAX,
    LIST_MAX,
    ORIGINAL_MAX_SIDE,
    Archive,
    ArchiveError,
    Filters,
    Record,
    RecordError,
    Saved,
    archive_url,
    fingerprint,
    png_bytes,
    png_to_array,
    prepare,
)

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def url(request, tmp_path) -> str:
    """An empty archive's URL: a SQLite file, or a fresh database on the test PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'archive.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def archive(url):
    store = Archive.from_url(url)
    yield store
    store.engine.dispose()


@pytest.fixture
def sqlite_archive(tmp_path):
    """For what does not depend on the database (validation happens before any write)."""
    store = Archive.from_url(f"sqlite:///{tmp_path / 'archive.db'}")
    yield store
    store.engine.dispose()


# -- the store -------------------------------------------------------------------------------------


def test_save_get_round_trip(archive):
    record = make_record(3, source="upload", original=Image.new("RGB", (1200, 300), "white"), filename="three.png")
    item_id = archive.save(record)
    item = archive.get(item_id)
    assert (item.id, item.model, item.source, item.label) == (item_id, "conv-2", "upload", 3)
    assert item.confidence == pytest.approx(0.875) and item.sigma == pytest.approx(0.1)
    assert item.filename == "three.png" and item.created_at.tzinfo is not None
    assert abs(item.created_at - datetime.now(UTC)).total_seconds() < 60
    # PNGs decode to what was saved, to within 8-bit quantisation
    assert np.abs(png_to_array(item.input_png) - record["input_image"]).max() <= 0.5 / 255 + 1e-6
    assert np.abs(png_to_array(item.recon_png) - record["recon_image"]).max() <= 0.5 / 255 + 1e-6
    with Image.open(io.BytesIO(item.original_png)) as original:
        assert original.format == "PNG" and original.size == (ORIGINAL_MAX_SIDE, 128)
    assert record["original"].size == (1200, 300)  # the caller's image is left alone
    assert item.fingerprint == fingerprint(record)
    assert (item.true_label, item.probs, item.not_digit, item.partner_model) == (None, None, None, None)
    assert archive.get(item_id + 1) is None


def test_typed_record_keeps_every_field(archive):
    record = full_record(4)
    item = archive.get(archive.save(record))
    assert item.probs == pytest.approx(record.probs) and len(item.probs) == 10
    assert sum(item.probs) + item.not_digit == pytest.approx(1)
    assert item.log_likelihoods == pytest.approx(record.log_likelihoods) and len(item.log_likelihoods) == 11
    partner = (item.partner_model, item.partner_label, item.partner_confidence)
    assert item.not_digit == 0.125 and partner == ("conv-2", 3, 0.5)
    assert item.true_label == 4 and item.label == record.label
    assert item.verdict == ("right" if record.label == 4 else "wrong")


def test_survives_a_restart(url):
    first = Archive.from_url(url)
    item_id = first.save(make_record(1))
    first.engine.dispose()
    again = Archive.from_url(url)
    assert again.get(item_id).label == 1 and again.count() == 1
    again.engine.dispose()


def test_list_filters_count_and_order(archive):
    ids = [
        archive.save(make_record(0, label=1, source="canvas", model="conv-2")),
        archive.save(make_record(1, label=1, source="upload", model="mlp-2")),
        archive.save(make_record(2, label=7, source="upload", model="conv-2")),
    ]
    assert [item.id for item in archive.list()] == ids[::-1]  # newest first
    assert [item.id for item in archive.list(Filters(digit=1))] == [ids[1], ids[0]]
    assert [item.id for item in archive.list(Filters(source="upload"))] == [ids[2], ids[1]]
    assert [item.id for item in archive.list(Filters(model="conv-2", digit=7))] == [ids[2]]
    assert archive.list(Filters(digit=5)) == []
    assert archive.count() == 3 and archive.count(Filters(source="upload", model="mlp-2")) == 1
    assert archive.models() == ["conv-2", "mlp-2"]
    assert all(item.original_png is None for item in archive.list())  # originals only on request


def test_pages_are_bounded(archive):
    ids = [archive.save(make_record(i)) for i in range(7)][::-1]
    assert [item.id for item in archive.list(limit=3)] == ids[:3]
    assert [item.id for item in archive.list(limit=3, offset=3)] == ids[3:6]
    assert [item.id for item in archive.list(limit=3, offset=6)] == ids[6:]
    assert [item.id for item in archive.iterate(batch=3)] == ids
    assert [item.id for item in archive.iterate(batch=2, top=ids[2])] == ids[2:]
    for bad in ({"limit": LIST_MAX + 1}, {"limit": 0}, {"offset": -1}):
        with pytest.raises(ValueError, match="limit"):
            archive.list(**bad)


def test_true_label_set_corrected_cleared_and_filtered(archive):
    right = archive.save(make_record(0, label=3, true_label=3))
    wrong = archive.save(make_record(1, label=3))
    unlabelled = archive.save(make_record(2, label=5))
    assert archive.set_true_label(wrong, 8) is True  # told later
    assert archive.get(wrong).true_label == 8 and archive.get(wrong).verdict == "wrong"
    assert [i.id for i in archive.list(Filters(truth="right"))] == [right]
    assert [i.id for i in archive.list(Filters(truth="wrong"))] == [wrong]
    assert [i.id for i in archive.list(Filters(truth="unlabelled"))] == [unlabelled]
    assert [i.id for i in archive.list(Filters(truth="labelled"))] == [wrong, right]
    assert archive.count(Filters(truth="wrong", digit=3)) == 1
    assert archive.set_true_label(right, None) is True  # a mistake, undone
    assert archive.get(right).verdict == "unlabelled"
    assert archive.set_true_label(unlabelled + 100, 1) is False
    for bad in (10, -1, True, 2.0, "3"):
        with pytest.raises(RecordError, match="true label"):
            archive.set_true_label(wrong, bad)
    assert archive.get(wrong).true_label == 8
    with pytest.raises(ValueError, match="truth"):
        Filters(truth="maybe")


def test_delete(archive):
    keep, drop = archive.save(make_record(0)), archive.save(make_record(1))
    assert archive.delete(drop) is True
    assert archive.delete(drop) is False
    assert not archive.exists(drop) and archive.exists(keep)
    assert [item.id for item in archive.list()] == [keep]


def test_many_archives_share_one_engine(url):
    engine = create_engine(url, pool_pre_ping=True)
    for i in range(3):  # the app builds one per rerun over the cached connection's engine
        Archive(engine).save(make_record(i))
    assert Archive(engine).count() == 3
    engine.dispose()


def test_a_retried_entry_is_stored_once(archive):
    entry = prepare(make_record(0))
    first = archive.save(entry)
    assert archive.save(entry) == first and archive.count() == 1


def test_saving_the_same_input_again_finds_its_item(archive):
    """A save is idempotent on its content (pixels, model, sigma): saved again (a second click, a
    retry prepared anew, a new session after a replica died) it is the same item, and a true label
    or finished mark given with it is written onto that item."""
    first = archive.store(make_record(0))
    assert first.new
    again = archive.store(make_record(0, true_label=4, finished=False))
    assert again == Saved(first.id, new=False) and archive.count() == 1
    item = archive.get(first.id)
    assert item.true_label == 4 and item.finished is False
    assert archive.store(make_record(0)).id == first.id and archive.get(first.id).true_label == 4  # kept
    assert archive.find(make_record(0)) == first.id and archive.find(make_record(1)) is None
    assert archive.store(make_record(0, sigma=0.2)).new  # another sigma: another input
    archive.delete(first.id)
    assert archive.store(make_record(0)).new  # deleted: saving it again stores it again


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
        pytest.param({"model": "conv\ud800-2"}, "model name contains characters", id="model-lone-surrogate"),
        pytest.param({"model": "conv\x00-2"}, "model name contains characters", id="model-nul"),
        pytest.param({"partner_model": "mlp\udfff"}, "partner model name", id="partner-lone-surrogate"),
        pytest.param({"input_image": np.zeros((28, 27))}, "input image", id="input-wrong-shape"),
        pytest.param({"input_image": np.full((28, 28), np.nan)}, "non-finite", id="input-nan"),
        pytest.param({"input_image": np.full((28, 28), 2.0)}, "outside", id="input-out-of-range"),
        pytest.param({"input_image": "pixels"}, "input image", id="input-not-array"),
        pytest.param({"recon_image": np.zeros((2, 28, 28))}, "reconstruction", id="recon-wrong-shape"),
        pytest.param({"original": b"\x89PNG not an image object"}, "original", id="original-bytes"),
        pytest.param({"original": Image.new("1", (5000, 5000))}, "original", id="original-too-large"),
        pytest.param({"true_label": 10}, "true label", id="true-label-10"),
        pytest.param({"probs": [0.1] * 9}, "probabilities", id="probs-nine"),
        pytest.param({"probs": [0.5] * 10}, "sum to 1", id="probs-not-summing"),
        pytest.param({"probs": [float("nan")] * 10}, "probabilities", id="probs-nan"),
        pytest.param({"log_likelihoods": [-1.0] * 9 + [float("-inf")]}, "log-likelihoods", id="loglik-inf"),
        pytest.param({"not_digit": 1.5}, "not-a-digit", id="not-digit-above-1"),
        pytest.param({"partner_model": "mlp-2", "partner_label": 11}, "partner", id="partner-label-11"),
        pytest.param({"colour": "blue"}, "unknown fields", id="unknown-field"),
    ],
)
def test_invalid_records_are_refused_before_writing(sqlite_archive, change, message):
    with pytest.raises(RecordError, match=message):
        sqlite_archive.save(make_record(0, **change))
    assert sqlite_archive.count() == 0


def test_lone_surrogate_model_name_is_a_record_error_not_unicode_error(archive):
    """Fault 4: it raised UnicodeEncodeError from hashing the name; now the archive's own error."""
    for call in (archive.save, fingerprint, prepare):
        with pytest.raises(RecordError, match="not printable text"):
            call(make_record(0, model="\ud83d"))
    assert archive.save(make_record(0, filename="name \ud83d.png")) > 0  # in a file name it is dropped
    assert archive.list()[0].filename == "name .png"


def test_missing_field_is_named(archive):
    record = make_record(0)
    del record["recon_image"]
    with pytest.raises(RecordError, match="recon_image"):
        archive.save(record)


def test_accepted_forms():
    entry = prepare(make_record(0, label=np.int64(4), confidence=np.float32(0.5),
                                input_image=np.zeros((1, 1, 28, 28), dtype=np.float32),
                                probs=np.full(10, 0.1, np.float32), true_label=np.int8(2)))
    assert entry.label == 4 and entry.confidence == 0.5 and entry.true_label == 2
    assert entry.probs == pytest.approx((0.1,) * 10) and isinstance(entry.probs, tuple)
    assert prepare(entry) is entry
    assert prepare(Record(**make_record(0))).fingerprint == prepare(make_record(0)).fingerprint


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


def test_grey_opaque_originals_are_kept_as_grey_and_colour_ones_in_colour():
    """A canvas drawing (grey ink, opaque) is stored as one grey channel with the same pixels; a
    picture with colour or transparency keeps its channels."""
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (30, 40), dtype=np.uint8)
    drawing = Image.fromarray(np.dstack([grey, grey, grey, np.full_like(grey, 255)]), mode="RGBA")
    colour = np.dstack([grey, grey, grey, np.full_like(grey, 255)])
    colour[5, 7, 1] ^= 1
    see_through = np.dstack([grey, grey, grey, np.full_like(grey, 255)])
    see_through[0, 0, 3] = 0
    for original, mode in [(drawing, "L"), (Image.fromarray(colour, mode="RGBA"), "RGBA"),
                           (Image.fromarray(see_through, mode="RGBA"), "RGBA")]:
        entry = prepare(make_record(0, original=original))
        with Image.open(io.BytesIO(entry.original_png)) as img:
            assert img.mode == mode
            back = np.asarray(img.convert("RGBA"))
        assert np.array_equal(back, np.asarray(original.convert("RGBA")))


def test_file_name_is_only_inert_text(archive):
    hostile = "../../" + "evil\n\x00<b>name</b>" * 20 + ".png"
    item_id = archive.save(make_record(0, source="upload", filename=hostile))
    stored = archive.get(item_id).filename
    assert len(stored) <= FILENAME_MAX and "\n" not in stored and "\x00" not in stored
    assert stored.startswith("../../evil<b>name</b>")


def test_fingerprint_is_input_model_and_sigma():
    record = make_record(0)
    assert fingerprint(record) == fingerprint(make_record(0, label=9, recon_image=np.zeros((28, 28))))
    assert fingerprint(record) != fingerprint({**record, "sigma": 0.2})
    assert fingerprint(record) != fingerprint({**record, "model": "mlp-2"})
    assert fingerprint(record) != fingerprint(make_record(1))
    assert fingerprint(Record(**record)) == fingerprint(record)


def test_archive_url(monkeypatch):
    monkeypatch.delenv("CVAE_ARCHIVE_URL", raising=False)
    assert archive_url().startswith("sqlite:///") and archive_url().endswith("/archive/archive.db")
    monkeypatch.setenv("CVAE_ARCHIVE_URL", "postgresql+psycopg://app:secret@db/archive")
    assert archive_url() == "postgresql+psycopg://app:secret@db/archive"
    monkeypatch.setenv("CVAE_ARCHIVE_URL", "not a url")
    with pytest.raises(ArchiveError, match="CVAE_ARCHIVE_URL"):
        archive_url()


def test_engine_pings_before_use(archive):
    assert archive.engine.pool._pre_ping  # what makes the first save after a server restart work


# -- archives written by earlier versions ----------------------------------------------------------

FIRST_VERSION = Table(  # the table as the first version of the archive created it
    "archive_items", MetaData(),
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("model", String(64), nullable=False),
    Column("source", String(16), nullable=False),
    Column("label", Integer, nullable=False),
    Column("confidence", Float, nullable=False),
    Column("sigma", Float, nullable=False),
    Column("filename", String(120), nullable=True),
    Column("fingerprint", String(64), nullable=False),
    Column("input_png", LargeBinary, nullable=False),
    Column("recon_png", LargeBinary, nullable=False),
    Column("original_png", LargeBinary, nullable=True),
)


def first_version_archive(url: str, rows: int) -> None:
    engine = create_engine(url)
    FIRST_VERSION.create(engine)
    png = png_bytes(np.zeros((28, 28), np.uint8))
    with engine.begin() as conn:
        conn.execute(FIRST_VERSION.insert(), [
            {"created_at": datetime(2026, 1, 1, tzinfo=UTC), "model": "conv-2", "source": "canvas", "label": i,
             "confidence": 0.5, "sigma": 0.0, "filename": None, "fingerprint": f"{i:064x}", "input_png": png,
             "recon_png": png, "original_png": None}
            for i in range(rows)
        ])
    engine.dispose()


def test_an_older_archive_gains_the_new_columns_and_keeps_its_rows(url):
    first_version_archive(url, rows=3)
    archive = Archive.from_url(url)
    old = archive.list()
    assert [item.label for item in old] == [2, 1, 0]
    assert all(item.true_label is None and item.probs is None and item.save_token is None for item in old)
    assert archive.set_true_label(old[0].id, 2) and archive.count(Filters(truth="right")) == 1
    new = archive.save(full_record(5))
    assert archive.get(new).probs is not None and archive.count() == 4
    archive.engine.dispose()
    again = Archive.from_url(url)  # upgrading twice changes nothing
    assert again.count() == 4 and again.get(old[0].id).true_label == 2
    again.engine.dispose()


def test_a_read_only_older_archive_can_still_be_read(tmp_path):
    db = tmp_path / "old.db"
    first_version_archive(f"sqlite:///{db}", rows=2)
    archive = Archive.from_url(f"sqlite:///file:{db}?mode=ro&uri=true")
    assert [item.label for item in archive.list()] == [1, 0] and archive.count() == 2
    assert archive.get(1).true_label is None
    with pytest.raises(ArchiveError, match="read-only"):
        archive.save(make_record(0))
    archive.engine.dispose()


# -- SQLite specifics ------------------------------------------------------------------------------


def test_writes_take_the_lock_up_front_reads_do_not(tmp_path):
    archive = Archive.from_url(f"sqlite:///{tmp_path / 'archive.db'}")
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
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
    archive.engine.dispose()


def test_a_file_name_never_becomes_a_path(tmp_path):
    archive = Archive.from_url(f"sqlite:///{tmp_path / 'archive.db'}")
    archive.save(make_record(0, source="upload", filename="../../evil.png"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["archive.db", "archive.db-shm", "archive.db-wal"]
    assert not (tmp_path.parent / "evil.png").exists()
    archive.engine.dispose()
