"""Decoding untrusted image bytes: PNG and JPEG only, checked before Pillow sees them.

Files are recognised by their content (never by name or MIME type), at most ``MAX_BYTES`` bytes
and ``MAX_SIDE`` x ``MAX_SIDE`` pixels. The size is read from the file header before Pillow sees
the file, so a decompression bomb is refused before Pillow could even warn about it. A PNG's
chunk checksums are verified (Pillow skips those of the pixel data); a truncated or corrupt file
gets a "damaged" message. An animated PNG is read as its first frame (what a viewer that does not
animate shows). EXIF orientation is applied. Every failure is an ``InputError`` for a person.
"""

from __future__ import annotations

import contextlib
import io
import struct
import zlib

from PIL import Image, ImageOps

# One upload limit everywhere: Streamlit's ``server.maxUploadSize`` and ``max_upload_size`` count
# megabytes of 10^6 bytes, so the browser refuses more than 5,000,000 bytes; the server, the
# preprocessing and ``predict`` accept exactly that much.
MAX_BYTES = 5_000_000
MAX_SIDE = 4096  # pixels a side; checked from the header before decoding
DECODE_SIDE = 1024  # large JPEGs are decoded at a reduced scale, never below this

_SIGNATURES = {b"\x89PNG\r\n\x1a\n": "PNG", b"\xff\xd8\xff": "JPEG"}
_KNOWN_OTHERS = {
    b"GIF87a": "GIF", b"GIF89a": "GIF", b"BM": "BMP", b"II*\x00": "TIFF", b"MM\x00*": "TIFF",
    b"RIFF": "WebP/RIFF", b"%PDF": "PDF", b"\x00\x00\x01\x00": "ICO", b"\xff\x0a": "JPEG XL",
    b"\x00\x00\x00\x0cjP": "JPEG 2000", b"8BPS": "Photoshop", b"PK\x03\x04": "ZIP", b"\x1f\x8b": "gzip",
}
_ISO_BRANDS = {b"hei": "HEIC/HEIF photo", b"hev": "HEIC/HEIF photo", b"mif": "HEIC/HEIF photo", b"avi": "AVIF image"}
_TEXT_STARTS = (b"<", b"{", b"[", b"#", b"%!")


class InputError(ValueError):
    """The input cannot be turned into a digit; ``str(e)`` is a message for the user."""



def sniff(data: bytes) -> str:
    """'PNG' or 'JPEG' by magic bytes, else an ``InputError`` naming what it looks like."""
    for magic, kind in _SIGNATURES.items():
        if data.startswith(magic):
            return kind
    for magic, kind in _KNOWN_OTHERS.items():
        if data.startswith(magic):
            raise InputError(f"This is a {kind} file, not a PNG or JPEG image. Please upload a PNG or JPEG.")
    if data[4:8] == b"ftyp":  # ISO media: HEIC (a phone camera's default), AVIF, MP4...
        kind = _ISO_BRANDS.get(data[8:11], "video or ISO media file")
        raise InputError(f"This is a {kind}, not a PNG or JPEG image. Please convert it to JPEG or PNG first.")
    head = data[:512].lstrip(b"\xef\xbb\xbf \t\r\n")
    if b"<svg" in head.lower():
        raise InputError("This is an SVG drawing, not a PNG or JPEG image. Please export it as PNG.")
    if head.startswith(_TEXT_STARTS) or (head and _looks_like_text(head)):
        raise InputError("This is a text (or HTML) file, not a PNG or JPEG image. Please upload a PNG or JPEG.")
    raise InputError("This file is not a PNG or JPEG image (its content is not recognised). Please upload a PNG or JPEG.")


def _looks_like_text(head: bytes) -> bool:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(c.isprintable() or c in "\t\r\n" for c in text)


def _damaged(kind: str, detail: str = "") -> InputError:
    return InputError(f"The {kind} file is damaged or incomplete and cannot be read{detail}. Please upload it again.")


