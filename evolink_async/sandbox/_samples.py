"""Sample images to try the SDK on (``evolink demo`` makes its inputs with these)."""

from __future__ import annotations

import colorsys
from pathlib import Path

from ._png import Image, encode

__all__ = ["SAMPLE_SIDE", "make_samples"]

#: Inside qwen-image-edit's 384-3072 px, small enough to make in a blink.
SAMPLE_SIDE = 448


def _sample(index: int, count: int) -> bytes:
    """A diagonal two-colour gradient, a different hue per image."""
    side = SAMPLE_SIDE
    r1, g1, b1 = (int(c * 255) for c in colorsys.hsv_to_rgb(index / count, 0.7, 0.95))
    r2, g2, b2 = (int(c * 255) for c in colorsys.hsv_to_rgb((index / count + 0.4) % 1, 0.6, 0.5))
    rows = []
    for y in range(side):
        pixels = []
        for x in range(0, side, 8):  # 8-pixel runs: fast in pure Python, still smooth
            t = (x + y) / (2 * side)
            pixel = bytes((int(r1 + (r2 - r1) * t), int(g1 + (g2 - g1) * t), int(b1 + (b2 - b1) * t), 255))
            pixels.append(pixel * 8)
        rows.append(b"".join(pixels))
    return encode(Image(side, side, b"".join(rows)), alpha=False)


def make_samples(folder: Path, count: int) -> list[Path]:
    """Write ``count`` sample PNGs into ``folder`` (kept if already there) and return their paths.

    >>> make_samples(Path("inputs"), 4)
    [PosixPath('inputs/sample-01.png'), ...]
    """
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        path = folder / f"sample-{index + 1:02d}.png"
        if not path.exists():
            path.write_bytes(_sample(index, count))
        paths.append(path)
    return paths
