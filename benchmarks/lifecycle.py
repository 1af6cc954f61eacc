"""Scenario 1: client CPU seconds per task, ``evolink_async`` vs a raw aiohttp loop vs httpx.

Every contestant does the same work per task: one submit, then one query every ``interval``
seconds until the task is terminal, parsing every answer and recording an event whenever the
status or progress changed. The schedule is the same for all (fixed interval, first query one
interval after the submit, tasks of one fixed duration), so only the per-request cost differs.

Contestants:

- ``aiohttp raw``: a hand-written loop on ``aiohttp.ClientSession`` (the floor);
- ``httpx raw``: the same loop on ``httpx.AsyncClient``;
- ``sdk tasks.get loop``: the same loop, but ``client.images.submit`` and ``client.tasks.get``
  (transport, retries, error mapping, cattrs parsing): the pure transport comparison;
- ``sdk tasks.stream``: ``client.images.submit`` then ``client.tasks.stream(task)`` with a
  ``PollPolicy`` pinned to the same fixed interval (the tracker does the polling);
- ``sdk fan_out``: ``client.fan_out(requests, max_in_flight=C)`` with that policy;
- ``sdk stream, caller session``: ``sdk tasks.stream`` on an ``aiohttp.ClientSession`` the
  caller made and passed as ``EvolinkClient(session=...)`` (how a web app shares its pool);
- ``sdk stream, default policy`` and ``sdk fan_out, default policy``: the same with what a user
  gets without choosing, ``PollPolicy().scaled(time_scale)`` (jittered, estimate-driven): their
  queries per task differ from the fixed loop's, so CPU *per request* is what compares them.

- ``openai-python videos`` and ``replicate predictions`` (optional): the same loop on those
  projects' own async clients against a stub of their API's shape on the benchmark server's
  control port; skipped with a note when the package is not installed (not a dependency).

Each row also says how many event-loop iterations (trips through the selector) a request cost.

Two regimes, each against its own sandbox:

- ``long``: tasks of 30 model s queried every 3 model s (about 10 queries per task), where the
  submit and the per-task set-up are amortized over many queries;
- ``short``: the same tasks at ``time_scale`` 0.004 queried every 20 model s (two queries per
  task, plus the submit), where the per-task fixed cost (request construction and validation, idempotency
  key, ``to_body``, the submit, parsing, watch set-up, events) is most of the bill. httpx is
  left out of this regime: its rounds would triple its run time and it sets no target;
- ``short, 16 in flight``: the short regime at ``max_in_flight`` 16 (fewer requests per loop
  wake-up to share it).

Then the first-query cliff: 20 ``fan_out`` runs with the unscaled ``PollPolicy()`` on 30 ms tasks
at ``max_in_flight`` 16 and 100, counting runs in the slow mode (over 1.3 queries per task).

CPU is ``time.process_time()`` of this process only (the sandbox runs in another process).
Rounds run the aiohttp-based contestants one after the other in a rotated order; the httpx loop
runs its rounds after them (its allocations slowed whichever contestant came next). A contestant's ratio is the
median over rounds of its CPU divided by the raw aiohttp loop's CPU in the same round: runs a few
seconds apart share the machine's state, which drifts by 10% and more on a shared machine over a
full run (the raw loop's own rounds spread that much).

To compare two revisions of the SDK (is a change faster, is it slower?), run one regime of this
benchmark for both with ``python -m benchmarks.lifecycle_ab REV_A REV_B`` (interleaved processes), or
``python -m benchmarks.same_process_ab REV_A REV_B`` (both in one process: finer on a shared machine).
"""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import json
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import httpx

from evolink_async import EvolinkClient, PollPolicy, QwenImageEdit

from ._common import Scenario, median, paired_ratio, target
from ._server import BenchServer

