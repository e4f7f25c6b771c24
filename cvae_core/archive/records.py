"""What the archive stores, typed: the record the app hands in, its validated form, a stored item.

A :class:`Record` is what the app knows after a recognition (arrays and a Pillow image);
:func:`prepare` validates it and re-encodes its images as PNG into an :class:`Entry`, the row to
store; an :class:`ArchiveItem` is an entry read back, with its id and time. The fields of
:class:`Answer` (shared by a record and an entry) and of :class:`Entry` carry their SQL column
types, and ``cvae_core.archive.schema`` builds the table from them: the schema is written once.

What is stored is re-encoded by us, never the user's bytes: the 28x28 input the model saw, its
reconstruction and the original (size-capped), all as PNG. An upload's file name is kept only as
text (control characters removed, truncated) for display; no user-supplied name becomes a path.
"""

from __future__ import annotations

import hashlib
import io
import math
import numbers
import unicodedata
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

import numpy as np
from PIL import Image
from sqlalchemy import JSON, Boolean, Float, Integer, LargeBinary, String
from sqlalchemy.types import TypeEngine

from cvae_core.config import IMAGE_SIZE, NUM_CLASSES

SIDE = IMAGE_SIZE  # the MNIST field the model sees
ORIGINAL_MAX_SIDE = 512  # originals are downscaled to fit this box before storing
ORIGINAL_MAX_PIXELS = 4096 * 4096  # larger originals are refused, not resized
FILENAME_MAX = 120
MODEL_MAX = 64
SOURCES = ("canvas", "upload", "number")  # "number": one digit of a number (the Read a number page)
NUMBER_MAX = 64  # characters of the number a digit came from
SIGMA_MAX = 1.0
PROBS_TOLERANCE = 1e-3  # ten probabilities must sum to 1 within this (float32 softmax rounding)


class ArchiveError(RuntimeError):
    """The archive could not store or read an item; ``str(e)`` is a message for the user."""


class RecordError(ArchiveError, ValueError):
    """A record is not valid and was not stored; retrying it cannot help."""


def _column(sql_type: TypeEngine | type[TypeEngine], *, optional: bool = False, default: Any = MISSING) -> Any:
    """A dataclass field that is also a column of ``archive_items`` (nullable when ``optional``)."""
    if optional and default is MISSING:
        default = None
    return field(default=default, metadata={"sql": sql_type, "nullable": optional})


@dataclass(frozen=True, kw_only=True)
class Answer:
    """What a model answered for one input, and about what: the fields a record and an entry share.

    ``probs`` are the ten class probabilities, ``log_likelihoods`` the ten per-label log p(x | y)
    (nats), ``not_digit`` the probability that the input is no digit (None for models without that
    score), ``partner_*`` the reading of the other architecture's model shown beside it, and
    ``true_label`` what the user says they wrote (None: not told), ``finished`` whether a drawing was
    finished when saved (False: it went on after this was saved, and the labelled data set leaves it
    out; None: not known, as for items saved before this was kept), ``number`` the number a digit
    of source "number" came from (its digits, ``?`` where not known). Columns added after the first
    version are optional, so that older archives gain them as NULL.
    """

    model: str = _column(String(MODEL_MAX))
    source: str = _column(String(16))
    label: int = _column(Integer)
    confidence: float = _column(Float)
    sigma: float = _column(Float)
    filename: str | None = _column(String(FILENAME_MAX), optional=True)
    true_label: int | None = _column(Integer, optional=True)
    probs: tuple[float, ...] | None = _column(JSON, optional=True)
    log_likelihoods: tuple[float, ...] | None = _column(JSON, optional=True)
    not_digit: float | None = _column(Float, optional=True)
    partner_model: str | None = _column(String(MODEL_MAX), optional=True)
    partner_label: int | None = _column(Integer, optional=True)
    partner_confidence: float | None = _column(Float, optional=True)
    finished: bool | None = _column(Boolean, optional=True)
    number: str | None = _column(String(NUMBER_MAX), optional=True)


@dataclass(frozen=True, kw_only=True)
class Record(Answer):
    """One recognition as the app has it: ``input_image`` and ``recon_image`` are (28, 28) arrays in
    [0, 1] (leading axes of size 1 allowed), ``original`` the uploaded or drawn image, if any."""

    input_image: Any
    recon_image: Any
    original: Image.Image | None = None


