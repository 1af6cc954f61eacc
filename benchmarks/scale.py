"""Scenario 3: 100,000 tasks watched at once by one client's tracker: memory and event-loop lag.

What is measured, honestly:

1. Memory. ``W`` task snapshots are built the way ``images.submit`` builds them (a realistic
   submit answer through the SDK's own parser, unique ids, ``raw`` body kept), each with a
   minimal sink, and all are handed to ``client.tracker.watch``. Their ``estimated_time`` is long
   (one hour), so none of them is due for a query during the measurement: the sandbox does not hold
   these tasks, and a query would only earn 404s. RSS (``/proc/self/statm``, after
   ``gc.collect()``) is read before the snapshots exist, after they exist, and after they are
   watched. "tracker" is what watching adds; "total" also counts the snapshot and sink that the
   tracker keeps alive (``Watch.last`` and the subscriber list), i.e. the whole cost of a
   watched task to an application.
2. Lag. With the ``W`` watches in place, a real ``fan_out`` of ``M`` tasks runs through the same
   client against the sandbox process (real submits and queries: the tracker is busy while it
   holds 100k entries); a ticker coroutine sleeps 10 ms in a loop and records how late it wakes.
   The same fan-out without the 100k watches gives the baseline lag.
"""

from __future__ import annotations

import gc
import time
from typing import Any

from evolink_async import EvolinkClient, PollPolicy, QwenImageEdit, TaskEvent
from evolink_async._models.converter import structure_task  # what images.submit parses answers with

from ._common import LagProbe, Scenario, rss_bytes, target
from ._server import BenchServer

MODEL = "qwen-image-edit"
ESTIMATED = 30.0
PROMPT = "a paper boat on a river"
IMAGE = "https://example.com/input.png"
KIB = 1024


class _Sink:
    __slots__ = ("__weakref__", "last")

    def __init__(self) -> None:
        self.last: TaskEvent | None = None

    def deliver(self, event: TaskEvent) -> None:
        self.last = event

    def fail(self, error: BaseException) -> None:
        pass


def _submit_answer(i: int, created: int) -> dict[str, Any]:
    # The shape of the sandbox's (and API.md A1's) submit answer, unique per task.
    return {
        "created": created,
        "id": f"task-unified-{created}-w{i:07d}",
        "model": MODEL,
        "object": "image.generation.task",
        "progress": 0,
        "status": "pending",
        "task_info": {"can_cancel": True, "estimated_time": 3600},
        "type": "image",
        "usage": {"billing_rule": "per_call", "credits_reserved": 1.0, "user_group": "default"},
    }


async def _fan_out(client: EvolinkClient, m: int, c: int) -> tuple[float, dict[str, int]]:
    started = time.perf_counter()
    requests = (QwenImageEdit(prompt=PROMPT, image_urls=[IMAGE]) for _ in range(m))
    async with client.fan_out(requests, max_in_flight=c) as events:
        async for _event in events:
            pass
    return time.perf_counter() - started, dict(events.summary.outcomes)