MODEL = "qwen-image-edit"
ESTIMATED = 30.0  # model seconds
INTERVAL = 3.0  # model seconds between queries, as Evolink's own tools poll
# Model seconds between queries in the short-task regime: the first query (at 20 s) finds the
# task processing, the second (at 40 s) finds it completed, whatever the loop's lag up to 10
# model s. At time_scale 0.001 that margin was 10 ms real, and a loaded machine (100 tasks in
# flight, other processes) lagged more: 1.0-1.5 queries per task, different per contestant,
# which made CPU per task incomparable. At 0.004 the margin is 40 ms real.
SHORT_INTERVAL = 20.0
SHORT_TIME_SCALE = 0.004
PROMPT = "turn the sky into a watercolour sunset"
IMAGE = "https://example.com/input.png"
TERMINAL = frozenset({"completed", "failed", "cancelled"})
QUERY_ENDPOINT = "GET /v1/tasks/{task_id}"
SUBMIT_ENDPOINT = "POST /v1/images/generations"


class _Run:
    """What one contestant run shares: the server, its interval, the events it recorded."""

    def __init__(self, server: BenchServer, interval: float, concurrency: int) -> None:
        self.server = server
        self.interval = interval
        self.concurrency = concurrency
        self.events: list[tuple[str, str, int]] = []
        self.headers = {"Authorization": f"Bearer {server.api_key}"}
        self.body = {"model": MODEL, "prompt": PROMPT, "image_urls": [IMAGE]}

    def fixed_policy(self) -> PollPolicy:
        estimated_real = ESTIMATED * self.server.kwargs["time_scale"]
        return PollPolicy(
            min_interval=self.interval,
            max_interval=self.interval,
            jitter=0.0,
            first_query=self.interval / estimated_real,
        )

    def default_policy(self) -> PollPolicy:
        """What a user gets without choosing: the default policy on the sandbox's clock."""
        return PollPolicy().scaled(self.server.kwargs["time_scale"])


async def _per_task(run: _Run, n: int, one: Callable[[int], Awaitable[None]]) -> None:
    gate = asyncio.Semaphore(run.concurrency)

    async def guarded(i: int) -> None:
        async with gate:
            await one(i)

    async with asyncio.TaskGroup() as group:
        for i in range(n):
            group.create_task(guarded(i))


async def aiohttp_raw(run: _Run, n: int) -> None:
    base = run.server.base_url
    connector = aiohttp.TCPConnector(limit=run.concurrency)
    async with aiohttp.ClientSession(connector=connector, headers=run.headers) as session:

        async def one(_i: int) -> None:
            async with session.post(f"{base}/v1/images/generations", json=run.body) as resp:
                data = json.loads(await resp.read())
                if resp.status != 200:
                    raise RuntimeError(f"submit answered {resp.status}: {data}")
            task_id, last = data["id"], (data["status"], data.get("progress"))
            run.events.append((task_id, last[0], last[1]))
            while last[0] not in TERMINAL:
                await asyncio.sleep(run.interval)
                async with session.get(f"{base}/v1/tasks/{task_id}") as resp:
                    data = json.loads(await resp.read())
                    if resp.status != 200:
                        raise RuntimeError(f"query answered {resp.status}: {data}")
                now = (data["status"], data.get("progress"))
                if now != last:
                    last = now
                    run.events.append((task_id, now[0], now[1]))

        await _per_task(run, n, one)


async def httpx_raw(run: _Run, n: int) -> None:
    base = run.server.base_url
    limits = httpx.Limits(max_connections=run.concurrency, max_keepalive_connections=run.concurrency)
    async with httpx.AsyncClient(headers=run.headers, limits=limits) as client:

        async def one(_i: int) -> None:
            resp = await client.post(f"{base}/v1/images/generations", json=run.body)
            data = resp.json()
            if resp.status_code != 200:
                raise RuntimeError(f"submit answered {resp.status_code}: {data}")
            task_id, last = data["id"], (data["status"], data.get("progress"))
            run.events.append((task_id, last[0], last[1]))
            while last[0] not in TERMINAL:
                await asyncio.sleep(run.interval)
                resp = await client.get(f"{base}/v1/tasks/{task_id}")
                data = resp.json()
                if resp.status_code != 200:
                    raise RuntimeError(f"query answered {resp.status_code}: {data}")
                now = (data["status"], data.get("progress"))
                if now != last:
                    last = now
                    run.events.append((task_id, now[0], now[1]))

        await _per_task(run, n, one)


