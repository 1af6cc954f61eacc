"""Scenario 4: fan-out utilization: wall time of N tasks of fixed duration D at C in flight.

The ideal is ceil(N / C) * D: every slot busy all the time, each task detected the instant it ends
and replaced at once. Utilization = ideal / measured wall time. The sandbox gives every task
exactly D (``duration_spread=(1, 1)``); the client uses ``PollPolicy().scaled(time_scale)``, the
default policy on the sandbox's clock.
"""

from __future__ import annotations

import math
import time

from evolink_async import EvolinkClient, PollPolicy, QwenImageEdit

from ._common import Scenario, mean, percentile, target
from ._server import BenchServer

MODEL = "qwen-image-edit"
ESTIMATED = 30.0  # model seconds: D
PROMPT = "a fox in the snow"
IMAGE = "https://example.com/input.png"


async def run(quick: bool) -> Scenario:
    n, c, d_real = (400, 40, 0.5) if quick else (2000, 200, 1.0)
    time_scale = d_real / ESTIMATED
    scenario = Scenario("fan_out", "4. Fan-out utilization")
    scenario.params = {"tasks": n, "max_in_flight": c, "duration_real_s": d_real, "time_scale": time_scale}
    ideal = math.ceil(n / c) * d_real
    async with BenchServer(
        time_scale=time_scale, seed=3, estimated_times={MODEL: ESTIMATED}, duration_spread=[1.0, 1.0]
    ) as server:
        async with EvolinkClient(
            api_key=server.api_key,
            base_url=server.base_url,
            poll_policy=PollPolicy().scaled(time_scale),
            max_connections=100,
        ) as client:
            seen: dict[str, float] = {}
            peak_in_flight = 0
            requests = (QwenImageEdit(prompt=PROMPT, image_urls=[IMAGE]) for _ in range(n))
            cpu0, started = time.process_time(), time.perf_counter()
            async with client.fan_out(requests, max_in_flight=c, buffer_size=max(64, c)) as events:
                async for event in events:
                    peak_in_flight = max(peak_in_flight, events.in_flight)
                    if event.is_terminal and event.task is not None:
                        seen[event.task.id] = event.at
            wall = time.perf_counter() - started
            cpu = time.process_time() - cpu0
            queries = client.tracker.queries_sent
            outcomes = dict(events.summary.outcomes)
        timeline = await server.timeline(list(seen))
    latencies = [seen[t] - timeline[t]["finishes"] for t in seen]
    latency = f"{mean(latencies) * 1000:.0f} / {percentile(latencies, 95) * 1000:.0f} ms"
    utilization = ideal / wall
    scenario.columns = ["figure", "value"]
    rows = [
        ("tasks / max_in_flight / D", f"{n} / {c} / {d_real:g} s"),
        ("ideal ceil(N/C)*D", f"{ideal:.2f} s"),
        ("measured wall", f"{wall:.2f} s"),
        ("utilization (ideal / wall)", f"{utilization:.1%}"),
        ("outcomes", ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items()))),
        ("peak in flight seen by the consumer", str(peak_in_flight)),
        ("detection latency mean / p95 (real)", latency),
        ("queries per task", f"{queries / n:.2f}"),
        ("client CPU", f"{cpu:.2f} s ({cpu / n * 1000:.2f} ms/task)"),
    ]
    scenario.rows = [{"figure": k, "value": v} for k, v in rows]
    scenario.extra = {"wall_s": wall, "ideal_s": ideal, "utilization": utilization, "outcomes": outcomes}
    scenario.targets.append(
        target("utilization", goal=">= 95%", value=round(utilization * 100, 1), passed=utilization >= 0.95)
    )
    if outcomes.get("completed") != n:
        scenario.notes.append(f"WARNING: not every task completed: {outcomes}")
    scenario.notes.append(
        f"D = {ESTIMATED:g} model s at time_scale {time_scale:.4g}; each slot loses the submit round trip and"
        " the detection latency of every task it runs, so that latency bounds utilization."
    )
    return scenario
