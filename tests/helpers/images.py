"""Small valid images for tests, made with the sandbox's stdlib PNG encoder."""

from __future__ import annotations

from pathlib import Path

from evolink_async.sandbox._png import Image, encode


def png_bytes(width: int = 400, height: int = 400, *, shade: int = 90) -> bytes:
    row = bytes((shade, (shade * 3) % 256, 200, 255)) * width
    return encode(Image(width, height, row * height))


def write_png(path: Path, width: int = 400, height: int = 400, *, shade: int = 90) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(width, height, shade=shade))
    return path


def bmp_bytes(width: int = 400, height: int = 400, *, shade: int = 90) -> bytes:
    """A 24-bit uncompressed BMP (the Files API does not store BMP; qwen-image-edit accepts it by URL)."""
    import struct

    row = bytes((200, (shade * 3) % 256, shade)) * width
    row += b"\x00" * (-len(row) % 4)
    pixels = row * height
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, len(pixels), 2835, 2835, 0, 0)
    header = struct.pack("<2sIHHI", b"BM", 14 + len(info) + len(pixels), 0, 0, 14 + len(info))
    return header + info + pixels