async def _peer_loop(
    run: _Run, n: int, create: Callable[[], Awaitable[Any]], get: Callable[[str], Awaitable[Any]], done: frozenset[str]
) -> None:
    """The raw loop's schedule on a peer's own async client: create, then one ``get`` per interval."""

    async def one(_i: int) -> None:
        task = await create()
        last = (task.status, getattr(task, "progress", None))
        run.events.append((task.id, str(last[0]), last[1] or 0))
        while last[0] not in done:
            await asyncio.sleep(run.interval)
            task = await get(task.id)
            now = (task.status, getattr(task, "progress", None))
            if now != last:
                last = now
                run.events.append((task.id, str(now[0]), now[1] or 0))

    await _per_task(run, n, one)


async def openai_videos(run: _Run, n: int) -> None:
    import openai  # optional: only when installed (see OPTIONAL_PEERS)

    limits = httpx.Limits(max_connections=run.concurrency, max_keepalive_connections=run.concurrency)
    async with openai.AsyncOpenAI(
        api_key="sk-stub", base_url=f"{run.server.control_url}/v1", max_retries=0,
        http_client=openai.DefaultAsyncHttpxClient(limits=limits),
    ) as client:  # fmt: skip
        await _peer_loop(
            run, n, lambda: client.videos.create(model="sora-2", prompt=PROMPT), client.videos.retrieve,
            frozenset({"completed", "failed"}),
        )  # fmt: skip


async def replicate_predictions(run: _Run, n: int) -> None:
    import replicate  # optional: only when installed (see OPTIONAL_PEERS)

    client = replicate.Client(api_token="r8_stub", base_url=run.server.control_url)
    await _peer_loop(
        run, n, lambda: client.predictions.async_create(version="stub-version", input={"prompt": PROMPT}),
        client.predictions.async_get, frozenset({"succeeded", "failed", "canceled"}),
    )  # fmt: skip


def _sdk_client(run: _Run, **kwargs: Any) -> EvolinkClient:
    server = run.server
    return EvolinkClient(api_key=server.api_key, base_url=server.base_url, max_connections=run.concurrency, **kwargs)


async def sdk_get_loop(run: _Run, n: int) -> None:
    async with _sdk_client(run) as client:

        async def one(_i: int) -> None:
            task = await client.images.submit(QwenImageEdit(prompt=PROMPT, image_urls=[IMAGE]))
            run.events.append((task.id, task.status.value, task.progress))
            last = task
            while not last.is_terminal:
                await asyncio.sleep(run.interval)
                task = await client.tasks.get(task)
                if task.status != last.status or task.progress != last.progress:
                    run.events.append((task.id, task.status.value, task.progress))
                last = task

        await _per_task(run, n, one)


async def sdk_stream(run: _Run, n: int) -> None:
    async with _sdk_client(run, poll_policy=run.fixed_policy()) as client:

        async def one(_i: int) -> None:
            task = await client.images.submit(QwenImageEdit(prompt=PROMPT, image_urls=[IMAGE]))
            run.events.append((task.id, task.status.value, task.progress))
            async for event in client.tasks.stream(task):
                run.events.append((task.id, event.kind.value, event.progress))

        await _per_task(run, n, one)


