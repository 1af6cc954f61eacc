"""Midjourney batch polling: poll requests per task and detection latency, with and without ``fetch_many``.

200 Midjourney tasks (30-60 model seconds each, as an imagine takes) are in flight at once on a
local proxy double (``benchmarks._mj_server``, its own process). Two runs with the same seed and
the same ``PollPolicy``, one after the other so neither slows the other's event loop:

- ``one fetch per task``: ``MidjourneyClient(batch_polling=False)``, a ``GET task/{id}/fetch``
  per due query, as every proxy client does;
- ``batch (list-by-condition)``: the default, where the tracker asks for every task due within
  ``batch_window`` (the policy's spacing near the finish) in one ``POST task/list-by-condition`` of up
  to 50 ids.

Requests are counted by the server. Latency is the time the client saw the terminal state minus
the server's finish time (both CLOCK_MONOTONIC), in model seconds.

``python -m benchmarks --only mj_polling`` or ``python -m benchmarks.mj_polling [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from evolink_async import Imagine, MidjourneyClient, PollPolicy, TaskEvent

from ._common import Scenario, mean, percentile, target

_REPO = Path(__file__).resolve().parent.parent
SINGLE = "one fetch per task"
BATCH = "batch (list-by-condition)"


class _Sink:
    __slots__ = ("__weakref__", "seen", "task_id")

    def __init__(self, task_id: str, seen: dict[str, float]) -> None:
        self.task_id = task_id
        self.seen = seen

    def deliver(self, event: TaskEvent) -> None:
        if event.is_terminal and self.task_id not in self.seen:
            self.seen[self.task_id] = event.at

    def fail(self, error: BaseException) -> None:
        raise RuntimeError(f"watching {self.task_id} failed: {error!r}")


@contextlib.asynccontextmanager
async def _server(time_scale: float) -> Any:
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks._mj_server", "--time-scale", str(time_scale)],
        cwd=_REPO, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        base = ""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = await asyncio.to_thread(proc.stdout.readline)
            if line.startswith("MJ_BASE_URL="):
                base = line.split("=", 1)[1].strip()
            if line.strip() == "ready" or not line:
                break
        if not base:
            raise RuntimeError("the MJ proxy double did not start")
        yield base
    finally:
        proc.terminate()
        try:
            await asyncio.wait_for(asyncio.to_thread(proc.wait), 10)
        except TimeoutError:
            proc.kill()


async def _one_run(name: str, *, n: int, time_scale: float, batch: bool) -> dict[str, Any]:
    policy = PollPolicy().scaled(time_scale)
    seen: dict[str, float] = {}
    sinks: list[_Sink] = []
    async with _server(time_scale) as base:
        mj = MidjourneyClient("bench-key", base_url=base, poll_policy=policy, batch_polling=batch,
                              max_concurrent_queries=64, default_headers={"X-Contestant": name})  # fmt: skip
        async with mj:
            tasks = await asyncio.gather(*(mj.submit(Imagine(prompt=f"a red fox {i}")) for i in range(n)))
            for task in tasks:
                sink = _Sink(task.id, seen)
                sinks.append(sink)
                mj.tracker.watch(task.id, sink, snapshot=task)
            deadline = time.monotonic() + 3 * 60 * time_scale + 30
            while len(seen) < n:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name}: {n - len(seen)} tasks never seen terminal")
                await asyncio.sleep(0.05)
            async with aiohttp.ClientSession() as session:
                async with session.get(f"{base}/_control/timeline") as resp:
                    finishes: dict[str, float] = await resp.json()
                async with session.get(f"{base}/_control/stats") as resp:
                    stats = await resp.json()
    polls = sum(count for who, route, count in stats if who == name and route.startswith("/task/"))
    batches = sum(count for who, route, count in stats if who == name and route == "/task/list-by-condition")
    latencies = [(seen[t.id] - finishes[t.id]) / time_scale for t in tasks]
    return {
        "poll_requests": polls,
        "batch_requests": batches,
        "requests_per_task": polls / n,
        "mean": mean(latencies),
        "p95": percentile(latencies, 95),
        "max": max(latencies),
        "min": min(latencies),
    }


async def run(quick: bool) -> Scenario:
    n = 50 if quick else 200
    time_scale = 0.2
    scenario = Scenario("mj_polling", "Midjourney polling: requests per task and detection latency (model seconds)")
    scenario.params = {"tasks_in_flight": n, "time_scale": time_scale, "duration_model_s": [30, 60],
                       "poll_policy": "PollPolicy().scaled(time_scale)", "fetch_many_limit": 50}  # fmt: skip
    figures = {
        SINGLE: await _one_run(SINGLE, n=n, time_scale=time_scale, batch=False),
        BATCH: await _one_run(BATCH, n=n, time_scale=time_scale, batch=True),
    }
    scenario.columns = ["client", "poll requests", "requests/task", "mean latency s", "p95 latency s", "max latency s"]
    for name, fig in figures.items():
        scenario.rows.append({
            "client": name, "poll requests": fig["poll_requests"], "requests/task": round(fig["requests_per_task"], 2),
            "mean latency s": round(fig["mean"], 3), "p95 latency s": round(fig["p95"], 3),
            "max latency s": round(fig["max"], 3),
        })  # fmt: skip
    ratio = figures[SINGLE]["requests_per_task"] / max(figures[BATCH]["requests_per_task"], 1e-9)
    scenario.targets.append(target("requests per task, single / batch", goal=">= 5x", value=round(ratio, 1),
                                   passed=ratio >= 5))  # fmt: skip
    # "Same latency": the batch client's mean within 10 % (+0.25 model s of noise) of the single one's.
    goal = figures[SINGLE]["mean"] * 1.1 + 0.25
    scenario.targets.append(target(
        "batch mean latency", goal=f"<= {goal:.2f} s (single x 1.1 + 0.25)",
        value=round(figures[BATCH]["mean"], 3), passed=figures[BATCH]["mean"] <= goal,
    ))  # fmt: skip
    scenario.extra["figures"] = figures
    scenario.notes.append(
        f"{n} tasks submitted at once, durations uniform 30-60 model s, time_scale {time_scale}; the proxy double"
        " runs in its own process; the two clients run one after the other against fresh servers (same seed)."
    )
    return scenario


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.mj_polling")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    scenario = asyncio.run(run(args.quick))
    for row in scenario.rows:
        print(row)
    for item in scenario.targets:
        print(item)


if __name__ == "__main__":
    main()
