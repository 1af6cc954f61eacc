"""What the Files API store recognises by content, and when an image counts as whole."""

from __future__ import annotations

import struct

import pytest

from evolink_async.sandbox.evolink._media import image_intact, sniff, storable
from tests.helpers.images import bmp_bytes, png_bytes


def _jpeg() -> bytes:
    def segment(marker: int, payload: bytes) -> bytes:
        return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload

    return (
        b"\xff\xd8" + segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
        + segment(0xC0, struct.pack(">BHHB", 8, 4, 4, 1) + b"\x01\x11\x00")
        + segment(0xDA, b"\x01\x01\x00\x00\x3f\x00") + b"\x12\x34" * 8 + b"\xff\xd9"
    )  # fmt: skip


def _gif() -> bytes:
    return (
        b"GIF89a" + struct.pack("<HHBBB", 1, 1, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
        + b"\x2c" + struct.pack("<HHHHB", 0, 0, 1, 1, 0) + b"\x02\x02\x44\x01\x00" + b"\x3b"
    )  # fmt: skip


def _webp() -> bytes:
    chunk = b"VP8L" + struct.pack("<I", 6) + b"\x2f\x00\x00\x00\x00\x00"
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


WHOLE = {"image/png": png_bytes(16, 16), "image/jpeg": _jpeg(), "image/gif": _gif(), "image/webp": _webp()}


@pytest.mark.parametrize("mime", sorted(WHOLE))
def test_whole_images_pass_and_truncated_ones_do_not(mime: str) -> None:
    data = WHOLE[mime]
    assert sniff(data) == mime
    assert image_intact(data)
    assert image_intact(data + b"\x00" * 100)  # trailing bytes after the end are ignored by decoders
    for cut in (len(data) - 1, len(data) // 2, 16):
        assert not image_intact(data[:cut]), cut


def test_a_png_with_a_bad_crc_is_corrupt() -> None:
    data = bytearray(png_bytes(16, 16))
    data[-20] ^= 0x01  # inside the IDAT chunk
    assert not image_intact(bytes(data))


@pytest.mark.parametrize(
    ("data", "mime", "stored"),
    [
        (bmp_bytes(4, 4), "image/bmp", False),
        (b"II*\x00" + bytes(32), "image/tiff", False),
        (b"ID3\x04" + bytes(32), "audio/mpeg", True),
        (b"RIFF" + bytes(4) + b"WAVEfmt " + bytes(16), "audio/wav", True),
        (b"\x00\x00\x00\x18ftypM4A " + bytes(16), "audio/mp4", True),
        (b"\x00\x00\x00\x18ftypisom" + bytes(16), "video/mp4", True),
        (b"\x1aE\xdf\xa3" + bytes(16), "video/webm", True),
    ],
)
def test_types_by_content(data: bytes, mime: str, stored: bool) -> None:
    assert sniff(data) == mime
    assert storable(mime) is stored
    assert not image_intact(data)  # none of these is an image a task can use


def test_unknown_content_is_nothing() -> None:
    assert sniff(b"%PDF-1.7") is None
    assert not image_intact(b"%PDF-1.7")
