"""Content sniffing, safe names, Content-Disposition and Range selection."""

from __future__ import annotations

import pytest

from gateway.files.ranges import ByteRange, not_modified, select
from gateway.files.sniff import JSON, OCTET_STREAM, TEXT, content_disposition, safe_name, sniff
from streams.errors import RangeNotSatisfiable

ETAG = '"abc"'


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"\x89PNG\r\n\x1a\n....", "image/png"),
        (b"\xff\xd8\xff\xe0JFIF", "image/jpeg"),
        (b"GIF89a..", "image/gif"),
        (b"RIFF\x10\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"%PDF-1.7\n", "application/pdf"),
        (b"PK\x03\x04\x14\x00", "application/zip"),
        (b'  {"a": 1}', JSON),
        (b"\xef\xbb\xbf[1, 2]", JSON),  # a leading BOM is skipped
        (b"hello\nworld\t!", TEXT),
        ("h\u00e9llo".encode() + "\u20ac".encode()[:2], TEXT),  # cut multi-byte char at the end
        (b"\x00\x01binary", OCTET_STREAM),
        (b"\xff\xfe\xfd garbage that is not utf-8 at all", OCTET_STREAM),
        (b"", TEXT),
    ],
)
def test_sniff(head: bytes, expected: str) -> None:
    assert sniff(head) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("../../etc/passwd", "passwd"),
        ("C:\\fakepath\\photo.png", "photo.png"),
        ("re\x00port\x1f.txt", "re_port_.txt"),
        ("evil\u202egnp.exe", "evilgnp.exe"),
        ('a"b;c<d>.txt', "a_b_c_d_.txt"),
        ("   ...  ", "file"),
        (None, "file"),
        ("x" * 300 + ".tar.gz", "x" * 197 + ".gz"),  # 200 characters, extension kept
    ],
)
def test_safe_name(raw: str | None, expected: str) -> None:
    assert safe_name(raw) == expected


def test_content_disposition_has_ascii_fallback_and_utf8_name() -> None:
    assert content_disposition('r\u00e9sum\u00e9 "1".pdf') == (
        "attachment; filename=\"r_sum_ _1_.pdf\"; "
        "filename*=UTF-8''r%C3%A9sum%C3%A9%20%221%22.pdf"
    )


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, ByteRange(0, 100, 100)),
        ("bytes=0-9", ByteRange(0, 10, 100)),
        ("bytes=90-", ByteRange(90, 100, 100)),
        ("bytes=-10", ByteRange(90, 100, 100)),
        ("bytes=-500", ByteRange(0, 100, 100)),
        ("bytes=95-500", ByteRange(95, 100, 100)),
        ("bytes=0-1,4-5", ByteRange(0, 100, 100)),  # several ranges: whole file
        ("items=0-1", ByteRange(0, 100, 100)),
        ("bytes=9-3", ByteRange(0, 100, 100)),
        ("bytes=abc", ByteRange(0, 100, 100)),
    ],
)
def test_select(header: str | None, expected: ByteRange) -> None:
    assert select(header, None, etag=ETAG, size=100) == expected


@pytest.mark.parametrize("header", ["bytes=100-", "bytes=-0", "bytes=500-600"])
def test_unsatisfiable(header: str) -> None:
    with pytest.raises(RangeNotSatisfiable) as caught:
        select(header, None, etag=ETAG, size=100)
    assert caught.value.size == 100


def test_if_range_and_if_none_match() -> None:
    assert select("bytes=0-9", '"other"', etag=ETAG, size=100).partial is False
    assert select("bytes=0-9", ETAG, etag=ETAG, size=100).partial is True
    assert ByteRange(0, 10, 100).content_range() == "bytes 0-9/100"
    assert not_modified('"x", W/"abc"', ETAG)
    assert not_modified("*", ETAG)
    assert not not_modified('"x"', ETAG)
    assert not not_modified(None, ETAG)
