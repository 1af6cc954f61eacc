"""Result images: derived from a sandbox-uploaded input, or generated from the task.

Derivation is a visible, model-flavoured transform so a test can tell it happened: retexture
tints toward a colour taken from the prompt, remove-bg makes pixels close to the top-left
corner's colour transparent, every other model inverts the colours; result ``i > 0`` rotates
the colour channels ``i`` times so the images of one task differ. Inputs that are not a PNG the
codec reads (JPEG, WebP, a URL on another host, ...) give a generated gradient whose colours
come from the task id, prompt and index: deterministic, so the same URL always serves the same
bytes. Images are built on first download, off the event loop, and kept in a small LRU cache.
"""

from __future__ import annotations

from collections import OrderedDict

import anyio.to_thread

from .. import _png
from ._lifecycle import TaskRecord

__all__ = ["ResultImages", "render"]

GENERATED_SIZE = 64
_BACKGROUND_TOLERANCE = 32


def _generate(record: TaskRecord, index: int) -> _png.Image:
    size = GENERATED_SIZE
    start = _png.colour_of(record.id, record.prompt, index, "start")
    end = _png.colour_of(record.id, record.prompt, index, "end")
    steps = 2 * size - 1
    # A diagonal gradient: pixel (x, y) has colour number x + y, so each row is a slice.
    diagonal = [
        bytes((*(s + (e - s) * k // (steps - 1) for s, e in zip(start, end, strict=True)), 255)) for k in range(steps)
    ]
    rows = (b"".join(diagonal[y : y + size]) for y in range(size))
    return _png.Image(size, size, b"".join(rows))


def _channels(pixels: bytes) -> list[bytes]:
    return [pixels[c::4] for c in range(4)]


def _assemble(channels: list[bytes]) -> bytes:
    out = bytearray(len(channels[0]) * 4)
    for c, data in enumerate(channels):
        out[c::4] = data
    return bytes(out)


def _tint(channels: list[bytes], colour: tuple[int, int, int]) -> list[bytes]:
    tables = [bytes((v + t) // 2 for v in range(256)) for t in colour]
    return [channels[c].translate(tables[c]) for c in range(3)] + [channels[3]]


def _invert(channels: list[bytes]) -> list[bytes]:
    table = bytes(255 - v for v in range(256))
    return [channels[c].translate(table) for c in range(3)] + [channels[3]]


def _remove_background(channels: list[bytes]) -> list[bytes]:
    count = len(channels[0])
    background = [channels[c][0] for c in range(3)]
    # Big-integer AND over per-channel 0/1 masks tests all pixels at once, in C.
    close = -1
    for c in range(3):
        table = bytes(1 if abs(v - background[c]) <= _BACKGROUND_TOLERANCE else 0 for v in range(256))
        close &= int.from_bytes(channels[c].translate(table), "big")
    keep = close.to_bytes(count, "big").translate(bytes([255, 0] + [0] * 254))
    alpha = int.from_bytes(channels[3], "big") & int.from_bytes(keep, "big")
    return [*channels[:3], alpha.to_bytes(count, "big")]


def _derive(record: TaskRecord, image: _png.Image, index: int) -> _png.Image:
    channels = _channels(image.pixels)
    if record.model == "mj-v7-retexture":
        channels = _tint(channels, _png.colour_of(record.prompt, "texture"))
    elif record.model == "mj-v7-remove-bg":
        channels = _remove_background(channels)
    else:
        channels = _invert(channels)
    shift = index % 3
    channels = channels[shift:3] + channels[:shift] + [channels[3]]
    return _png.Image(image.width, image.height, _assemble(channels))


def render(record: TaskRecord, index: int) -> bytes:
    """The PNG bytes of result ``index`` of ``record`` (pure, deterministic, CPU-bound)."""
    source = _png.decode(record.input_image) if record.input_image is not None else None
    image = _derive(record, source, index) if source is not None else _generate(record, index)
    return _png.encode(image)


class ResultImages:
    """Renders result PNGs on demand, caching the most recent ones."""

    def __init__(self, *, cache_size: int = 128) -> None:
        self._cache: OrderedDict[tuple[str, int], bytes] = OrderedDict()
        self._cache_size = cache_size

    async def png(self, record: TaskRecord, index: int) -> bytes:
        key = (record.id, index)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        data = await anyio.to_thread.run_sync(render, record, index)
        self._cache[key] = data
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return data
