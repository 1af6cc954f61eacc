"""MJ result PNGs: a 2x2 grid of tiles for grid jobs, one tile for an upscale.

Each tile is a deterministic gradient from (task id, prompt, tile number). An upscale ``U<n>``
shows exactly tile ``n`` of its parent's grid, so a test can check the chain end to end; a
preview is the final image darkened (what a job in progress shows).
"""

from __future__ import annotations

from collections import OrderedDict

import anyio.to_thread

from .. import _png
from ._buttons import GRID_ACTIONS
from ._tasks import MjTask

__all__ = ["TILE", "MjImages", "render", "tile"]

TILE = 64


def tile(task_id: str, prompt: str, index: int) -> _png.Image:
    start = _png.colour_of(task_id, prompt, index, "mj-start")
    end = _png.colour_of(task_id, prompt, index, "mj-end")
    steps = 2 * TILE - 1
    diagonal = [
        bytes((*(s + (e - s) * k // (steps - 1) for s, e in zip(start, end, strict=True)), 255)) for k in range(steps)
    ]
    return _png.Image(TILE, TILE, b"".join(b"".join(diagonal[y : y + TILE]) for y in range(TILE)))


def _grid(tiles: list[_png.Image]) -> _png.Image:
    stride = TILE * 4
    rows = []
    for top in (0, 2):
        left, right = tiles[top].pixels, tiles[top + 1].pixels
        rows += [left[y * stride : (y + 1) * stride] + right[y * stride : (y + 1) * stride] for y in range(TILE)]
    return _png.Image(2 * TILE, 2 * TILE, b"".join(rows))


def _darken(image: _png.Image) -> _png.Image:
    table = bytes(v // 2 for v in range(256))
    pixels = bytearray(image.pixels.translate(table))
    pixels[3::4] = image.pixels[3::4]
    return _png.Image(image.width, image.height, bytes(pixels))


def render(task: MjTask, kind: str) -> bytes:
    """PNG bytes of ``task``'s ``kind`` image ("result" or "preview")."""
    if task.action in GRID_ACTIONS:
        image = _grid([tile(task.id, task.prompt, i) for i in range(4)])
    elif task.tile_of is not None:
        image = tile(*task.tile_of)
    else:
        image = tile(task.id, task.prompt, 0)
    return _png.encode(_darken(image) if kind == "preview" else image)


class MjImages:
    """Renders on demand, off the event loop, keeping the most recent ones."""

    def __init__(self, *, cache_size: int = 64) -> None:
        self._cache: OrderedDict[tuple[str, str], bytes] = OrderedDict()
        self._cache_size = cache_size

    async def png(self, task: MjTask, kind: str) -> bytes:
        key = (task.id, kind)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        data = await anyio.to_thread.run_sync(render, task, kind)
        self._cache[key] = data
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return data
