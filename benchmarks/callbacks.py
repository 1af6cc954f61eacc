"""Scenario: what callbacks save. Queries per task and detection latency (model seconds) for

- ``polling only``: today's default, no callbacks;
- ``callbacks, all delivered``: ``EvolinkClient(callbacks=receiver)``, polling as the safety net;
- ``callbacks, 20% dropped``: the sandbox drops a fifth of its callbacks (every retry included).

Each contestant fans out the same number of tasks against its own sandbox process (the drop rate
is a server setting) and a receiver served by this process on loopback. Detection latency is the
client's terminal event (``TaskEvent.at``) minus the server's planned finish (CLOCK_MONOTONIC in
both processes, see ``benchmarks._server``).
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from evolink_async import CallbackReceiver, EvolinkClient, PollPolicy, QwenImageEdit

from ._common import Scenario, mean, percentile, target
from ._server import BenchServer

MODEL = "qwen-image-edit"
ESTIMATED = 30.0
IMAGE = "https://example.com/input.png"
POLLING, ALL, DROPPED = "polling only", "callbacks, all delivered", "callbacks, 20% dropped"


@contextlib.asynccontextmanager
async def _receiver() -> AsyncIterator[CallbackReceiver]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    receiver = CallbackReceiver(f"http://127.0.0.1:{port}/hooks", allow_local=True)
    app = web.Application()
    app.add_subapp("/hooks", receiver.aiohttp_app())
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.SockSite(runner, sock)
    await site.start()
    try:
        yield receiver
    finally:
        await runner.cleanup()


async def _contestant(name: str, n: int, time_scale: float) -> dict[str, Any]:
    faults = {"callback_drop_rate": 0.2} if name == DROPPED else {}
    async with contextlib.AsyncExitStack() as stack:
        server = await stack.enter_async_context(
            BenchServer(time_scale=time_scale, seed=31, estimated_times={MODEL: ESTIMATED}, faults=faults)
        )
        receiver = None if name == POLLING else await stack.enter_async_context(_receiver())
        client = await stack.enter_async_context(
            EvolinkClient(
                api_key=server.api_key, base_url=server.base_url, poll_policy=PollPolicy().scaled(time_scale),
                callbacks=receiver, max_concurrent_queries=64,
            )
        )  # fmt: skip
        requests = [QwenImageEdit(prompt="a lighthouse", image_urls=[IMAGE]) for _ in range(n)]
        seen: dict[str, float] = {}
        async with client.fan_out(requests, max_in_flight=n) as events:
            async for event in events:
                if event.is_terminal and event.task is not None:
                    seen[event.task.id] = event.at
        timeline = await server.timeline(list(seen))
        queries = client.tracker.queries_sent
    latencies = [(seen[i] - t["finishes"]) / time_scale for i, t in timeline.items()]
    return {
        "contestant": name,
        "tasks": n,
        "detected": len(seen),
        "queries_per_task": round(queries / n, 3),
        "mean_latency_s": round(mean(latencies), 3),
        "p95_latency_s": round(percentile(latencies, 95), 3),
    }


async def run(quick: bool) -> Scenario:
    time_scale = 0.05
    n = 40 if quick else 300
    scenario = Scenario("callbacks", "Callbacks: queries per task and detection latency (model seconds)")
    scenario.params = {"tasks": n, "time_scale": time_scale, "estimated_time_model_s": ESTIMATED}
    scenario.columns = ["contestant", "tasks", "detected", "queries_per_task", "mean_latency_s", "p95_latency_s"]
    rows = {name: await _contestant(name, n, time_scale) for name in (POLLING, ALL, DROPPED)}
    scenario.rows = list(rows.values())
    polling, every, dropped = rows[POLLING], rows[ALL], rows[DROPPED]
    scenario.targets = [
        target("all delivered: queries per task", goal="<= 0.1", value=every["queries_per_task"],
               passed=every["queries_per_task"] <= 0.1),
        target("all delivered: mean latency below polling's", goal=f"< {polling['mean_latency_s']}",
               value=every["mean_latency_s"], passed=every["mean_latency_s"] < polling["mean_latency_s"]),
        target("20% dropped: every task detected", goal=f"{n}", value=dropped["detected"],
               passed=dropped["detected"] == n),
        target("20% dropped: queries per task below polling's", goal=f"< {polling['queries_per_task']}",
               value=dropped["queries_per_task"], passed=dropped["queries_per_task"] < polling["queries_per_task"]),
    ]  # fmt: skip
    return scenario
