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