@dataclass(frozen=True, kw_only=True)
class Entry(Answer):
    """A validated record, ready to store: images re-encoded as PNG. ``save_token`` is the identity
    of its content (:func:`save_token`), unique in the archive: saving the same input again (a retry
    after an outage or a commit in doubt, a second click, a new session after a replica died) finds
    the item instead of storing it twice."""

    fingerprint: str = _column(String(64))
    input_png: bytes = _column(LargeBinary)
    recon_png: bytes = _column(LargeBinary)
    original_png: bytes | None = _column(LargeBinary, optional=True)
    save_token: str | None = _column(String(32), optional=True, default=None)

    def row(self) -> dict[str, Any]:
        """The column values to insert (JSON lists for the sequences)."""
        return {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v for f in stored_fields()}


@dataclass(frozen=True, kw_only=True)
class ArchiveItem(Entry):
    """One stored item. ``original_png`` is None when there is none or it was not loaded."""

    id: int
    created_at: datetime  # UTC

    @property
    def verdict(self) -> str:
        """"right" or "wrong" against the true label, or "unlabelled"."""
        if self.true_label is None:
            return "unlabelled"
        return "right" if self.true_label == self.label else "wrong"

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> ArchiveItem:
        """An item from a database row; columns the row lacks (an older archive read-only) are None."""
        data = dict(row)  # one copy: a row mapping's lookups are slow, and exports read thousands
        values = {name: _plain(data.get(name)) for name in _ITEM_FIELDS}
        if values["created_at"].tzinfo is None:  # SQLite keeps no zone; we always write UTC
            values["created_at"] = values["created_at"].replace(tzinfo=UTC)
        return cls(**values)


_ITEM_FIELDS = tuple(f.name for f in fields(ArchiveItem))


def _plain(value: Any) -> Any:
    """A column value as the dataclass holds it: bytes for binary, tuples of floats for JSON lists."""
    if isinstance(value, memoryview | bytearray):
        return bytes(value)
    if isinstance(value, list):
        return tuple(float(v) for v in value)
    return value


def stored_fields() -> list[Any]:
    """The dataclass fields that are columns, in table order."""
    return [f for f in fields(Entry) if "sql" in f.metadata]


# -- validation ------------------------------------------------------------------------------------


def _refuse(what: str) -> RecordError:
    return RecordError(f"The item cannot be saved: {what}.")


