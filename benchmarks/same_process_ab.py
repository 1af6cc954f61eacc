"""``python -m benchmarks.same_process_ab REV_A REV_B``: two revisions of the SDK in ONE process.

``lifecycle_ab`` alternates processes (A B, B A, ...); on a shared 2-core machine the processes of
one side spread by 5-15%, so a change of 1-3% takes many processes to show. Here both revisions
run in the same process, their measurements interleaved round by round with the raw aiohttp loop's:
the machine's drift hits A, B and the baseline alike, and every figure is paired within a round.

- Each revision's ``evolink_async`` is extracted with ``git archive`` and imported under another
  name (``evolink_rev_a``, ``evolink_rev_b``): the package imports itself only relatively, so the
  copies share nothing but the ``evolink_async`` logger. Both share one sandbox (this checkout's,
  another process).
- ``--mode lifecycle`` (default): the lifecycle contestants (``benchmarks/lifecycle.py``) of one
  regime, each for A and B, and the raw loop, in a rotated order per round. Prints the ratios to
  the raw loop of the same round (per request and per task) and the paired B/A.
- ``--mode query``: the query path alone: 16 callers query one task (completed, or still running
  with ``--running``) with ``client.tasks.get`` and with ``Transport.exchange``, against a raw
  ``aiohttp`` GET; prints CPU per request above the raw GET's and the paired B - A in microseconds.

The figures compare two revisions; they are not the quiet machine's absolute ones (``python -m
benchmarks --only lifecycle`` gives those).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import aiohttp

from . import lifecycle
from ._server import BenchServer
from .lifecycle_ab import REGIMES

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
QUERY_CALLERS = 16


def _extract(revision: str, into: Path, name: str) -> None:
    """``revision``'s ``evolink_async`` as the package ``name`` under ``into``."""
    scratch = into / f".{name}"
    scratch.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", revision, "evolink_async"], check=True,
                             capture_output=True).stdout  # fmt: skip
    subprocess.run(["tar", "-x", "-C", str(scratch)], input=archive, check=True)
    (scratch / "evolink_async").rename(into / name)


def _use(sdk: ModuleType) -> None:
    """Point the lifecycle contestants at one revision (they read these module globals per run)."""
    lifecycle.EvolinkClient, lifecycle.PollPolicy, lifecycle.QwenImageEdit = (  # type: ignore[misc]
        sdk.EvolinkClient, sdk.PollPolicy, sdk.QwenImageEdit,
    )  # fmt: skip


async def _lifecycle(sdks: dict[str, ModuleType], regime: str, tasks: int, rounds: int, names: list[str]) -> None:
    time_scale, interval_model_s, concurrency = REGIMES[regime]
    interval = interval_model_s * time_scale
    slots: list[tuple[str, str, ModuleType | None]] = [("raw", lifecycle.BASELINE, None)]
    slots += [(f"{side}:{name}", name, sdk) for name in names for side, sdk in sdks.items()]
    samples: dict[str, list[dict[str, float]]] = {key: [] for key, _, _ in slots}
    async with BenchServer(
        time_scale=time_scale, seed=11, estimated_times={lifecycle.MODEL: lifecycle.ESTIMATED},
        duration_spread=[1.0, 1.0],
    ) as server:  # fmt: skip
        for _key, name, sdk in slots:  # warm-up, unmeasured
            if sdk is not None:
                _use(sdk)
            await lifecycle._measure(server, name, min(tasks, 50), interval, concurrency)
        for r in range(rounds):
            for key, name, sdk in slots[r % len(slots) :] + slots[: r % len(slots)]:
                if sdk is not None:
                    _use(sdk)
                samples[key].append(await lifecycle._measure(server, name, tasks, interval, concurrency))
            print(f"  round {r + 1} of {rounds} done", file=sys.stderr, flush=True)
    print(f"{'contestant':30} {'per request: A':>15} {'B':>6} {'B/A':>6}   {'per task: A':>12} {'B':>6} {'B/A':>6}"
          "   queries/task A, B")  # fmt: skip
    for name in names:
        row = f"{name:30}"
        for field, width in (("cpu_us_per_request", 15), ("cpu_ms_per_task", 12)):
            a, b, raw = (samples[key] for key in (f"A:{name}", f"B:{name}", "raw"))
            ra = statistics.median(x[field] / y[field] for x, y in zip(a, raw, strict=True))
            rb = statistics.median(x[field] / y[field] for x, y in zip(b, raw, strict=True))
            paired = statistics.median(y[field] / x[field] for x, y in zip(a, b, strict=True))
            row += f" {ra:>{width}.3f} {rb:>6.3f} {paired:>6.3f}  "
        queries = [statistics.median(s["queries_per_task"] for s in samples[f"{side}:{name}"]) for side in "AB"]
        print(f"{row} {queries[0]:.2f}, {queries[1]:.2f}")
    print("(ratios to the raw aiohttp loop of the same round; B/A paired by round; medians over the rounds)")


