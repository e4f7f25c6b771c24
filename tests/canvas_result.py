"""A stand-in for the drawing canvas's result (its module needs a running app): it decodes the
data URL exactly as ``streamlit_drawable_canvas.CanvasResult.image_bytes`` does, so a forged
value fails the way the real one would."""

from __future__ import annotations

import base64


class CanvasResult:
    def __init__(self, url: str) -> None:
        self.url = url

    @property
    def image_bytes(self) -> bytes:
        _, encoded = self.url.split(";base64,", 1)
        return base64.b64decode(encoded)