def _number(value: Any, name: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise _refuse(f"its {name} is not a number")
    number = float(value)
    if not math.isfinite(number) or not low <= number <= high:
        raise _refuse(f"its {name} ({number}) is not between {low:g} and {high:g}")
    return number


def _digit(value: Any, name: str, *, optional: bool = False) -> int | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 0 <= int(value) < NUM_CLASSES:
        raise _refuse(f"its {name} must be a whole number from 0 to {NUM_CLASSES - 1}")
    return int(value)


def model_name(value: Any, name: str = "model name") -> str:
    """A model name to store: 1 to ``MODEL_MAX`` characters of printable, encodable text."""
    if not isinstance(value, str) or not value.strip() or len(value) > MODEL_MAX:
        raise _refuse(f"its {name} must be 1 to {MODEL_MAX} characters")
    if any(unicodedata.category(ch)[0] == "C" for ch in value):  # controls, lone surrogates, unassigned
        raise _refuse(f"its {name} contains characters that are not printable text")
    return value


def _vector(value: Any, name: str, *, probabilities: bool, total: float = 1.0) -> tuple[float, ...] | None:
    """Ten probabilities summing to ``total`` (1, or 1 - p(not a digit) for a model with that
    condition), or the log-likelihoods of the ten digits (and of "not a digit", if the model has it)."""
    if value is None:
        return None
    try:
        arr = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise _refuse(f"its {name} are not numbers") from None
    lengths = (NUM_CLASSES,) if probabilities else (NUM_CLASSES, NUM_CLASSES + 1)
    if len(arr) not in lengths or not np.isfinite(arr).all():
        raise _refuse(f"its {name} must be {' or '.join(map(str, lengths))} finite numbers")
    if probabilities and (arr.min() < 0 or arr.max() > 1 or abs(arr.sum() - total) > PROBS_TOLERANCE):
        raise _refuse(f"its {name} must be between 0 and 1 and sum to 1 (with the not-a-digit score, if any)")
    return tuple(float(v) for v in arr)


def _number_text(value: Any) -> str | None:
    """The number a digit came from: 1 to ``NUMBER_MAX`` digits or ``?``, or None."""
    if value is None:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= NUMBER_MAX or any(ch not in "0123456789?" for ch in value):
        raise _refuse(f"its number must be 1 to {NUMBER_MAX} digits (or ?)")
    return value


def true_label(value: Any) -> int | None:
    """A true label to store: a digit, or None for "not told"."""
    return _digit(value, "true label", optional=True)


def _pixels(value: Any, name: str) -> np.ndarray:
    """A 28x28 array in [0, 1] (leading axes of size 1 allowed) -> uint8 (28, 28)."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise _refuse(f"its {name} is not an image array") from None
    arr = arr.reshape(arr.shape[-2:]) if arr.ndim >= 2 and math.prod(arr.shape[:-2]) == 1 else arr
    if arr.shape != (SIDE, SIDE):
        raise _refuse(f"its {name} is {arr.shape}, not {SIDE}x{SIDE}")
    if not np.isfinite(arr).all():
        raise _refuse(f"its {name} has non-finite values")
    if arr.min() < -1e-6 or arr.max() > 1 + 1e-6:
        raise _refuse(f"its {name} has values outside [0, 1]")
    return np.rint(np.clip(arr, 0.0, 1.0) * 255).astype(np.uint8)


def clean_filename(name: Any) -> str | None:
    """A display-only file name: text, control characters removed, at most ``FILENAME_MAX`` chars."""
    if name is None:
        return None
    text = "".join(ch for ch in str(name) if unicodedata.category(ch)[0] != "C").strip()
    if len(text) > FILENAME_MAX:
        text = text[: FILENAME_MAX - 1] + "…"
    return text or None


def _fingerprint(pixels: np.ndarray, model: str, sigma: float) -> str:
    digest = hashlib.sha256()
    digest.update(f"{model}\0{sigma:.6g}\0".encode())
    digest.update(np.ascontiguousarray(pixels, dtype=np.uint8).tobytes())
    return digest.hexdigest()


def as_record(record: Record | Mapping[str, Any]) -> Record:
    """A ``Record``, also from a mapping with the same field names (unknown or missing names refused)."""
    if isinstance(record, Record):
        return record
    if not isinstance(record, Mapping):
        raise _refuse("it is not a record")
    known = {f.name: f for f in fields(Record)}
    for name, f in known.items():
        if name not in record and f.default is MISSING:
            raise _refuse(f"it has no '{name}'")
    unknown = sorted(str(name) for name in record if name not in known)
    if unknown:
        raise _refuse(f"it has unknown fields ({', '.join(unknown)})")
    return Record(**record)


def fingerprint(record: Record | Mapping[str, Any]) -> str:
    """The identity of a record for de-duplication: its input pixels, model and sigma."""
    if isinstance(record, Mapping):  # the crash tests rebuild one from a stored item's three fields
        model, sigma, image = record.get("model"), record.get("sigma"), record.get("input_image")
    else:
        model, sigma, image = record.model, record.sigma, record.input_image
    return _fingerprint(_pixels(image, "input image"), model_name(model),
                        _number(sigma, "noise sigma", 0.0, SIGMA_MAX))


def save_token(key: str) -> str:
    """The unique save token of the content whose fingerprint is ``key`` (the column holds 32 characters)."""
    return key[:32]


def png_bytes(pixels: np.ndarray) -> bytes:
    """A uint8 (H, W) array -> greyscale PNG bytes."""
    out = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(out, format="PNG", optimize=False)
    return out.getvalue()


def png_to_array(data: bytes) -> np.ndarray:
    """Stored PNG bytes -> float32 (H, W) in [0, 1] (greyscale)."""
    with Image.open(io.BytesIO(data), formats=["PNG"]) as img:
        return np.asarray(img.convert("L"), dtype=np.float32) / 255.0


def original_png(img: Any) -> bytes:
    """Any Pillow image -> PNG bytes that fit ``ORIGINAL_MAX_SIDE``; the caller's image is untouched."""
    if not isinstance(img, Image.Image):
        raise _refuse("its original is not an image")
    w, h = img.size
    if w < 1 or h < 1 or w * h > ORIGINAL_MAX_PIXELS:
        raise _refuse(f"its original image is {w}x{h} pixels")
    if img.mode.startswith("I") or img.mode == "F":
        arr = np.nan_to_num(np.asarray(img, dtype=np.float64))
        top = 65535.0 if img.mode.startswith("I") else max(float(arr.max()), 1.0)
        img = Image.fromarray(np.rint(np.clip(arr / top, 0, 1) * 255).astype(np.uint8), mode="L")
    elif img.mode not in ("L", "LA", "RGB", "RGBA"):
        keep_alpha = img.mode == "PA" or (img.mode == "P" and "transparency" in img.info)
        img = img.convert("L" if img.mode == "1" else "RGBA" if keep_alpha else "RGB")
    img = _grey_if_lossless(img)
    scale = min(1.0, ORIGINAL_MAX_SIDE / max(w, h))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    out = io.BytesIO()
    try:
        img = img.resize(size, Image.Resampling.LANCZOS) if size != (w, h) else img
        img.save(out, format="PNG")
    except (OSError, ValueError) as e:
        raise _refuse(f"its original image cannot be re-encoded ({e})") from None
    return out.getvalue()


def _grey_if_lossless(img: Image.Image) -> Image.Image:
    """An RGB(A) picture that is grey and opaque (every canvas drawing: white ink on black) as "L":
    the same pixels in a third of the PNG encoder's time (4.5 -> 1.6 ms a drawing) and a smaller file."""
    if img.mode not in ("RGB", "RGBA"):
        return img
    px = np.asarray(img)
    opaque = img.mode == "RGB" or bool((px[..., 3] == 255).all())
    if opaque and bool((px[..., 0] == px[..., 1]).all()) and bool((px[..., 1] == px[..., 2]).all()):
        return Image.fromarray(np.ascontiguousarray(px[..., 0]), mode="L")
    return img


def prepare(record: Record | Mapping[str, Any] | Entry) -> Entry:
    """Validate a record from the app and re-encode its images; raises ``RecordError``."""
    if isinstance(record, Entry):
        return record
    record = as_record(record)
    model = model_name(record.model)
    if record.source not in SOURCES:
        raise _refuse(f"its source must be one of {', '.join(SOURCES)}")
    sigma = _number(record.sigma, "noise sigma", 0.0, SIGMA_MAX)
    pixels = _pixels(record.input_image, "input image")
    not_digit = None if record.not_digit is None else _number(record.not_digit, "not-a-digit score", 0.0, 1.0)
    partner = None if record.partner_model is None else model_name(record.partner_model, "partner model name")
    if record.finished is not None and not isinstance(record.finished, bool | np.bool_):
        raise _refuse("its finished mark must be true, false or none")
    key = _fingerprint(pixels, model, sigma)
    return Entry(
        model=model,
        source=record.source,
        label=_digit(record.label, "recognised digit"),
        confidence=_number(record.confidence, "confidence", 0.0, 1.0),
        sigma=sigma,
        filename=clean_filename(record.filename),
        true_label=true_label(record.true_label),
        probs=_vector(record.probs, "probabilities", probabilities=True, total=1.0 - (not_digit or 0.0)),
        log_likelihoods=_vector(record.log_likelihoods, "log-likelihoods", probabilities=False),
        not_digit=not_digit,
        partner_model=partner,
        partner_label=None if partner is None else _digit(record.partner_label, "partner's digit", optional=True),
        partner_confidence=(None if partner is None or record.partner_confidence is None
                            else _number(record.partner_confidence, "partner's confidence", 0.0, 1.0)),
        finished=None if record.finished is None else bool(record.finished),
        number=_number_text(record.number),
        fingerprint=key,
        input_png=png_bytes(pixels),
        recon_png=png_bytes(_pixels(record.recon_image, "reconstruction")),
        original_png=None if record.original is None else original_png(record.original),
        save_token=save_token(key),
    )