async def run(quick: bool) -> Scenario:
    watched = 20_000 if quick else 100_000
    m, c = (300, 100) if quick else (2000, 200)
    time_scale = 0.02  # tasks of the live fan-out last 0.6 s
    scenario = Scenario("scale", f"3. Scale: {watched:,} tasks watched at once")
    scenario.params = {
        "watched": watched,
        "live_fan_out_tasks": m,
        "live_max_in_flight": c,
        "time_scale": time_scale,
        "ticker_interval_ms": 10,
    }
    async with BenchServer(
        time_scale=time_scale, seed=5, estimated_times={MODEL: ESTIMATED}, duration_spread=[1.0, 1.0]
    ) as server:
        client = EvolinkClient(
            api_key=server.api_key, base_url=server.base_url, poll_policy=PollPolicy().scaled(time_scale)
        )
        async with client:
            probe = LagProbe(0.01)
            # Baseline: the live workload alone.
            probe.start()
            base_wall, base_outcomes = await _fan_out(client, m, c)
            await probe.stop()
            baseline = probe.summary()

            gc.collect()
            rss0 = rss_bytes()
            created = int(time.time())
            snapshots = [structure_task(_submit_answer(i, created)) for i in range(watched)]
            sinks = [_Sink() for _ in range(watched)]
            gc.collect()
            rss1 = rss_bytes()
            cpu0, wall0 = time.process_time(), time.perf_counter()
            handles = [
                client.tracker.watch(task.id, sink, snapshot=task) for task, sink in zip(snapshots, sinks, strict=True)
            ]
            watch_cpu, watch_wall = time.process_time() - cpu0, time.perf_counter() - wall0
            gc.collect()
            rss2 = rss_bytes()
            watching_now = client.tracker.watched

            queries0 = client.tracker.queries_sent
            probe.start()
            live_wall, live_outcomes = await _fan_out(client, m, c)
            await probe.stop()
            loaded = probe.summary()
            live_queries = client.tracker.queries_sent - queries0
            still_watched = client.tracker.watched
            gc.collect()
            rss3 = rss_bytes()
            for handle in handles:
                client.tracker.unwatch(handle)
            del handles

    tracker_kib = (rss2 - rss1) / watched / KIB
    caller_kib = (rss1 - rss0) / watched / KIB
    total_kib = (rss2 - rss0) / watched / KIB
    scenario.columns = ["figure", "value"]
    rows: list[tuple[str, Any]] = [
        ("watched tasks (tracker.watched)", f"{watching_now:,}"),
        ("RSS per task: snapshot + sink (caller's objects)", f"{caller_kib:.2f} KiB"),
        ("RSS per task: tracker state (watch, poll state, handle, heap entry)", f"{tracker_kib:.2f} KiB"),
        ("RSS per watched task, total", f"{total_kib:.2f} KiB"),
        ("RSS growth over the live fan-out with the watches held", f"{(rss3 - rss2) / 2**20:.1f} MiB"),
        (
            f"time to watch {watched:,} tasks in one synchronous loop (the loop is blocked that long)",
            f"{watch_wall:.2f} s wall, {watch_cpu:.2f} s CPU ({watch_cpu / watched * 1e6:.1f} us/task)",
        ),
        (f"live fan-out ({m} tasks, max_in_flight {c}) alone: wall", f"{base_wall:.2f} s"),
        ("  loop lag p50 / p99 / max", _lag(baseline)),
        (f"live fan-out with {watched:,} watched: wall", f"{live_wall:.2f} s"),
        ("  loop lag p50 / p99 / max", _lag(loaded)),
        ("  queries sent during it", f"{live_queries:,}"),
        ("  tasks still watched at its end", f"{still_watched:,}"),
    ]
    scenario.rows = [{"figure": k, "value": v} for k, v in rows]
    scenario.extra = {
        "rss_bytes": {"before": rss0, "snapshots_and_sinks": rss1, "watched": rss2, "after_live": rss3},
        "lag_baseline": baseline,
        "lag_with_watches": loaded,
        "outcomes": {"baseline": base_outcomes, "with_watches": live_outcomes},
    }
    scenario.targets.append(
        target(
            "RSS per watched task (total, incl. the snapshot it keeps)",
            goal="<= 3 KiB",
            value=round(total_kib, 2),
            passed=total_kib <= 3.0,
        )
    )
    scenario.targets.append(
        target(
            "RSS per watched task (tracker state only)",
            goal="<= 3 KiB",
            value=round(tracker_kib, 2),
            passed=tracker_kib <= 3.0,
        )
    )
    scenario.targets.append(
        target(
            f"event-loop lag p99 with {watched:,} watched and a live fan-out",
            goal="<= 50 ms",
            value=round(loaded["p99_ms"], 1),
            passed=loaded["p99_ms"] <= 50,
        )
    )
    scenario.notes.append(
        f"The {watched:,} watched tasks are never queried in the window (estimated_time 1 h: first query after"
        " 30 min); the live fan-out makes real submits and queries through the same tracker meanwhile."
        " Lag is measured by a 10 ms ticker. Watching 100k tasks in one synchronous loop blocks the event loop"
        " for its whole duration (reported above); fan_out watches one task per submit, so it never does that."
    )
    return scenario


def _lag(summary: dict[str, float]) -> str:
    return f"{summary['p50_ms']:.1f} / {summary['p99_ms']:.1f} / {summary['max_ms']:.1f} ms"
