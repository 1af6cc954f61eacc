"""``evolink demo``: sample images, an in-process sandbox, the folder batch, results and a summary.

Needs no key and no network: the sandbox listens on 127.0.0.1 and its key is a fixed local one.
"""

from __future__ import annotations

import colorsys
import json
from pathlib import Path

import anyio
import anyio.to_thread

from .._clients.evolink import EvolinkClient
from .._core.retry import RetryPolicy
from .._files.safe_paths import unique_path
from .._watching.poll_policy import PollPolicy
from ..batch._run import Batch
from ..batch._spec import BatchSpec, BatchSummary
from ..sandbox import Sandbox
from ..sandbox._png import Image, encode
from ._progress import Reporter

__all__ = ["make_samples", "run_demo"]

SIDE = 448  # inside qwen-image-edit's 384-3072 px, small enough to make in a blink
PROMPT = "make it look like a watercolour autumn afternoon"


def _sample(index: int, count: int) -> bytes:
    """A diagonal two-colour gradient, a different hue per image."""
    r1, g1, b1 = (int(c * 255) for c in colorsys.hsv_to_rgb(index / count, 0.7, 0.95))
    r2, g2, b2 = (int(c * 255) for c in colorsys.hsv_to_rgb((index / count + 0.4) % 1, 0.6, 0.5))
    rows = []
    for y in range(SIDE):
        pixels = []
        for x in range(0, SIDE, 8):  # 8-pixel runs: fast in pure Python, still smooth
            t = (x + y) / (2 * SIDE)
            pixel = bytes((int(r1 + (r2 - r1) * t), int(g1 + (g2 - g1) * t), int(b1 + (b2 - b1) * t), 255))
            pixels.append(pixel * 8)
        rows.append(b"".join(pixels))
    return encode(Image(SIDE, SIDE, b"".join(rows)), alpha=False)


def make_samples(folder: Path, count: int) -> list[Path]:
    """Write ``count`` sample PNGs into ``folder`` (kept if already there) and return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        path = folder / f"sample-{index + 1:02d}.png"
        if not path.exists():
            path.write_bytes(_sample(index, count))
        paths.append(path)
    return paths


async def run_demo(directory: Path, *, count: int, time_scale: float, seed: int, reporter: Reporter) -> BatchSummary:
    inputs = directory / "inputs"
    await anyio.to_thread.run_sync(make_samples, inputs, count)
    # Each demo talks to a new sandbox, whose task ids an earlier journal would not know: a fresh folder.
    output = await anyio.to_thread.run_sync(unique_path, directory / "results")
    reporter.note(f"sandbox: {count} sample images in {inputs} -> {output} (qwen-image-edit, \"{PROMPT}\")",
                  inputs=str(inputs), output=str(output))  # fmt: skip
    async with Sandbox(time_scale=time_scale, seed=seed) as sandbox:
        client = EvolinkClient(
            sandbox.api_key, base_url=sandbox.base_url, files_base_url=sandbox.files_base_url,
            poll_policy=PollPolicy().scaled(time_scale),
            retry=RetryPolicy(max_retries=6, initial_delay=0.05, max_delay=0.5),
        )  # fmt: skip
        spec = BatchSpec(model="qwen-image-edit", prompt=PROMPT, input_dir=inputs, output_dir=output, max_in_flight=4)
        async with client:
            with reporter:
                summary = await Batch(client, spec, on_event=reporter.event).run()
        summary.credits_reserved = summary.credits_reserved or sandbox.ledger.credits_charged
    summary_path = output / "summary.json"
    text = json.dumps(summary.to_json(), indent=2)
    await anyio.to_thread.run_sync(summary_path.write_text, text)
    return summary

