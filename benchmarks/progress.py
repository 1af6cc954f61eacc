"""Scenario: progress for people. What a steady cadence costs, and what the browser relay costs.

- **Cadence:** the same tasks streamed under the economical default policy, with
  ``progress_every`` (one query per model second), and with ``progress_every`` while callbacks
  report the end: queries per task and distinct progress events per task.
- **Relay:** ``ProgressRelay`` serving many ``EventSource`` viewers of one task (the viewers run in
  a process of their own, the sandbox in a third): this process's CPU per delivered frame, and
  the watches the viewers cost (one per task, however many viewers).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import socket
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from evolink_async import CallbackReceiver, EventKind, EvolinkClient, PollPolicy, ProgressRelay, QwenImageEdit

from ._common import Scenario, target
from ._server import BenchServer

MODEL = "qwen-image-edit"
ESTIMATED = 30.0
IMAGE = "https://example.com/input.png"
ECONOMICAL, STEADY, STEADY_CALLBACKS = "economical (default)", "progress_every=1 s", "progress_every=1 s + callbacks"


@contextlib.asynccontextmanager
async def _served(app: web.Application) -> AsyncIterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    try:
        yield sock.getsockname()[1]
    finally:
        await runner.cleanup()


async def _cadence(name: str, n: int, time_scale: float) -> dict[str, Any]:
    async with contextlib.AsyncExitStack() as stack:
        server = await stack.enter_async_context(
            BenchServer(time_scale=time_scale, seed=5, estimated_times={MODEL: ESTIMATED})
        )
        receiver = None
        if name == STEADY_CALLBACKS:
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
            sock.close()
            receiver = CallbackReceiver(f"http://127.0.0.1:{port}/hooks", allow_local=True)
            app = web.Application()
            app.add_subapp("/hooks", receiver.aiohttp_app())
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            stack.push_async_callback(runner.cleanup)
        client = await stack.enter_async_context(
            EvolinkClient(server.api_key, base_url=server.base_url, poll_policy=PollPolicy().scaled(time_scale),
                          callbacks=receiver)
        )  # fmt: skip
        every = None if name == ECONOMICAL else 1.0 * time_scale
        distinct: list[int] = []

        async def watch() -> None:
            task = await client.images.submit(QwenImageEdit(prompt="a lighthouse", image_urls=[IMAGE]))
            seen: set[int] = set()
            async for event in client.tasks.stream(task, progress_every=every):
                if event.kind is EventKind.PROGRESS:
                    seen.add(event.progress)
            distinct.append(len(seen))

        await asyncio.gather(*(watch() for _ in range(n)))
        queries = client.tracker.queries_sent
    return {
        "contestant": name,
        "tasks": n,
        "queries_per_task": round(queries / n, 2),
        "progress_events_per_task": round(sum(distinct) / n, 2),
    }


async def _relay(viewers: int, time_scale: float, estimated: float) -> dict[str, Any]:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    # A task long enough that the viewers (a process still starting) see most of it.
    async with (
        BenchServer(time_scale=time_scale, seed=6, estimated_times={MODEL: estimated}) as server,
        EvolinkClient(server.api_key, base_url=server.base_url, poll_policy=PollPolicy().scaled(time_scale)) as client,
        ProgressRelay(client, progress_every=0.5 * time_scale, heartbeat=5.0) as relay,
    ):
        app = web.Application()
        app.add_subapp("/progress/", relay.aiohttp_app())
        async with _served(app) as port:
            task = await client.images.submit(QwenImageEdit(prompt="a lighthouse", image_urls=[IMAGE]))
            url = f"http://127.0.0.1:{port}/progress/{task.id}?token={relay.token_for(task)}"
            cpu_before = time.process_time()
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "benchmarks._sse_viewers", url, str(viewers),
                stdout=asyncio.subprocess.PIPE,
            )  # fmt: skip
            most_watched = 0
            while process.returncode is None:
                most_watched = max(most_watched, client.tracker.watched)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(process.wait(), 0.05)
            cpu = time.process_time() - cpu_before
            assert process.stdout is not None
            result = json.loads((await process.stdout.read()).decode())
    frames = result["frames"]
    return {
        "viewers": viewers,
        "frames_delivered": frames,
        "failures": result["failures"],
        "watches": most_watched,
        "cpu_us_per_frame": round(cpu / frames * 1e6, 1) if frames else None,
    }


async def run(quick: bool) -> Scenario:
    time_scale = 0.05
    n = 10 if quick else 50
    viewers = 200 if quick else 1000
    scenario = Scenario("progress", "Progress for people: cadence cost and the browser relay")
    scenario.params = {"tasks": n, "time_scale": time_scale, "estimated_time_model_s": ESTIMATED, "viewers": viewers}
    scenario.columns = [
        "contestant", "tasks", "queries_per_task", "progress_events_per_task",
        "viewers", "frames_delivered", "failures", "watches", "cpu_us_per_frame",
    ]  # fmt: skip
    rows = {name: await _cadence(name, n, time_scale) for name in (ECONOMICAL, STEADY, STEADY_CALLBACKS)}
    relay = await _relay(viewers, time_scale, 60.0 if quick else 200.0)
    scenario.rows = [*rows.values(), {"contestant": f"relay, {viewers} viewers of one task", **relay}]
    steady, economical = rows[STEADY], rows[ECONOMICAL]
    scenario.targets = [
        target("steady: progress events per task above the economical policy's",
               goal=f"> {economical['progress_events_per_task']}", value=steady["progress_events_per_task"],
               passed=steady["progress_events_per_task"] > economical["progress_events_per_task"]),
        target("relay: every viewer got the stream", goal="0 failures", value=relay["failures"],
               passed=relay["failures"] == 0),
        target("relay: one watch for every viewer", goal="1", value=relay["watches"], passed=relay["watches"] == 1),
    ]  # fmt: skip
    return scenario
