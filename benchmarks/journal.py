"""Scenario 8: the journal's durability cost: ``"full"`` (the default), ``"submits"``, ``"normal"``, side by side.

Each input of a batch commits five journal rows, one transaction each, in this order: ``reserve``
(its idempotency key), ``record_request`` (the body about to be sent), ``record_submitted`` (the
task id), ``record_outcome`` and ``record_downloads``. ``"full"`` (the default) fsyncs the
write-ahead log at every commit (5 per input); ``"submits"`` only at the two a submit depends on, the
body before it and the task id after it (2 per input: a power cut cannot lose them once their
commit returned); ``"normal"`` only at checkpoints, so a power cut may take the last commits with
it (a submitted task's id, then a second bill on the resume).

Measured: wall time per input (the five commits, through ``Journal``'s worker thread as a batch
does it) for each mode, the modes alternating round by round in fresh journals in a folder
on the disk the benchmark runs from (not a tmpfs, where an fsync costs nothing); the ratio
FULL/NORMAL; and the ``PRAGMA quick_check`` a run pays once when it opens a journal of the same
size. What an fsync costs is to be read against one HTTP submit per input (tens to hundreds of
milliseconds against the real service).
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from evolink_async.batch._entries import EntryStatus
from evolink_async.batch._sqlite_store import Journal, Synchronous

from ._common import Scenario, mean, median, target

HERE = Path(__file__).resolve().parent
FINGERPRINT = "sha256:" + "0" * 64
BODY = '{"model":"qwen-image-edit","prompt":"make it autumn","image_urls":["https://files.example/in.png"]}'


async def _inputs(folder: Path, mode: Synchronous, count: int) -> float:
    """Seconds per input for ``count`` inputs through the five steps, in a new journal."""
    path = folder / f"journal-{mode}-{time.monotonic_ns()}.sqlite3"
    async with Journal(path, synchronous=mode) as journal:
        started = time.perf_counter()
        for index in range(count):
            key = f"in/{index:06d}.png"
            await journal.reserve(key, FINGERPRINT)
            await journal.record_request(key, BODY)
            await journal.record_submitted(key, f"task-unified-1757165031-{index:06d}")
            await journal.record_outcome(key, EntryStatus.COMPLETED, result_urls=[f"https://cdn.example/{index}.png"])
            await journal.record_downloads(key, [f"out/{key}.result-0.png"])
        elapsed = time.perf_counter() - started
    return elapsed / count


def _quick_check_seconds(path: Path) -> float:
    conn = sqlite3.connect(path)
    try:
        started = time.perf_counter()
        conn.execute("PRAGMA quick_check(1)").fetchone()
        return time.perf_counter() - started
    finally:
        conn.close()


async def run(quick: bool) -> Scenario:
    scenario = Scenario("journal", "Journal durability per input (5 commits): full (default) vs submits vs normal")
    count, rounds = (200, 2) if quick else (1000, 3)
    scenario.params = {"inputs per round": count, "rounds per mode": rounds, "commits per input": 5}
    folder = Path(tempfile.mkdtemp(prefix="journal-bench-", dir=HERE / "results"))
    try:
        per_input: dict[Synchronous, list[float]] = {"full": [], "submits": [], "normal": []}
        for _ in range(rounds):
            for mode in per_input:  # alternating: drift on the machine hits every mode alike
                per_input[mode].append(await _inputs(folder, mode, count))
        opened = max(folder.glob("journal-full-*.sqlite3"), key=lambda p: p.stat().st_mtime)
        checks = [_quick_check_seconds(opened) for _ in range(5)]
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    scenario.columns = ["mode", "fsyncs per input", "per input (ms, median)", "per input (ms, mean)",
                        "inputs per second"]  # fmt: skip
    fsyncs = {"full": 5, "submits": 2, "normal": 0}
    rows: dict[str, dict[str, Any]] = {}
    for mode, samples in per_input.items():
        rows[mode] = {
            "mode": f'synchronous="{mode}"',
            "fsyncs per input": fsyncs[mode],
            "per input (ms, median)": round(median(samples) * 1000, 3),
            "per input (ms, mean)": round(mean(samples) * 1000, 3),
            "inputs per second": round(1 / median(samples)),
        }
        scenario.rows.append(rows[mode])
    ms = {mode: median(samples) * 1000 for mode, samples in per_input.items()}
    scenario.extra = {"ratio_submits_over_normal": round(ms["submits"] / ms["normal"], 2),
                      "ratio_full_over_normal": round(ms["full"] / ms["normal"], 2),
                      "ratio_submits_over_full": round(ms["submits"] / ms["full"], 2),
                      "quick_check_ms": round(median(checks) * 1000, 3), "quick_check_rows": count}  # fmt: skip
    # Two fsyncs must cost clearly less than five; the ratios to "normal" are the price of
    # durability on this disk, reported, not judged (the default is "full": see Journal's docstring).
    scenario.targets.append(target('"submits" / "full" per input', goal="<= 0.6x",
                                   value=scenario.extra["ratio_submits_over_full"],
                                   passed=scenario.extra["ratio_submits_over_full"] <= 0.6))  # fmt: skip
    scenario.targets.append(target('"submits" / "normal" per input', goal="reported",
                                   value=scenario.extra["ratio_submits_over_normal"], passed=None))  # fmt: skip
    scenario.targets.append(target('"full" / "normal" per input', goal="reported",
                                   value=scenario.extra["ratio_full_over_normal"], passed=None))  # fmt: skip
    scenario.targets.append(target(f"quick_check at open, {count} inputs", goal="<= 100 ms",
                                   value=round(median(checks) * 1000, 3), passed=median(checks) <= 0.1))  # fmt: skip
    scenario.notes.append(
        '"full" (the default) fsyncs every commit. "submits" fsyncs the log at the commit of the body '
        "before a submit and of the task id after it: those survive a power cut, and the rows a resume "
        'redoes for free ride on the next fsync. "normal" may lose the last commits, a submitted task\'s id among them.'
    )
    return scenario


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(asyncio.run(run("--quick" in sys.argv)).to_json(), indent=2))
