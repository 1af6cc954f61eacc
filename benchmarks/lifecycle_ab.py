"""``python -m benchmarks.lifecycle_ab REV_A REV_B``: one lifecycle regime, two commits, interleaved.

A full ``python -m benchmarks --only lifecycle`` compares the SDK with the raw loop in one code
version; comparing two versions from two such runs minutes apart mixes in the machine's drift,
which on a shared machine is larger than the differences looked for (3%). This runs both versions
of ``evolink_async`` with the same benchmark code and the same sandbox, alternating processes in
the order A B, B A, A B, ...: each process is one regime's contestants in ``--rounds`` rotated
rounds after a warm-up, and every figure is a ratio to the raw aiohttp loop of the same round.

- Each revision's ``evolink_async`` is extracted with ``git archive`` into a scratch directory and
  put first on ``PYTHONPATH`` of its processes; the benchmark code (this folder, as checked out)
  runs from a copy beside them, so both versions face the same contestants.
- The sandbox is this checkout's for both (``BENCH_SERVER_PYTHONPATH``, see ``_server.py``): a
  change in the sandbox between the revisions must not count as the client's.

Prints, per contestant, the median of CPU per request and per task as ratios to the raw loop for
each revision, and the change from A to B; ``--json`` keeps every sample.
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

from ._common import median

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
#: The regimes of ``lifecycle.run``: (time scale, model seconds between queries, tasks in flight).
REGIMES = {"long": (0.01, 3.0, 100), "short": (0.004, 20.0, 100), "short16": (0.004, 20.0, 16)}


async def _child(regime: str, tasks: int, rounds: int, names: list[str]) -> dict[str, list[dict[str, float]]]:
    from . import lifecycle
    from ._server import BenchServer

    time_scale, interval_model_s, concurrency = REGIMES[regime]
    interval = interval_model_s * time_scale
    async with BenchServer(
        time_scale=time_scale, seed=11, estimated_times={lifecycle.MODEL: lifecycle.ESTIMATED},
        duration_spread=[1.0, 1.0],
    ) as server:  # fmt: skip
        for name in names:  # warm-up, unmeasured
            await lifecycle._measure(server, name, min(tasks, 50), interval, concurrency)
        samples: dict[str, list[dict[str, float]]] = {name: [] for name in names}
        for r in range(rounds):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                samples[name].append(await lifecycle._measure(server, name, tasks, interval, concurrency))
    return samples


def _extract(revision: str, into: Path) -> Path:
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", revision, "evolink_async"], check=True,
                             capture_output=True).stdout  # fmt: skip
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def _ratios(samples: dict[str, list[dict[str, float]]], name: str, field: str) -> list[float]:
    base = samples["aiohttp raw"]
    return [s[field] / b[field] for s, b in zip(samples[name], base, strict=True)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.lifecycle_ab", description=__doc__.split("\n\n")[0])
    parser.add_argument("revisions", nargs=2, metavar="REV", help="two git revisions (A, then B)")
    parser.add_argument("--regime", choices=sorted(REGIMES), default="short")
    parser.add_argument("--tasks", type=int, default=1500, help="tasks per contestant run")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per process")
    parser.add_argument("--pairs", type=int, default=3, help="processes per revision")
    parser.add_argument("--json", type=Path, default=None, help="where to write every sample")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    from .lifecycle import CONTESTANTS, HTTPX

    names = [name for name in CONTESTANTS if name != HTTPX]  # httpx sets no target and triples the time
    if args.child:
        import evolink_async

        samples = asyncio.run(_child(args.regime, args.tasks, args.rounds, names))
        print(json.dumps({"code": evolink_async.__file__, "samples": samples}))
        return 0
    a, b = args.revisions
    commits = {
        revision: subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", revision], check=True,
                                 capture_output=True, text=True).stdout.strip()
        for revision in (a, b)
    }  # fmt: skip
    results: dict[str, list[dict[str, list[dict[str, float]]]]] = {a: [], b: []}
    with tempfile.TemporaryDirectory(prefix="lifecycle-ab-") as scratch:
        root = Path(scratch)
        code = {a: _extract(a, root / "a"), b: _extract(b, root / "b")}
        shutil.copytree(HERE, root / "harness" / "benchmarks", ignore=shutil.ignore_patterns("results", "__pycache__"))
        for pair in range(args.pairs):
            for revision in (a, b) if pair % 2 == 0 else (b, a):
                env = {**os.environ, "PYTHONPATH": str(code[revision]), "BENCH_SERVER_PYTHONPATH": str(REPO)}
                command = [sys.executable, "-m", "benchmarks.lifecycle_ab", a, b, "--child", "--regime", args.regime,
                           "--tasks", str(args.tasks), "--rounds", str(args.rounds)]  # fmt: skip
                out = subprocess.run(command, cwd=root / "harness", env=env, check=True, capture_output=True, text=True)
                child = json.loads(out.stdout.strip().splitlines()[-1])
                if not Path(child["code"]).is_relative_to(code[revision]):  # the PYTHONPATH did not win
                    raise RuntimeError(f"{revision}: the child imported {child['code']}")
                results[revision].append(child["samples"])
                print(f"  {revision}: process {pair + 1} of {args.pairs} done", file=sys.stderr, flush=True)
    if args.json is not None:
        options = {key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()}
        args.json.write_text(json.dumps({"options": options, "commits": commits, "results": results}))
    print(f"A = {a} ({commits[a]}), B = {b} ({commits[b]}); regime {args.regime}: {args.tasks} tasks x"
          f" {args.rounds} rounds x {args.pairs} processes per revision")  # fmt: skip
    print(f"{'contestant':30} {'per request: A':>15} {'B':>6} {'B/A':>6}   {'per task: A':>12} {'B':>6} {'B/A':>6}")
    for name in names[1:]:
        row = f"{name:30}"
        for field, width in (("cpu_us_per_request", 15), ("cpu_ms_per_task", 12)):
            ra, rb = ([x for run in results[rev] for x in _ratios(run, name, field)] for rev in (a, b))
            row += f" {median(ra):>{width}.3f} {median(rb):>6.3f} {median(rb) / median(ra):>6.3f}  "
        print(row)
    print("(ratios to the raw aiohttp loop of the same round; medians over every round of every process)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
