"""The pure-Python PNG codec behind result images."""

from __future__ import annotations

import struct
import zlib

import pytest

from evolink_async.sandbox._png import Image, decode, encode, png_size


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png(width: int, height: int, color_type: int, rows: list[bytes], *, extra: bytes = b"", depth: int = 8) -> bytes:
    header = struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + extra
        + _chunk(b"IDAT", zlib.compress(b"".join(rows)))
        + _chunk(b"IEND", b"")
    )


def test_round_trip_rgba_and_rgb() -> None:
    pixels = bytes(range(256)) * 3  # 12 x 16 RGBA
    image = Image(12, 16, pixels)
    assert decode(encode(image)) == image
    rgb = decode(encode(image, alpha=False))
    assert rgb is not None
    assert rgb.pixels[3::4] == b"\xff" * (12 * 16)
    assert rgb.pixels[0::4] == pixels[0::4]
    assert png_size(encode(image)) == (12, 16)


def test_every_filter_type_is_undone() -> None:
    # Two RGB pixels per row; each row is filtered by a different type against the row above.
    raw_rows = [bytes([10, 20, 30, 40, 50, 60]), bytes([15, 25, 35, 45, 55, 65])] * 3
    filtered = []
    previous = bytes(6)
    for kind, row in enumerate(raw_rows[:5]):
        out = bytearray(6)
        for i, value in enumerate(row):
            left = row[i - 3] if i >= 3 else 0
            up = previous[i]
            up_left = previous[i - 3] if i >= 3 else 0
            predictor = [0, left, up, (left + up) // 2, _paeth(left, up, up_left)][kind]
            out[i] = (value - predictor) & 0xFF
        filtered.append(bytes([kind]) + bytes(out))
        previous = row
    image = decode(_png(2, 5, 2, filtered))
    assert image is not None
    assert image.pixels[0::4] == bytes(r[i] for r in raw_rows[:5] for i in (0, 3))


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)


def test_grey_grey_alpha_and_palette() -> None:
    grey = decode(_png(2, 1, 0, [b"\x00\x10\x80"]))
    assert grey is not None
    assert grey.pixels == bytes([16, 16, 16, 255, 128, 128, 128, 255])
    grey_alpha = decode(_png(1, 1, 4, [b"\x00\x40\x20"]))
    assert grey_alpha is not None
    assert grey_alpha.pixels == bytes([64, 64, 64, 32])
    palette = _chunk(b"PLTE", bytes([255, 0, 0, 0, 0, 255])) + _chunk(b"tRNS", bytes([0]))
    indexed = decode(_png(2, 1, 3, [b"\x00\x00\x01"], extra=palette))
    assert indexed is not None
    assert indexed.pixels == bytes([255, 0, 0, 0, 0, 0, 255, 255])


@pytest.mark.parametrize(
    "data",
    [
        b"\xff\xd8\xff\xe0 jpeg",
        b"\x89PNG\r\n\x1a\n",
        _png(1, 1, 2, [b"\x00" + b"\x00" * 6], depth=16),
        _png(1, 1, 2, [b"\x09\x00\x00\x00"]),  # unknown filter type
        _png(100_000, 100_000, 2, [b""]),  # too large to decode here
        _png(4, 4, 2, [b"\x00\x00"]),  # truncated data
    ],
)
def test_what_it_cannot_read_is_none(data: bytes) -> None:
    assert decode(data) is None