async def sdk_stream_caller_session(run: _Run, n: int) -> None:
    # The caller's own pool, as a web app passes the session it already has; the SDK adds the
    # key per request and never closes it.
    connector = aiohttp.TCPConnector(limit=run.concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        client = EvolinkClient(
            api_key=run.server.api_key,
            base_url=run.server.base_url,
            session=session,
            poll_policy=run.fixed_policy(),
        )
        async with client:

            async def one(_i: int) -> None:
                task = await client.images.submit(QwenImageEdit(prompt=PROMPT, image_urls=[IMAGE]))
                run.events.append((task.id, task.status.value, task.progress))
                async for event in client.tasks.stream(task):
                    run.events.append((task.id, event.kind.value, event.progress))

            await _per_task(run, n, one)


async def sdk_stream_default_policy(run: _Run, n: int) -> None:
    async with _sdk_client(run, poll_policy=run.default_policy()) as client:

        async def one(_i: int) -> None:
            task = await client.images.submit(QwenImageEdit(prompt=PROMPT, image_urls=[IMAGE]))
            run.events.append((task.id, task.status.value, task.progress))
            async for event in client.tasks.stream(task):
                run.events.append((task.id, event.kind.value, event.progress))

        await _per_task(run, n, one)


async def sdk_fan_out_default_policy(run: _Run, n: int) -> None:
    await sdk_fan_out(run, n, policy=run.default_policy())


async def sdk_fan_out(run: _Run, n: int, *, policy: PollPolicy | None = None) -> None:
    async with _sdk_client(run, poll_policy=policy or run.fixed_policy()) as client:
        requests = (QwenImageEdit(prompt=PROMPT, image_urls=[IMAGE]) for _ in range(n))
        async with client.fan_out(requests, max_in_flight=run.concurrency, buffer_size=256) as events:
            async for event in events:
                run.events.append((str(event.key), event.kind.value, event.progress))
        if events.summary.outcomes.get("completed") != n:
            raise RuntimeError(f"fan_out ended with {events.summary.outcomes}")


CONTESTANTS: dict[str, Callable[[_Run, int], Awaitable[None]]] = {
    "aiohttp raw": aiohttp_raw,
    "httpx raw": httpx_raw,
    "sdk tasks.get loop": sdk_get_loop,
    "sdk tasks.stream": sdk_stream,
    "sdk fan_out": sdk_fan_out,
    "sdk stream, caller session": sdk_stream_caller_session,
    "sdk stream, default policy": sdk_stream_default_policy,
    "sdk fan_out, default policy": sdk_fan_out_default_policy,
}
#: Peers users would pick instead, on their own async clients against a stub of their API's shape
#: (benchmarks/_server.py): measured like the raw loops when installed, skipped with a note when
#: not (never dependencies of this project). Both are httpx-based.
OPTIONAL_PEERS: dict[str, tuple[str, Callable[[_Run, int], Awaitable[None]]]] = {
    "openai-python videos": ("openai", openai_videos),
    "replicate predictions": ("replicate", replicate_predictions),
}
BASELINE = "aiohttp raw"
HTTPX = "httpx raw"
QUERY_ENDPOINTS = (QUERY_ENDPOINT, "GET /v1/predictions/{id}", "GET /v1/videos/{id}")
SUBMIT_ENDPOINTS = (SUBMIT_ENDPOINT, "POST /v1/predictions", "POST /v1/videos")
SDK_CONTESTANTS = (
    "sdk tasks.get loop", "sdk tasks.stream", "sdk fan_out", "sdk stream, caller session",
    "sdk stream, default policy", "sdk fan_out, default policy",
)  # fmt: skip
#: Contestants whose schedule is not the fixed interval: their queries per task differ from the
#: raw loop's, so CPU per request (not per task) is what compares them with it.
DEFAULT_POLICY = ("sdk stream, default policy", "sdk fan_out, default policy")


class _Regime:
    """One load shape: its sandbox speed, its query interval, its size and its contestants."""

    def __init__(
        self, name: str, *, n: int, rounds: int, time_scale: float, interval_model_s: float, contestants: list[str],
        concurrency: int = 100,
    ) -> None:
        self.name = name
        self.concurrency = concurrency
        self.n = n
        self.rounds = rounds
        self.time_scale = time_scale
        self.interval_model_s = interval_model_s
        self.interval = interval_model_s * time_scale
        self.contestants = contestants


class _LoopIterations:
    """Counts the running loop's trips through its selector (one per event-loop iteration) while
    entered: every wake-up, whether for a timer, an answer or a ready callback, is one."""

    def __init__(self) -> None:
        self.count = 0
        self._selector: Any = None

    def __enter__(self) -> None:
        selector = getattr(asyncio.get_running_loop(), "_selector", None)
        if selector is None:  # not a selector loop (uvloop): reported as 0
            return
        select = selector.select

        def counting(timeout: float | None = None) -> Any:
            self.count += 1
            return select(timeout)

        selector.select = counting  # an instance attribute, shadowing the class's method
        self._selector = selector

    def __exit__(self, *_: object) -> None:
        if self._selector is not None:
            del self._selector.select
            self._selector = None


async def _measure(server: BenchServer, name: str, n: int, interval: float, concurrency: int) -> dict[str, float]:
    run = _Run(server, interval, concurrency)
    before = await server.stats()
    gc.collect()
    iterations = _LoopIterations()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    with iterations:
        await CONTESTANTS[name](run, n)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    after = await server.stats()
    queries = sum(after["requests"].get(e, 0) - before["requests"].get(e, 0) for e in QUERY_ENDPOINTS)
    submits = sum(after["requests"].get(e, 0) - before["requests"].get(e, 0) for e in SUBMIT_ENDPOINTS)
    return {
        "cpu_ms_per_task": cpu / n * 1000,
        "cpu_us_per_request": cpu / max(1, queries + submits) * 1e6,
        "loop_iterations_per_request": iterations.count / max(1, queries + submits),
        "wall_s": wall,
        "queries_per_task": queries / n,
        "submits": submits,
        "events_per_task": len(run.events) / n,
        "server_cpu_ms_per_task": (after["cpu_seconds"] - before["cpu_seconds"]) / n * 1000,
    }


async def _run_regime(regime: _Regime) -> dict[str, list[dict[str, float]]]:
    n, interval, concurrency = regime.n, regime.interval, regime.concurrency
    async with BenchServer(
        time_scale=regime.time_scale, seed=11, estimated_times={MODEL: ESTIMATED}, duration_spread=[1.0, 1.0]
    ) as server:
        # One unmeasured warm-up per contestant: imports, first connections, code paths.
        for name in regime.contestants:
            await _measure(server, name, min(n, 50), interval, concurrency)
        samples: dict[str, list[dict[str, float]]] = {name: [] for name in regime.contestants}
        # httpx runs in a block of its own after the others: it allocates about ten times as
        # much, and whichever contestant followed it in a rotation ran slower for it.
        httpx_based = [name for name in regime.contestants if name == HTTPX or name in OPTIONAL_PEERS]
        names = [name for name in regime.contestants if name not in httpx_based]
        for r in range(regime.rounds):
            order = names[r % len(names) :] + names[: r % len(names)]
            for name in order:
                samples[name].append(await _measure(server, name, n, interval, concurrency))
        for name in httpx_based:
            for _ in range(regime.rounds):
                samples[name].append(await _measure(server, name, n, interval, concurrency))
    return samples


#: The first-query cliff (issue 25): the unscaled default policy (min_interval 1 s) on tasks of
#: 30 ms. A run whose first queries race the finishes pays a whole min_interval per lost race:
#: 1.5-1.9 queries per task instead of 1.0. Above this many queries per task a run is "slow mode".
SLOW_MODE_QUERIES_PER_TASK = 1.3
CLIFF_TIME_SCALE = 0.001


async def _slow_mode_runs(concurrency: int, runs: int, n: int) -> list[dict[str, float]]:
    """``runs`` fan-outs of ``n`` tasks with ``PollPolicy()`` (unscaled) at time scale 0.001."""
    samples = []
    async with BenchServer(
        time_scale=CLIFF_TIME_SCALE, seed=13, estimated_times={MODEL: ESTIMATED}, duration_spread=[1.0, 1.0]
    ) as server:
        for _ in range(runs):
            run = _Run(server, 0.0, concurrency)
            before = await server.stats()
            wall0 = time.perf_counter()
            await sdk_fan_out(run, n, policy=PollPolicy())
            wall = time.perf_counter() - wall0
            after = await server.stats()
            queries = after["requests"].get(QUERY_ENDPOINT, 0) - before["requests"].get(QUERY_ENDPOINT, 0)
            samples.append({"queries_per_task": queries / n, "wall_s": wall})
    return samples


async def run(quick: bool) -> Scenario:
    everyone = list(CONTESTANTS)
    skipped = []
    for name, (module, contestant) in OPTIONAL_PEERS.items():
        if importlib.util.find_spec(module) is None:
            skipped.append(f"{name} skipped: `{module}` is not installed (pip install {module} to measure it)")
            print(f"   note: {skipped[-1]}", file=sys.stderr)
        else:
            CONTESTANTS[name] = contestant
            everyone.append(name)
    short_contestants = [name for name in everyone if name != HTTPX and name not in OPTIONAL_PEERS]
    regimes = [
        _Regime(
            "long", n=150 if quick else 1000, rounds=1 if quick else 7, time_scale=0.01,
            interval_model_s=INTERVAL, contestants=everyone,
        ),
        _Regime(
            "short", n=300 if quick else 1500, rounds=1 if quick else 7, time_scale=SHORT_TIME_SCALE,
            interval_model_s=SHORT_INTERVAL, contestants=short_contestants,
        ),
        _Regime(
            "short, 16 in flight", n=100 if quick else 400, rounds=1 if quick else 5, time_scale=SHORT_TIME_SCALE,
            interval_model_s=SHORT_INTERVAL, contestants=short_contestants, concurrency=16,
        ),
    ]
    scenario = Scenario("lifecycle", "1. Lifecycle overhead: client CPU per task and per request")
    scenario.params = {
        "regimes": ", ".join(
            f"{r.name}: {r.n} tasks x {r.rounds} rounds at time_scale {r.time_scale:g},"
            f" one query per {r.interval_model_s:g} model s, {r.concurrency} in flight"
            for r in regimes
        ),
        "task_duration_model_s": ESTIMATED,
        "max_connections": "as many as in flight",
    }
    scenario.columns = [
        "regime",
        "contestant",
        "client CPU ms/task (median)",
        "min..max",
        "x aiohttp raw",
        "client CPU us/request",
        "x aiohttp raw /request",
        "loop iterations/request",
        "queries/task",
        "events/task",
        "wall s/run",
        "server CPU ms/task",
    ]
    scenario.extra["samples"] = {}
    for regime in regimes:
        samples = await _run_regime(regime)
        scenario.extra["samples"][regime.name] = samples

        def ratio(
            name: str, baseline: str, field: str = "cpu_ms_per_task",
            samples: dict[str, list[dict[str, float]]] = samples,
        ) -> float:
            return paired_ratio([s[field] for s in samples[name]], [s[field] for s in samples[baseline]])

        for name in regime.contestants:
            cpu = [s["cpu_ms_per_task"] for s in samples[name]]
            scenario.rows.append(
                {
                    "regime": regime.name,
                    "contestant": name,
                    "client CPU ms/task (median)": round(median(cpu), 3),
                    "min..max": f"{min(cpu):.3f}..{max(cpu):.3f}",
                    "x aiohttp raw": round(ratio(name, BASELINE), 2),
                    "client CPU us/request": round(median(s["cpu_us_per_request"] for s in samples[name]), 1),
                    "x aiohttp raw /request": round(ratio(name, BASELINE, "cpu_us_per_request"), 2),
                    "loop iterations/request": round(
                        median(s["loop_iterations_per_request"] for s in samples[name]), 2
                    ),
                    "queries/task": round(median(s["queries_per_task"] for s in samples[name]), 2),
                    "events/task": round(median(s["events_per_task"] for s in samples[name]), 2),
                    "wall s/run": round(median(s["wall_s"] for s in samples[name]), 2),
                    "server CPU ms/task": round(median(s["server_cpu_ms_per_task"] for s in samples[name]), 3),
                }
            )
        for name in SDK_CONTESTANTS:
            per_request = ratio(name, BASELINE, "cpu_us_per_request")
            scenario.targets.append(
                target(
                    f"{regime.name}: {name}: CPU per request vs aiohttp raw", goal="<= 1.15x",
                    value=round(per_request, 3), passed=per_request <= 1.15,
                )
            )
            if regime.name.startswith("short"):
                per_task = ratio(name, BASELINE)
                scenario.targets.append(
                    target(
                        f"{regime.name}: {name}: CPU per task vs aiohttp raw", goal="<= 1.2x",
                        value=round(per_task, 3), passed=per_task <= 1.2,
                        note="more queries per task by design" if name in DEFAULT_POLICY else "",
                    )
                )
            if HTTPX in regime.contestants:
                vs_httpx = ratio(name, HTTPX)
                scenario.targets.append(
                    target(
                        f"{regime.name}: {name}: CPU vs httpx raw", goal="< 1.0x", value=round(vs_httpx, 3),
                        passed=vs_httpx < 1.0,
                    )
                )
        scenario.notes.append(
            f"{regime.name}: each run {regime.n} tasks of {ESTIMATED:g} model s at time_scale {regime.time_scale:g}"
            f" ({ESTIMATED * regime.time_scale * 1000:g} ms real), at most {regime.concurrency} at once, one query"
            f" every {regime.interval_model_s:g} model s ({regime.interval * 1000:g} ms real) for every contestant"
            f" but the default-policy ones (PollPolicy().scaled({regime.time_scale:g}))."
        )
    runs, cliff_n = (3, 150) if quick else (20, 300)
    scenario.extra["slow_mode"] = {}
    for concurrency in (16, 100):
        cliff = await _slow_mode_runs(concurrency, runs, cliff_n)
        scenario.extra["slow_mode"][str(concurrency)] = cliff
        slow = sum(1 for s in cliff if s["queries_per_task"] > SLOW_MODE_QUERIES_PER_TASK)
        spread = [s["queries_per_task"] for s in cliff]
        scenario.targets.append(
            target(
                f"first-query cliff: slow-mode runs at max_in_flight {concurrency}", goal=f"0 in {runs}",
                value=slow, passed=slow == 0,
                note=f"queries/task {min(spread):.2f}..{max(spread):.2f}",
            )
        )
    scenario.notes.append(
        f"First-query cliff: {runs} fan_out runs of {cliff_n} tasks of {ESTIMATED * CLIFF_TIME_SCALE * 1000:g} ms"
        f" with the unscaled PollPolicy() (min_interval 1 s) at max_in_flight 16 and 100; a run with more than"
        f" {SLOW_MODE_QUERIES_PER_TASK:g} queries per task is in the slow mode."
    )
    scenario.notes.extend(skipped)
    if importlib.util.find_spec("opentelemetry") is not None:
        scenario.notes.append(
            "opentelemetry-api is installed and no SDK is configured: the clients install no telemetry hook,"
            " the path taken without the package (the telemetry scenario measures both side by side)."
        )
    scenario.notes.append(
        "Contestants rotated between rounds after an unmeasured warm-up. CPU: median of the rounds;"
        " ratios: median of the per-round ratios to the same round's raw loop. Loop iterations: trips"
        " through the event loop's selector during a run, per HTTP request."
    )
    return scenario
