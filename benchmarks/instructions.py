"""``python -m benchmarks.instructions``: instructions per task, counted by valgrind, not timed.

CPU seconds on a shared 2-core machine drift by 10% and more between runs a minute apart, so a
change of 2-5% in the client's cost takes many interleaved processes to resolve (``lifecycle_ab``,
``same_process_ab``). Instructions executed do not drift: ``valgrind --tool=callgrind`` counts the
same total for the same program and inputs, whatever else the machine is doing (repeat runs here
agree within 0.3%). Their ratios to the raw loop track the CPU ratios of ``benchmarks.lifecycle``
(within a few %), so this is the tool to see whether one cut pays, on a busy machine included.

How: each lifecycle contestant (``benchmarks/lifecycle.py``) runs in its own process under callgrind
(the sandbox's process is not instrumented), once with ``--small`` tasks and once with ``--large``
tasks after the same warm-up; the difference divided by the difference in tasks is the cost of one
task, with start-up, imports and the warm-up cancelled out. The regime is the short one (a submit and
two queries per task) at a time scale slow enough that valgrind's own slowdown (about 50x) does not
change the schedule: the report prints each contestant's queries per task so that can be checked.

Prints one line per contestant: instructions per task, per request, and the ratio to the raw loop;
``--json`` writes them too. Needs ``valgrind`` (Debian's package); exits 2 with a note without it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from . import lifecycle
from ._server import BenchServer

#: Slow enough that the client under valgrind keeps the two-queries-per-task schedule: tasks of
#: 30 model s last 1.2 s, queried at 0.8 s and 1.6 s.
TIME_SCALE = 0.04
INTERVAL_MODEL_S = 20.0
IN_FLIGHT = 16
WARM_UP = 20
DEFAULT_CONTESTANTS = (
    lifecycle.BASELINE,
    "sdk tasks.get loop",
    "sdk tasks.stream",
    "sdk fan_out",
    "sdk stream, default policy",
    "sdk fan_out, default policy",
)
_REPO = Path(__file__).resolve().parent.parent


async def _inner(name: str, n: int) -> dict[str, Any]:
    """One contestant, ``n`` tasks after the warm-up, in this (instrumented) process."""
    async with BenchServer(
        time_scale=TIME_SCALE, seed=11, estimated_times={lifecycle.MODEL: lifecycle.ESTIMATED},
        duration_spread=[1.0, 1.0],
    ) as server:
        interval = INTERVAL_MODEL_S * TIME_SCALE
        await lifecycle.CONTESTANTS[name](lifecycle._Run(server, interval, IN_FLIGHT), WARM_UP)
        before = await server.stats()
        await lifecycle.CONTESTANTS[name](lifecycle._Run(server, interval, IN_FLIGHT), n)
        after = await server.stats()
    counts = {e: after["requests"].get(e, 0) - before["requests"].get(e, 0) for e in after["requests"]}
    queries = sum(counts.get(e, 0) for e in lifecycle.QUERY_ENDPOINTS)
    submits = sum(counts.get(e, 0) for e in lifecycle.SUBMIT_ENDPOINTS)
    return {"queries": queries, "submits": submits}


def _count(name: str, n: int, workdir: Path) -> tuple[int, dict[str, Any]]:
    """Instructions of one whole process running ``name`` for ``n`` tasks, and its request counts."""
    out = workdir / f"callgrind.{abs(hash((name, n)))}"
    report = workdir / f"report.{abs(hash((name, n)))}.json"
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    subprocess.run(
        [
            "valgrind", "--tool=callgrind", "--cache-sim=no", f"--callgrind-out-file={out}",
            sys.executable, "-m", "benchmarks.instructions", "--inner", name, str(n), str(report),
        ],
        cwd=_REPO, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    total = 0
    for line in out.read_text().splitlines():
        if line.startswith("totals:") or line.startswith("summary:"):
            total = int(line.split()[1])
    return total, json.loads(report.read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.instructions", description=__doc__.splitlines()[0])
    parser.add_argument("contestants", nargs="*", default=list(DEFAULT_CONTESTANTS), help="lifecycle contestant names")
    parser.add_argument("--small", type=int, default=50, help="tasks in the first run (default 50)")
    parser.add_argument("--large", type=int, default=250, help="tasks in the second run (default 250)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--inner", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.inner:
        name, n, report = args.inner
        Path(report).write_text(json.dumps(asyncio.run(_inner(name, int(n)))))
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install valgrind): nothing counted", file=sys.stderr)
        return 2
    unknown = [name for name in args.contestants if name not in lifecycle.CONTESTANTS]
    if unknown or args.large <= args.small:
        parser.error(f"unknown contestants {unknown}" if unknown else "--large must be more than --small")
    names = [lifecycle.BASELINE] + [name for name in args.contestants if name != lifecycle.BASELINE]
    rows: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            small, small_counts = _count(name, args.small, Path(tmp))
            large, large_counts = _count(name, args.large, Path(tmp))
            tasks = args.large - args.small
            requests = (large_counts["queries"] + large_counts["submits"]) - (
                small_counts["queries"] + small_counts["submits"]
            )
            per_task = (large - small) / tasks
            rows[name] = {
                "instructions_per_task": per_task,
                "instructions_per_request": (large - small) / max(1, requests),
                "queries_per_task": large_counts["queries"] / args.large,
            }
            base = rows[lifecycle.BASELINE]
            row = rows[name]
            print(
                f"{name:<30} {row['instructions_per_task'] / 1e6:7.3f} M/task "
                f"{row['instructions_per_request'] / 1e3:7.1f} k/request "
                f"{row['queries_per_task']:5.2f} queries/task "
                f"x{row['instructions_per_task'] / base['instructions_per_task']:.3f} per task "
                f"x{row['instructions_per_request'] / base['instructions_per_request']:.3f} per request",
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
