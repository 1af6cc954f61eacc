"""``evolink demo``: sample images, an in-process sandbox, the folder batch, results and a summary.

Needs no key and no network: the sandbox listens on 127.0.0.1 and its key is a fixed local one.
"""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import anyio.to_thread

from .. import EvolinkClient, PollPolicy, RetryPolicy
from ..batch import Batch, BatchSpec, BatchSummary
from ..sandbox import Sandbox, make_samples
from ._progress import Reporter

__all__ = ["run_demo"]

PROMPT = "make it look like a watercolour autumn afternoon"


def _fresh_folder(directory: Path, name: str) -> Path:
    """``directory/name``, else ``name-2``, ``name-3``...: the first one this call creates."""
    for number in range(1, 10_000):
        folder = directory / (name if number == 1 else f"{name}-{number}")
        try:
            folder.mkdir(parents=True)
        except FileExistsError:
            continue
        return folder
    raise FileExistsError(f"no free folder like {directory / name}")


async def run_demo(directory: Path, *, count: int, time_scale: float, seed: int, reporter: Reporter) -> BatchSummary:
    inputs = directory / "inputs"
    await anyio.to_thread.run_sync(make_samples, inputs, count)
    # Each demo talks to a new sandbox, whose task ids an earlier journal would not know: a fresh folder.
    output = await anyio.to_thread.run_sync(_fresh_folder, directory, "results")
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