async def _query(sdks: dict[str, ModuleType], queries: int, rounds: int, running: bool) -> None:
    async with BenchServer(
        time_scale=0.01 if running else 0.001, seed=11, estimated_times={lifecycle.MODEL: 3000.0 if running else 30.0},
        duration_spread=[1.0, 1.0],
    ) as server:  # fmt: skip
        calls: dict[str, Callable[[], Awaitable[Any]]] = {}
        clients = []
        task_id = ""
        for side, sdk in sdks.items():
            client = sdk.EvolinkClient(
                server.api_key, base_url=server.base_url, max_connections=QUERY_CALLERS,
                poll_policy=sdk.PollPolicy().scaled(0.001),
            )  # fmt: skip
            await client.__aenter__()
            clients.append(client)
            task = await client.images.submit(sdk.QwenImageEdit(prompt=lifecycle.PROMPT, image_urls=[lifecycle.IMAGE]))
            if not running:
                task = await client.tasks.wait(task, timeout=60)
            task_id = task.id
            url = f"{server.base_url}/v1/tasks/{task_id}"

            def calls_of(client: Any, task_id: str, url: str) -> dict[str, Callable[[], Awaitable[Any]]]:
                transport = client._transport
                return {
                    "tasks.get": lambda: client.tasks.get(task_id),
                    "exchange": lambda: transport.exchange("GET", url, retry_safe=True),
                }

            for what, call in calls_of(client, task_id, url).items():
                calls[f"{side} {what}"] = call
        raw = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=QUERY_CALLERS), headers={"Authorization": f"Bearer {server.api_key}"}
        )
        url = f"{server.base_url}/v1/tasks/{task_id}"

        async def raw_get() -> Any:
            async with raw.get(url) as resp:
                data = json.loads(await resp.read())
                if resp.status != 200:
                    raise RuntimeError(f"query answered {resp.status}: {data}")
            return data

        calls = {"raw GET": raw_get, **calls}

        async def send(call: Callable[[], Awaitable[Any]], total: int) -> None:
            async def caller(count: int) -> None:
                for _ in range(count):
                    await call()

            async with asyncio.TaskGroup() as group:
                for _ in range(QUERY_CALLERS):
                    group.create_task(caller(total // QUERY_CALLERS))

        try:
            for call in calls.values():  # warm-up, unmeasured
                await send(call, 640)
            names = list(calls)
            cpu: dict[str, list[float]] = {name: [] for name in names}
            for r in range(rounds):
                for name in names[r % len(names) :] + names[: r % len(names)]:
                    start = time.process_time()
                    await send(calls[name], queries)
                    cpu[name].append((time.process_time() - start) / queries * 1e6)
        finally:
            await raw.close()
            for client in clients:
                await client.__aexit__(None, None, None)
    state = "running" if running else "completed"
    print(f"{QUERY_CALLERS} callers querying one {state} task, {queries} queries x {rounds} rounds")
    for name in names:
        over = statistics.median(x - y for x, y in zip(cpu[name], cpu["raw GET"], strict=True))
        print(f"{name:14} {statistics.median(cpu[name]):7.1f} us/request  ({over:+6.1f} over the raw GET)")
    for what in ("tasks.get", "exchange"):
        diffs = [b - a for a, b in zip(cpu[f"A {what}"], cpu[f"B {what}"], strict=True)]
        low, _, high = statistics.quantiles(diffs, n=4)
        print(f"B - A {what:10} {statistics.median(diffs):+6.2f} us/request (quartiles {low:+.2f} .. {high:+.2f})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.same_process_ab", description=__doc__.split("\n\n")[0])
    parser.add_argument("revisions", nargs=2, metavar="REV", help="two git revisions (A, then B)")
    parser.add_argument("--mode", choices=("lifecycle", "query"), default="lifecycle")
    parser.add_argument("--regime", choices=sorted(REGIMES), default="short16", help="lifecycle mode")
    parser.add_argument("--tasks", type=int, default=400, help="tasks per contestant run (lifecycle mode)")
    parser.add_argument("--contestants", default="", help="lifecycle contestants, separated by |")
    parser.add_argument("--queries", type=int, default=3200, help="queries per measurement (query mode)")
    parser.add_argument("--running", action="store_true", help="query mode: a task still running, not completed")
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args(argv)
    commits = [subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", rev], check=True,
                              capture_output=True, text=True).stdout.strip() for rev in args.revisions]  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="same-process-ab-") as scratch:
        root = Path(scratch)
        sdks = {}
        for side, revision in zip("AB", args.revisions, strict=True):
            name = f"evolink_rev_{side.lower()}"
            _extract(revision, root, name)
            sys.path.insert(0, str(root))
            sdks[side] = importlib.import_module(name)
        print(f"A = {args.revisions[0]} ({commits[0]}), B = {args.revisions[1]} ({commits[1]})")
        if args.mode == "query":
            asyncio.run(_query(sdks, args.queries, args.rounds, args.running))
        else:
            names = args.contestants.split("|") if args.contestants else list(lifecycle.SDK_CONTESTANTS)
            print(f"regime {args.regime}: {args.tasks} tasks x {args.rounds} rounds")
            asyncio.run(_lifecycle(sdks, args.regime, args.tasks, args.rounds, names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
