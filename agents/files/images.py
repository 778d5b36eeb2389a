"""Image inspection and thumbnails with Pillow, run in a thread and bounded.

Corrupt or hostile input never raises out of ``render``: it becomes an
``ImageOutcome`` with an error, which the files agent records on the metadata.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import warnings

from PIL import Image

IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
THUMBNAIL_MAX = 256
# Decoded pixels we accept (~160 MB as RGBA); Pillow refuses twice this on open.
MAX_PIXELS = 40_000_000
Image.MAX_IMAGE_PIXELS = MAX_PIXELS


@dataclasses.dataclass(frozen=True, slots=True)
class Rendition:
    """Encoded bytes of a derived image."""

    data: bytes
    width: int
    height: int
    content_type: str


@dataclasses.dataclass(frozen=True, slots=True)
class ImageOutcome:
    """The original's dimensions and its thumbnail, or why there are none."""

    width: int | None = None
    height: int | None = None
    thumbnail: Rendition | None = None
    error: str | None = None


async def render(data: bytes) -> ImageOutcome:
    """Inspect ``data`` and make its thumbnail, off the event loop."""
    return await asyncio.to_thread(_render, data)


def _render(data: bytes) -> ImageOutcome:
    # Pillow signals bombs between MAX and 2*MAX with a warning; make it an error. Only the
    # files agent renders, one image at a time, so swapping the filters here is safe.
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            return _thumbnail(data)
        # Pillow raises a zoo of types for bad input (OSError, SyntaxError, ValueError,
        # struct.error, EOFError, DecompressionBombError, ...): all mean "not a usable image".
        except Exception as exc:
            return ImageOutcome(error=f"{type(exc).__name__}: {exc}"[:500])


def _thumbnail(data: bytes) -> ImageOutcome:
    with Image.open(io.BytesIO(data)) as image:
        width, height = image.size
        if width * height > MAX_PIXELS:
            raise ValueError(f"{width}x{height} is more than {MAX_PIXELS} pixels")
        source_format = image.format
        image.thumbnail((THUMBNAIL_MAX, THUMBNAIL_MAX))
        out = io.BytesIO()
        if source_format == "JPEG":
            image.convert("RGB").save(out, format="JPEG", quality=85)
            content_type = "image/jpeg"
        else:
            # PNG keeps transparency of PNG, GIF (first frame) and WebP sources.
            image.save(out, format="PNG", optimize=True)
            content_type = "image/png"
        thumb = Rendition(out.getvalue(), image.width, image.height, content_type)
    return ImageOutcome(width=width, height=height, thumbnail=thumb)