def _png_size(data: bytes) -> tuple[int, int]:
    """Width and height from IHDR, after checking every chunk's length and CRC.

    Pillow does not check the CRC of pixel data, so a flipped bit there would decode quietly
    into a different picture; a PNG's checksums let us say "damaged" instead.
    """
    # The IHDR chunk must come first: length 13, type, width, height (big-endian).
    if len(data) < 33 or data[8:16] != b"\x00\x00\x00\x0dIHDR":
        raise _damaged("PNG", " (no valid header)")
    i = 8
    while True:
        if i + 12 > len(data):
            raise _damaged("PNG", " (it ends too early)")
        (length,) = struct.unpack(">I", data[i : i + 4])
        end = i + 8 + length
        if end + 4 > len(data):
            raise _damaged("PNG", " (it ends too early)")
        if zlib.crc32(data[i + 4 : end]) != struct.unpack(">I", data[end : end + 4])[0]:
            raise _damaged("PNG", f" (checksum error in a {data[i + 4 : i + 8].decode('latin-1')!r} chunk)")
        if data[i + 4 : i + 8] == b"IEND":
            break
        i = end + 4
    return struct.unpack(">II", data[16:24])


def _jpeg_size(data: bytes) -> tuple[int, int]:
    """Width and height from the first start-of-frame marker, walking the segments."""
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            raise _damaged("JPEG", " (bad segment marker)")
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # markers without a length
            i += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image / start of scan before any frame header
            break
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if length < 2:
            raise _damaged("JPEG", " (bad segment length)")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if i + 9 > len(data):
                break
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return width, height
        i += 2 + length
    raise _damaged("JPEG", " (no frame header)")


def _check_pixels(width: int, height: int) -> None:
    if width < 1 or height < 1:
        raise InputError(f"The image has no pixels ({width}x{height}). Please upload a real image.")
    if width > MAX_SIDE or height > MAX_SIDE:
        raise InputError(f"The image is {width}x{height} pixels; the limit is {MAX_SIDE}x{MAX_SIDE}. Please upload a smaller image.")
    # Our limit is far below Pillow's bomb threshold; this keeps it so if that threshold is lowered.
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and width * height > limit:
        raise InputError(f"The image is too large to decode safely ({width}x{height} pixels; possible decompression bomb).")


def decode_image(data: bytes) -> Image.Image:
    """Decode PNG/JPEG bytes safely: content-checked, size-capped, fully loaded, EXIF-rotated.

    Animated PNGs are accepted and their first frame is used.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise InputError("Expected the bytes of an image file.")
    data = bytes(data)
    if not data:
        raise InputError("The file is empty (0 bytes). Please upload a PNG or JPEG image.")
    if len(data) > MAX_BYTES:
        raise InputError(f"The file is {len(data) / 1e6:.1f} MB; the limit is {MAX_BYTES / 1e6:g} MB ({MAX_BYTES:,} bytes).")
    kind = sniff(data)
    width, height = _png_size(data) if kind == "PNG" else _jpeg_size(data)
    _check_pixels(width, height)
    try:
        img = Image.open(io.BytesIO(data), formats=[kind])
        _check_pixels(*img.size)
        if kind == "JPEG":
            # Let libjpeg decode a big photo at 1/2, 1/4 or 1/8 scale directly: faster, and the
            # digit still keeps over DECODE_SIDE pixels on the longer side.
            scale = max(1, max(img.size) // DECODE_SIDE)
            img.draft("L", (max(1, img.size[0] // scale), max(1, img.size[1] // scale)))
        img.load()
    except InputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InputError("The image is too large to decode safely (possible decompression bomb).") from None
    except MemoryError:
        raise InputError("The image is too large to decode in the memory available.") from None
    except Exception as e:  # Pillow reports a damaged file with many exception types
        raise _damaged(kind, " (it ends too early)" if "truncated" in str(e) else "") from None
    with contextlib.suppress(Exception):  # unreadable EXIF: keep the pixels as stored
        img = ImageOps.exif_transpose(img)
    return img

