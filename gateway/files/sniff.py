"""What an upload really is (from its first bytes) and how to name it safely.

The client's Content-Type and file name are never trusted: the type comes
from magic numbers (or a text heuristic), the name is reduced to a safe
display name, and downloads are always ``attachment`` with ``nosniff``.
"""

from __future__ import annotations

import os
import re
import unicodedata
from urllib.parse import quote

SNIFF_BYTES = 8192
OCTET_STREAM = "application/octet-stream"
TEXT = "text/plain; charset=utf-8"
JSON = "application/json"
MAX_NAME = 200
FALLBACK_NAME = "file"

_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"%PDF-", "application/pdf"),
    (b"PK\x03\x04", "application/zip"),
    (b"PK\x05\x06", "application/zip"),  # empty archive
)
# Control characters other than tab, newline, carriage return and form feed mean binary.
_BINARY_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0e-\x1f\x7f]")
_UNSAFE_IN_NAME = re.compile(r'[\x00-\x1f\x7f"\\/:*?<>|;]')


def sniff(head: bytes) -> str:
    """The content type of a file whose first bytes (up to ``SNIFF_BYTES``) are ``head``."""
    for magic, content_type in _MAGIC:
        if head.startswith(magic):
            return content_type
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if not head or _BINARY_CONTROL.search(head):
        return OCTET_STREAM if head else TEXT
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut by the sniff window is still text.
        if exc.start < len(head) - 3:
            return OCTET_STREAM
        text = head[: exc.start].decode("utf-8")
    stripped = text.lstrip("\ufeff \t\r\n")
    if stripped[:1] in ("{", "["):
        return JSON
    return TEXT


def safe_name(raw: str | None) -> str:
    """A display name: no directories, no control or shell-hostile characters, bounded."""
    name = unicodedata.normalize("NFC", raw or "")
    # Browsers send "C:\\fakepath\\x.png"; archives send "../../x": keep the last segment.
    name = name.replace("\\", "/")
    name = os.path.basename(name)
    name = _UNSAFE_IN_NAME.sub("_", name)
    name = "".join(ch for ch in name if unicodedata.category(ch) not in ("Cc", "Cf", "Zl", "Zp"))
    name = name.strip(" .")
    if len(name) > MAX_NAME:
        _, dot, ext = name.rpartition(".")
        keep = ext if dot and len(ext) <= 16 else ""
        name = name[: MAX_NAME - len(keep) - 1].rstrip(" .") + ("." + keep if keep else "")
    return name or FALLBACK_NAME


def content_disposition(name: str) -> str:
    """RFC 6266 ``attachment`` with an ASCII fallback and the UTF-8 ``filename*``."""
    fallback = "".join(ch if 32 <= ord(ch) < 127 and ch not in '"\\%' else "_" for ch in name)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"
