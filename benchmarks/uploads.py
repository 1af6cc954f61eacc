"""Scenario 9: the cost of reclaiming uploads: a 250-image folder batch, deleting vs ``--keep-uploads``.

A folder batch uploads one file per input; by default it deletes each file once the input's task
ended (one ``DELETE`` per input, and the journal row of the upload forgotten), and keeps the files
alive within the key's quota. Measured, side by side and alternating round by round against one
sandbox process with room for every file (quota 1000): the wall time of ``Batch.run()`` over 250
local PNGs with deletion (the default) and with ``keep_uploads=True``, and their ratio. A third
column runs the default against the real service's default quota of 100 files, where the budget
(not the tasks) sets the pace whenever more than 100 files would be alive.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from evolink_async import EvolinkClient, PollPolicy
from evolink_async.batch import Batch, BatchSpec
from evolink_async.sandbox._png import Image, encode

from ._common import Scenario, median, target
from ._server import BenchServer

HERE = Path(__file__).resolve().parent
SCALE = 0.02


def _inputs(folder: Path, count: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    data = encode(Image(400, 400, bytes((90, 20, 200, 255)) * 400 * 400))
    for index in range(count):
        (folder / f"{index:04d}.png").write_bytes(data)
    return folder


async def _batch(server: BenchServer, inputs: Path, out: Path, *, keep: bool, max_in_flight: int) -> dict[str, Any]:
    async with EvolinkClient(server.api_key, base_url=server.base_url, files_base_url=server.files_base_url,
                             poll_policy=PollPolicy().scaled(SCALE)) as client:  # fmt: skip
        spec = BatchSpec(model="qwen-image-edit", prompt="make it autumn", input_dir=inputs, output_dir=out,
                         max_in_flight=max_in_flight, keep_uploads=keep)  # fmt: skip
        started = time.perf_counter()
        summary = await Batch(client, spec).run()
        elapsed = time.perf_counter() - started
        assert summary.ok, summary.to_json()
        left = (await client.files.list()).total
        # What a kept run left must not count against the next round: cleared outside the timing.
        while (page := await client.files.list()).files:
            for stored in page.files:
                await client.files.delete(stored.file_id)
    return {"seconds": elapsed, "files_left": left, "deleted": summary.uploads_deleted,
            "quota_waits": summary.quota_waits}  # fmt: skip


async def run(quick: bool) -> Scenario:
    scenario = Scenario("uploads", "Reclaiming uploads: 250-image folder batch, delete (default) vs --keep-uploads")
    count, rounds, max_in_flight = (100, 2, 32) if quick else (250, 3, 64)
    scenario.params = {"inputs": count, "rounds per mode": rounds, "max_in_flight": max_in_flight,
                       "sandbox time_scale": SCALE}  # fmt: skip
    folder = Path(tempfile.mkdtemp(prefix="uploads-bench-", dir=HERE / "results"))
    modes = ("delete, quota 1000", "keep, quota 1000", "delete, quota 100")
    runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
    try:
        inputs = _inputs(folder / "in", count)
        async with BenchServer(time_scale=SCALE, max_files=1000) as roomy, \
                BenchServer(time_scale=SCALE, max_files=100) as tight:  # fmt: skip
            for round_number in range(rounds):
                for mode in modes:  # alternating: drift on the machine hits every mode alike
                    server = tight if mode.endswith("100") else roomy
                    out = folder / f"out-{round_number}-{modes.index(mode)}"
                    runs[mode].append(await _batch(server, inputs, out, keep=mode.startswith("keep"),
                                                   max_in_flight=max_in_flight))  # fmt: skip
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    scenario.columns = ["mode", "wall time (s, median)", "per input (ms, median)", "files left", "deleted",
                        "quota waits"]  # fmt: skip
    medians = {mode: median([r["seconds"] for r in runs[mode]]) for mode in modes}
    for mode in modes:
        last = runs[mode][-1]
        scenario.rows.append({
            "mode": mode, "wall time (s, median)": round(medians[mode], 3),
            "per input (ms, median)": round(medians[mode] / count * 1000, 2),
            "files left": last["files_left"], "deleted": last["deleted"], "quota waits": last["quota_waits"],
        })  # fmt: skip
    ratio = medians["delete, quota 1000"] / medians["keep, quota 1000"]
    scenario.targets.append(target("delete / keep wall time (quota 1000)", goal="<= 1.15x", value=round(ratio, 3),
                                   passed=ratio <= 1.15))  # fmt: skip
    tight_ratio = medians["delete, quota 100"] / medians["keep, quota 1000"]
    scenario.targets.append(target("delete at quota 100 / keep at quota 1000", goal="reported",
                                   value=round(tight_ratio, 3), passed=None))  # fmt: skip
    scenario.notes.append("Deleting adds one DELETE per input, off the submit path (after the download); "
                          "keeping leaves every file alive, which the real service's 100-file quota does not allow "
                          "past the 100th input.")  # fmt: skip
    scenario.extra = {"runs": runs}
    return scenario
