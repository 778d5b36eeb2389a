"""WebSocket frames built once and written to many sockets (RFC 6455, section 5.2).

A server's frames are not masked, so one event's frame is the same bytes for every
client: the hub encodes it once and the connections write it as it is. Only
uncompressed text frames are built here; the push WebSocket does not negotiate
``permessage-deflate`` (compressing per connection would undo the sharing).
"""

from __future__ import annotations

_FIN_TEXT = 0x81


def text_frame(payload: bytes) -> bytes:
    """A final, unmasked text frame carrying ``payload`` (UTF-8 JSON)."""
    size = len(payload)
    if size < 126:
        return bytes([_FIN_TEXT, size]) + payload
    if size < 1 << 16:
        return bytes([_FIN_TEXT, 126]) + size.to_bytes(2, "big") + payload
    return bytes([_FIN_TEXT, 127]) + size.to_bytes(8, "big") + payload
