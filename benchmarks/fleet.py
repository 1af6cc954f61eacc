"""``python -m benchmarks.fleet [--quick]``: a fleet batch on one PostgreSQL journal.

1. Throughput with 1, 2, 4 and 6 worker processes (``--workers``) against a sandbox (its own
   process) with a per-key rate limit (``--rate-limit``, per API second): inputs per second, and
   API requests per second against the limit (a fleet should reach the limit, not stall below
   it); over the whole run and in its steady part (sampled every 0.25 s, the workers' start and
   the last tasks' end left out). Each point also gives the CPU seconds of every worker, the
   sandbox and PostgreSQL, how busy the whole machine was, and the load average before and after;
   the claims per input (PostgreSQL's count) and the claims that took nothing (the workers' own).
   ``--inputs 2400`` makes the steady part four times as long as the default 600.
   Each worker's standard error is kept in ``benchmarks/results/fleet-logs/``; a point that looks
   wrong (an input not billed, a worker that failed) prints their last lines.
2. Journal cost per input: claim + begin + record + complete on PostgreSQL (one worker's calls,
   sequential; every write fenced by the lease's epoch) vs reserve + record + complete on SQLite,
   in ms of wall time and client CPU; and the write-ahead file's append (fsynced) per input.
   ``--journal-cost-only`` runs only this part (to compare a checkout from before fencing),
   ``--throughput-only`` only the first.

Not part of ``python -m benchmarks`` (it needs a PostgreSQL server: it starts a throwaway one from
``/usr/lib/postgresql/*/bin``). Writes ``benchmarks/results/fleet.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import asyncpg

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


def _cpu_s(pid: int, *, children: bool = False) -> float:
    """CPU seconds (user + system) of a live process from ``/proc`` (with its reaped children's)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12]) + (int(fields[13]) + int(fields[14]) if children else 0)
    return ticks / os.sysconf("SC_CLK_TCK")


def _postgres_cpu_s(cluster: PgCluster) -> float:
    """CPU seconds of the whole PostgreSQL server: the postmaster, its reaped backends, the live ones."""
    try:
        postmaster = int((cluster.data / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0.0
    total = _cpu_s(postmaster, children=True)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == postmaster:
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _machine_busy() -> tuple[float, float]:
    """(busy, total) CPU ticks of the whole machine since boot, from ``/proc/stat``."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def _tail(path: Path, lines: int = 15) -> str:
    text = path.read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:])


def _timeline(base_url: str, stop: threading.Event, samples: list[tuple[float, int, int]]) -> None:
    """(time, requests, 429s) every 0.25 s while the workers run: when the fleet was under the limit."""
    while not stop.wait(0.25):
        with contextlib.suppress(OSError, ValueError):
            ledger = _ledger(base_url)
            api = sum(count for name, count in ledger["requests"].items() if "/_sandbox/" not in name)
            samples.append((time.perf_counter(), api, ledger["faults"].get("rate_limited", 0)))


def throughput(cluster: PgCluster, *, workers: int, inputs: int, rate_limit: float, logs: Path) -> dict[str, Any]:
    """One point: ``workers`` processes on ``inputs`` inputs; their standard error goes to ``logs``."""
    url = cluster.create_database()
    asyncio.run(_track_claims(url))
    sandbox, env = _start_sandbox(rate_limit)
    logs.mkdir(parents=True, exist_ok=True)
    err_paths = [logs / f"rate{rate_limit:g}-w{workers}-{i}.err" for i in range(workers)]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            manifest = Path(tmp) / "m.jsonl"
            _manifest(manifest, inputs)
            subprocess.run([sys.executable, "-m", "evolink_async", "batch", "plan", str(manifest), "--journal", url],
                           check=True, timeout=120, env=ENV, capture_output=True)  # fmt: skip
            # --json: each worker's summary is the last line of its standard error (its events, on
            # standard output, go nowhere either way).
            argv = [sys.executable, "-m", "evolink_async", "batch", "work", "--journal", url, "--max-in-flight", "64",
                    "--wal", str(Path(tmp) / "fleet.wal"),
                    "--base-url", env["EVOLINK_BASE_URL"], "--files-base-url", env["EVOLINK_FILES_BASE_URL"],
                    "--api-key", env["EVOLINK_API_KEY"], "--poll-scale", str(TIME_SCALE),
                    "--poll-interval", "0.05", "--json"]  # fmt: skip
            before = _ledger(env["EVOLINK_BASE_URL"])
            load_before = os.getloadavg()
            sandbox_cpu, postgres_cpu, machine = _cpu_s(sandbox.pid), _postgres_cpu_s(cluster), _machine_busy()
            samples: list[tuple[float, int, int]] = []
            stop = threading.Event()
            sampler = threading.Thread(target=_timeline, args=(env["EVOLINK_BASE_URL"], stop, samples), daemon=True)
            started = time.perf_counter()
            # Standard error to files (kept): a pipe nobody reads would stall a worker that logs a lot.
            processes = []
            for path in err_paths:
                with path.open("w") as err:
                    processes.append(subprocess.Popen(argv, env=ENV, stdout=subprocess.DEVNULL, stderr=err))
            sampler.start()
            worker_cpu: dict[int, float] = {}
            exit_codes: dict[int, int] = {}
            exited: dict[int, float] = {}
            pids = {process.pid: i for i, process in enumerate(processes)}
            while len(exited) < len(processes):
                # wait4: the worker's own CPU time, read as it is reaped (in the order they exit).
                pid, status, usage = os.wait4(-1, 0)
                if pid not in pids:
                    continue
                i = pids[pid]
                processes[i].returncode = exit_codes[i] = os.waitstatus_to_exitcode(status)
                worker_cpu[i] = round(usage.ru_utime + usage.ru_stime, 2)
                exited[i] = round(time.perf_counter() - started, 2)
            wall = time.perf_counter() - started
            stop.set()
            sampler.join(timeout=10)
            sandbox_cpu = _cpu_s(sandbox.pid) - sandbox_cpu
            postgres_cpu = _postgres_cpu_s(cluster) - postgres_cpu
            machine_after = _machine_busy()
            load_after = os.getloadavg()
            after = _ledger(env["EVOLINK_BASE_URL"])
            journal = asyncio.run(_journal_stats(url))
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=30)
    summaries = [_summary(path) for path in err_paths]
    rejected = after["faults"].get("rate_limited", 0) - before["faults"].get("rate_limited", 0)
    # The API's requests only: the benchmark's own reads of the ledger are no part of the workload.
    by_endpoint = {name: count - before["requests"].get(name, 0) for name, count in after["requests"].items()
                   if "/_sandbox/" not in name}  # fmt: skip
    requests = sum(by_endpoint.values()) - rejected
    limit_per_s = rate_limit / TIME_SCALE
    busy = (machine_after[0] - machine[0]) / max(1, machine_after[1] - machine[1])
    row = {
        "workers": workers, "inputs": inputs, "rate_limit": rate_limit, "billed": len(after["billed"]),
        "unique": len(set(after["billed"])) == len(after["billed"]), "wall_s": round(wall, 2),
        "inputs_per_s": round(inputs / wall, 1), "accepted_requests_per_s": round(requests / wall, 1),
        "limit_per_s": limit_per_s, "share_of_limit": round(requests / wall / limit_per_s, 2),
        "steady_share_of_limit": _steady_share(samples, limit_per_s),
        "first_accepted_after_s": _first_accepted(samples, started, before),
        "ended_after_last_accepted_s": _after_last_accepted(samples, started + wall),
        "requests_per_input": round(requests / inputs, 2), "rejected_429": rejected,
        "requests_by_endpoint": by_endpoint, "exit_codes": [exit_codes[i] for i in range(workers)],
        "workers_exited_after_s": [exited[i] for i in range(workers)],
        "cpu_s": {"workers": [worker_cpu[i] for i in range(workers)], "sandbox": round(sandbox_cpu, 2),
                  "postgres": round(postgres_cpu, 2)},
        "journal": journal, "claims_per_input": round(journal["claims"] / inputs, 2),
        # Claims that took nothing, by the workers' own count (None: a checkout from before they counted).
        "empty_claims": _summed(summaries, "empty_claims"), "machine_busy": round(busy, 2),
        "load_average": [round(load_before[0], 1), round(load_after[0], 1)],
    }  # fmt: skip
    if row["billed"] != inputs or any(exit_codes.values()) or not row["unique"]:
        # A point that looks wrong: say why, from the workers' own words.
        for path, code in zip(err_paths, row["exit_codes"], strict=True):
            print(f"--- {path} (exit {code}), last lines:\n{_tail(path)}", file=sys.stderr, flush=True)
    return row


def _summary(path: Path) -> dict[str, Any]:
    """A worker's summary: the last line of its standard error (``--json``); {} if it has none."""
    lines = path.read_text(errors="replace").strip().splitlines()
    try:
        summary: dict[str, Any] = json.loads(lines[-1]) if lines else {}
    except ValueError:
        return {}
    return summary if summary.get("kind") == "summary" else {}


def _summed(summaries: list[dict[str, Any]], name: str) -> int | None:
    return sum(s[name] for s in summaries) if all(name in s for s in summaries) else None


async def _track_claims(url: str) -> None:
    """Count the claims and their time on the server (PostgreSQL's function statistics, this database only)."""
    connection = await asyncpg.connect(url)
    try:
        name = await connection.fetchval("SELECT current_database()")
        await connection.execute(f'ALTER DATABASE "{name}" SET track_functions = \'pl\'')
    finally:
        await connection.close()


async def _journal_stats(url: str) -> dict[str, Any]:
    """Claims made (and how many took nothing), their mean time on the server, and all transactions."""
    connection = await asyncpg.connect(url)
    try:
        calls, total_ms = await connection.fetchrow(
            # evolink_claim_v4 since schema version 4, evolink_claim before (a checkout from before).
            "SELECT coalesce(sum(calls), 0), coalesce(sum(total_time), 0) FROM pg_stat_user_functions"
            " WHERE funcname IN ('evolink_claim', 'evolink_claim_v4')"
        )  # fmt: skip
        transactions = await connection.fetchval(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()"
        )
    finally:
        await connection.close()
    return {"claims": int(calls), "claim_server_ms": round(float(total_ms) / max(1, int(calls)), 3),
            "transactions": int(transactions)}  # fmt: skip


def _first_accepted(samples: list[tuple[float, int, int]], started: float, before: dict[str, Any]) -> float | None:
    """Seconds from starting the workers to the first sample (every 0.25 s) with an accepted request:
    the workers' start, during which the limit goes unused."""
    base = sum(n for name, n in before["requests"].items() if "/_sandbox/" not in name)
    base -= before["faults"].get("rate_limited", 0)
    return next((round(at - started, 2) for at, total, rejected in samples if total - rejected > base), None)


def _after_last_accepted(samples: list[tuple[float, int, int]], ended: float) -> float | None:
    """Seconds from the last sample in which a request was accepted to the last worker's exit."""
    moving = [samples[i][0] for i in range(1, len(samples))
              if samples[i][1] - samples[i][2] > samples[i - 1][1] - samples[i - 1][2]]  # fmt: skip
    return round(ended - moving[-1], 2) if moving else None


def _steady_share(samples: list[tuple[float, int, int]], limit_per_s: float) -> float | None:
    """Accepted requests per second against the limit from the first accepted request to the last
    sample before the rate fell off at the end (the fleet's start and its last tasks left out)."""
    accepted = [(at, total - rejected) for at, total, rejected in samples]
    moving = [i for i in range(1, len(accepted)) if accepted[i][1] > accepted[i - 1][1]]
    if len(moving) < 4:
        return None
    first, last = moving[0], moving[-1]
    # The tail: the last quarter-second windows with less than half the limit (tasks finishing).
    while last > first + 2 and (accepted[last][1] - accepted[last - 1][1]) < 0.5 * limit_per_s * 0.25:
        last -= 1
    span = accepted[last][0] - accepted[first - 1][0]
    return round((accepted[last][1] - accepted[first - 1][1]) / span / limit_per_s, 2)


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
    parser.add_argument("--throughput-only", action="store_true", help="only part 1 (no journal cost)")
    parser.add_argument("--workers", type=_counts, default=(1, 2, 4, 6), help="worker counts, e.g. 1,6")
    parser.add_argument("--rate-limit", type=_rates, default=(1.0,),
                        help="the sandbox's limit per API second (x100 per real second), e.g. 1,0.5")  # fmt: skip
    parser.add_argument("--inputs", type=int, default=None, help="inputs per point (default 600; 120 with --quick)")
    args = parser.parse_args(argv)
    inputs, cost_inputs = (120, 200) if args.quick else (600, 2000)
    inputs = args.inputs or inputs
    report: dict[str, Any] = {"command": "python -m benchmarks.fleet " + " ".join(argv or sys.argv[1:]),
                              "throughput": [], "journal_cost_per_input": {}}  # fmt: skip
    logs = HERE / "results" / "fleet-logs"
    print(f"workers' standard error: {logs}", file=sys.stderr, flush=True)
    with pg_cluster() as cluster:
        for rate in () if args.journal_cost_only else args.rate_limit:
            for workers in args.workers:
                row = throughput(cluster, workers=workers, inputs=inputs, rate_limit=rate, logs=logs)
                report["throughput"].append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
        if args.throughput_only:
            _write(report, "fleet-throughput.json")
            return 0
        report["journal_cost_per_input"]["postgresql"] = asyncio.run(pg_cost(cluster.create_database(), cost_inputs))
    with tempfile.TemporaryDirectory() as tmp:
        report["journal_cost_per_input"]["sqlite"] = asyncio.run(sqlite_cost(Path(tmp) / "j.sqlite3", cost_inputs))
        report["journal_cost_per_input"]["write_ahead_file"] = wal_cost(Path(tmp) / "fleet.wal", cost_inputs)
    for store, cost in report["journal_cost_per_input"].items():
        print(f"{store:10} wall {cost['wall_ms']:.2f} ms/input, client CPU {cost['cpu_ms']:.2f} ms/input",
              file=sys.stderr)  # fmt: skip
    _write(report, "fleet-journal-cost.json" if args.journal_cost_only else "fleet.json")
    return 0


def _write(report: dict[str, Any], name: str) -> None:
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / name).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


def _counts(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(","))


def _rates(text: str) -> tuple[float, ...]:
    return tuple(float(part) for part in text.split(","))


if __name__ == "__main__":
    sys.exit(main())
