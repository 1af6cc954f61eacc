"""``python -m benchmarks.fleet [--quick]``: a fleet batch on one PostgreSQL journal.

1. Throughput with 1, 2, 4 and 6 worker processes against a sandbox (its own process) with a
   per-key rate limit: inputs per second, and API requests per second against the limit (a
   fleet should reach the limit, not stall below it).
2. Journal cost per input: claim + begin + record + complete on PostgreSQL (one worker's calls,
   sequential; every write fenced by the lease's epoch) vs reserve + record + complete on SQLite,
   in ms of wall time and client CPU; and the write-ahead file's append (fsynced) per input.
   ``--journal-cost-only`` runs only this part (to compare a checkout from before fencing).

Not part of ``python -m benchmarks`` (it needs a PostgreSQL server: it starts a throwaway one from
``/usr/lib/postgresql/*/bin``). Writes ``benchmarks/results/fleet.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from evolink_async.batch import ManifestInput, PgJournal
from evolink_async.batch._entries import EntryStatus, request_fingerprint
from evolink_async.batch._sqlite_store import Journal
from evolink_async.batch._wal import WalRecord, WriteAheadFile
from tests.fleet.pgcluster import PgCluster, pg_cluster

HERE = Path(__file__).resolve().parent
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}
TIME_SCALE = 0.01


def _start_sandbox(rate_limit: float) -> tuple[subprocess.Popen[str], dict[str, str]]:
    argv = [sys.executable, "-m", "evolink_async.sandbox", "--time-scale", str(TIME_SCALE), "--seed", "1",
            "--rate-limit", str(rate_limit)]  # fmt: skip
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=ENV)
    values: dict[str, str] = {}
    deadline = time.monotonic() + 30
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if line.startswith("ready"):
            return process, values
        if "=" in line:
            name, _, value = line.strip().partition("=")
            values[name] = value
    process.kill()
    raise RuntimeError("the sandbox did not start")


def _ledger(base_url: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{base_url}/_sandbox/ledger", timeout=10) as answer:
        data: dict[str, Any] = json.loads(answer.read())
    return data


def _manifest(path: Path, count: int) -> None:
    lines = (json.dumps({"key": f"k{i:05d}", "model": "qwen-image-edit", "prompt": "autumn",
                         "image_urls": [f"https://img.example.com/{i}.png"]}) for i in range(count))  # fmt: skip
    path.write_text("\n".join(lines) + "\n")


def throughput(cluster: PgCluster, *, workers: int, inputs: int, rate_limit: float) -> dict[str, Any]:
    url = cluster.create_database()
    sandbox, env = _start_sandbox(rate_limit)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            manifest = Path(tmp) / "m.jsonl"
            _manifest(manifest, inputs)
            subprocess.run([sys.executable, "-m", "evolink_async", "batch", "plan", str(manifest), "--journal", url],
                           check=True, timeout=120, env=ENV, capture_output=True)  # fmt: skip
            argv = [sys.executable, "-m", "evolink_async", "batch", "work", "--journal", url, "--max-in-flight", "64",
                    "--wal", str(Path(tmp) / "fleet.wal"),
                    "--base-url", env["EVOLINK_BASE_URL"], "--files-base-url", env["EVOLINK_FILES_BASE_URL"],
                    "--api-key", env["EVOLINK_API_KEY"], "--poll-scale", str(TIME_SCALE),
                    "--poll-interval", "0.05"]  # fmt: skip
            before = _ledger(env["EVOLINK_BASE_URL"])
            started = time.perf_counter()
            # Standard error to files: a pipe nobody reads would stall a worker that logs a lot (429s).
            processes = [subprocess.Popen(argv, env=ENV, stdout=subprocess.DEVNULL,
                                          stderr=(Path(tmp) / f"worker-{i}.err").open("w"))
                         for i in range(workers)]  # fmt: skip
            for process in processes:
                process.wait(timeout=600)
            wall = time.perf_counter() - started
            after = _ledger(env["EVOLINK_BASE_URL"])
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=30)
    rejected = after["faults"].get("rate_limited", 0) - before["faults"].get("rate_limited", 0)
    requests = sum(after["requests"].values()) - sum(before["requests"].values()) - rejected
    limit_per_s = rate_limit / TIME_SCALE
    return {
        "workers": workers, "inputs": inputs, "billed": len(after["billed"]),
        "unique": len(set(after["billed"])) == len(after["billed"]), "wall_s": round(wall, 2),
        "inputs_per_s": round(inputs / wall, 1), "accepted_requests_per_s": round(requests / wall, 1),
        "limit_per_s": limit_per_s, "share_of_limit": round(requests / wall / limit_per_s, 2),
        "requests_per_input": round(requests / inputs, 2), "rejected_429": rejected,
    }  # fmt: skip


async def pg_cost(url: str, count: int) -> dict[str, float]:
    async with PgJournal(url, connections=2) as journal:
        await journal.plan(ManifestInput(key=f"k{i:05d}", model="qwen-image-edit", prompt="autumn",
                                         image_urls=(f"https://img.example.com/{i}.png",)) for i in range(count))
        await journal.set_limits(max_in_flight=10_000)
        wall, cpu = time.perf_counter(), time.process_time()
        done = 0
        while done < count:
            claim = await journal.claim("bench", limit=8, lease=30)
            for item in claim.items:
                key = item.entry.key
                await journal.begin_submit(key, "bench", '{"model":"qwen-image-edit"}', epoch=item.epoch)
                await journal.record_submitted(key, f"task-unified-{done}", owner="bench", epoch=item.epoch, lease=30)
                await journal.record_outcome(key, EntryStatus.COMPLETED, owner="bench", epoch=item.epoch,
                                             result_urls=["https://r/0.png"])  # fmt: skip
                done += 1
        return {"wall_ms": (time.perf_counter() - wall) * 1000 / count,
                "cpu_ms": (time.process_time() - cpu) * 1000 / count}  # fmt: skip


async def sqlite_cost(path: Path, count: int) -> dict[str, float]:
    async with Journal(path) as journal:
        wall, cpu = time.perf_counter(), time.process_time()
        for i in range(count):
            key = f"k{i:05d}"
            await journal.reserve(key, request_fingerprint({"input": key}))
            await journal.record_request(key, '{"model":"qwen-image-edit"}')
            await journal.record_submitted(key, f"task-unified-{i}")
            await journal.record_outcome(key, EntryStatus.COMPLETED, result_urls=["https://r/0.png"])
        return {"wall_ms": (time.perf_counter() - wall) * 1000 / count,
                "cpu_ms": (time.process_time() - cpu) * 1000 / count}  # fmt: skip


def wal_cost(path: Path, count: int) -> dict[str, float]:
    wal = WriteAheadFile(path)
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(count):
        wal.append(WalRecord(key=f"k{i:05d}", idempotency_key=f"idem-{i}", task_id=f"task-unified-{i}"))
    return {"wall_ms": (time.perf_counter() - wall) * 1000 / count,
            "cpu_ms": (time.process_time() - cpu) * 1000 / count}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fleet", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (well under a minute)")
    parser.add_argument("--journal-cost-only", action="store_true", help="only part 2 (no throughput runs)")
    args = parser.parse_args(argv)
    inputs, cost_inputs, rate = (120, 200, 1.0) if args.quick else (600, 2000, 1.0)
    report: dict[str, Any] = {"command": "python -m benchmarks.fleet" + (" --quick" if args.quick else ""),
                              "throughput": [], "journal_cost_per_input": {}}  # fmt: skip
    with pg_cluster() as cluster:
        for workers in () if args.journal_cost_only else (1, 2, 4, 6):
            row = throughput(cluster, workers=workers, inputs=inputs, rate_limit=rate)
            report["throughput"].append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
        report["journal_cost_per_input"]["postgresql"] = asyncio.run(pg_cost(cluster.create_database(), cost_inputs))
    with tempfile.TemporaryDirectory() as tmp:
        report["journal_cost_per_input"]["sqlite"] = asyncio.run(sqlite_cost(Path(tmp) / "j.sqlite3", cost_inputs))
        report["journal_cost_per_input"]["write_ahead_file"] = wal_cost(Path(tmp) / "fleet.wal", cost_inputs)
    for store, cost in report["journal_cost_per_input"].items():
        print(f"{store:10} wall {cost['wall_ms']:.2f} ms/input, client CPU {cost['cpu_ms']:.2f} ms/input",
              file=sys.stderr)  # fmt: skip
    (HERE / "results").mkdir(exist_ok=True)
    name = "fleet-journal-cost.json" if args.journal_cost_only else "fleet.json"
    (HERE / "results" / name).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
