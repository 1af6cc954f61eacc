"""The sandbox in a separate process, so the benchmark process measures the client alone.

``python -m benchmarks._server --config '{"time_scale": 0.01, ...}'`` runs an
``evolink_async.sandbox.Sandbox`` with those keyword arguments (the standalone
``python -m evolink_async.sandbox`` has no ``estimated_times`` / ``pending_fraction`` options, and
no way to read a task's planned finish time over HTTP), plus a small control app on a third port:

- ``POST /timeline`` with a JSON list of task ids answers ``{id: {"submitted", "started",
  "finishes"}}`` in ``time.monotonic()`` seconds. On Linux that is CLOCK_MONOTONIC, one clock for
  every process of the machine, so the benchmark process can compare it with its own readings
  (``Sandbox.timeline``).
- ``GET /stats`` answers the server's own CPU seconds and the ledger's request counts.

It prints ``BENCH_BASE_URL=...``, ``BENCH_FILES_BASE_URL=...``, ``BENCH_CONTROL_URL=...``,
``BENCH_API_KEY=...`` and then ``ready``, flushed. :class:`BenchServer` starts and stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import aiohttp

__all__ = ["BenchServer"]

_REPO = Path(__file__).resolve().parent.parent
_READY_TIMEOUT = 30.0


class BenchServer:
    """A benchmark sandbox process; ``async with BenchServer(time_scale=...) as server``."""

    def __init__(self, **sandbox_kwargs: Any) -> None:
        self.kwargs = sandbox_kwargs
        self.base_url = ""
        self.files_base_url = ""
        self.control_url = ""
        self.api_key = ""
        self._proc: subprocess.Popen[str] | None = None
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        if "BENCH_SERVER_PYTHONPATH" in os.environ:  # lifecycle_ab: one sandbox for both revisions
            env["PYTHONPATH"] = os.environ["BENCH_SERVER_PYTHONPATH"]
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks._server", "--config", json.dumps(self.kwargs)],
            cwd=_REPO,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            await asyncio.wait_for(asyncio.to_thread(self._read_ready), _READY_TIMEOUT)
        except BaseException:
            self._stop()
            raise
        self._session = aiohttp.ClientSession()
        return self

    def _read_ready(self) -> None:
        assert self._proc is not None
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            line = line.strip()
            name, _, value = line.partition("=")
            if name == "BENCH_BASE_URL":
                self.base_url = value
            elif name == "BENCH_FILES_BASE_URL":
                self.files_base_url = value
            elif name == "BENCH_CONTROL_URL":
                self.control_url = value
            elif name == "BENCH_API_KEY":
                self.api_key = value
            elif line == "ready":
                return
        raise RuntimeError(f"the benchmark sandbox exited before it was ready (code {self._proc.wait()})")

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    async def timeline(self, task_ids: list[str]) -> dict[str, dict[str, float]]:
        """Planned ``submitted``/``started``/``finishes`` (monotonic seconds) of these tasks."""
        assert self._session is not None
        async with self._session.post(f"{self.control_url}/timeline", json=task_ids) as resp:
            resp.raise_for_status()
            result: dict[str, dict[str, float]] = await resp.json()
            return result

    async def stats(self) -> dict[str, Any]:
        """``cpu_seconds`` of the server process, ``requests`` per endpoint, ``tasks`` accepted."""
        assert self._session is not None
        async with self._session.get(f"{self.control_url}/stats") as resp:
            resp.raise_for_status()
            result: dict[str, Any] = await resp.json()
            return result

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        await asyncio.to_thread(self._stop)

    def _stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


# --- the server process -----------------------------------------------------------------------


async def _serve(config: dict[str, Any]) -> None:
    from aiohttp import web

    from evolink_async.sandbox import Faults, Sandbox

    if "faults" in config:
        config["faults"] = Faults(**config["faults"])
    if "duration_spread" in config:
        config["duration_spread"] = tuple(config["duration_spread"])
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with Sandbox(**config) as sandbox:

        async def timeline(request: web.Request) -> web.Response:
            ids = await request.json()
            out: dict[str, dict[str, float]] = {}
            for task_id in ids:
                planned = sandbox.timeline(task_id)
                if planned is not None:
                    out[task_id] = {
                        "submitted": planned.submitted,
                        "started": planned.started,
                        "finishes": planned.finishes,
                    }
            return web.json_response(out)

        peers = _PeerStub(config.get("time_scale", 1.0))

        async def stats(_request: web.Request) -> web.Response:
            ledger = sandbox.ledger
            requests = {**ledger.requests, **peers.requests}
            return web.json_response(
                {"cpu_seconds": time.process_time(), "requests": requests, "tasks": len(ledger.billed)}
            )

        app = web.Application()
        app.router.add_post("/timeline", timeline)
        app.router.add_get("/stats", stats)
        peers.add_routes(app)
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        control = f"http://127.0.0.1:{runner.addresses[0][1]}"
        try:
            print(f"BENCH_BASE_URL={sandbox.base_url}")
            print(f"BENCH_FILES_BASE_URL={sandbox.files_base_url}")
            print(f"BENCH_CONTROL_URL={control}")
            print(f"BENCH_API_KEY={sandbox.api_key}")
            print("ready", flush=True)
            await stop.wait()
        finally:
            await runner.cleanup()


class _PeerStub:
    """The shapes of two peers' task APIs on the control port, for the lifecycle benchmark's optional
    contestants: Replicate's predictions (``POST /v1/predictions``, ``GET /v1/predictions/{id}``)
    and OpenAI's videos (``POST /v1/videos``, ``GET /v1/videos/{id}``). Every task runs
    ``PEER_TASK_MODEL_S`` model seconds; only the fields their clients read are filled in."""

    def __init__(self, time_scale: float) -> None:
        self.duration = PEER_TASK_MODEL_S * time_scale
        self.requests: dict[str, int] = {}
        self._started: dict[str, float] = {}
        self._ids = 0

    def add_routes(self, app: Any) -> None:
        app.router.add_post("/v1/predictions", self._create_prediction)
        app.router.add_get("/v1/predictions/{id}", self._get_prediction)
        app.router.add_post("/v1/videos", self._create_video)
        app.router.add_get("/v1/videos/{id}", self._get_video)

    def _count(self, endpoint: str) -> None:
        self.requests[endpoint] = self.requests.get(endpoint, 0) + 1

    def _new(self, prefix: str) -> str:
        self._ids += 1
        task_id = f"{prefix}{self._ids:08d}"
        self._started[task_id] = time.monotonic()
        return task_id

    def _fraction(self, task_id: str) -> float | None:
        started = self._started.get(task_id)
        return None if started is None else (time.monotonic() - started) / self.duration

    def _prediction(self, task_id: str, fraction: float) -> dict[str, Any]:
        status = "starting" if fraction < 0.1 else "processing" if fraction < 1.0 else "succeeded"
        return {
            "id": task_id, "model": "stub/image", "version": "stub-version", "status": status,
            "input": {"prompt": "stub"}, "output": ["https://cdn.example.com/0.png"] if status == "succeeded" else None,
            "logs": "", "error": None, "metrics": {}, "created_at": "2026-01-01T00:00:00Z",
            "urls": {"get": f"/v1/predictions/{task_id}", "cancel": f"/v1/predictions/{task_id}/cancel"},
        }  # fmt: skip

    def _video(self, task_id: str, fraction: float) -> dict[str, Any]:
        status = "queued" if fraction < 0.1 else "in_progress" if fraction < 1.0 else "completed"
        return {
            "id": task_id, "object": "video", "model": "sora-2", "status": status,
            "progress": min(100, int(fraction * 100)), "created_at": 1767225600, "completed_at": None,
            "expires_at": None, "error": None, "remixed_from_video_id": None, "seconds": "4", "size": "720x1280",
        }  # fmt: skip

    async def _create_prediction(self, request: Any) -> Any:
        from aiohttp import web

        self._count("POST /v1/predictions")
        await request.read()
        return web.json_response(self._prediction(self._new("pred"), 0.0), status=201)

    async def _get_prediction(self, request: Any) -> Any:
        from aiohttp import web

        self._count("GET /v1/predictions/{id}")
        task_id = request.match_info["id"]
        fraction = self._fraction(task_id)
        if fraction is None:
            return web.json_response({"detail": "Not found."}, status=404)
        return web.json_response(self._prediction(task_id, fraction))

    async def _create_video(self, request: Any) -> Any:
        from aiohttp import web

        self._count("POST /v1/videos")
        await request.read()
        return web.json_response(self._video(self._new("video_"), 0.0))

    async def _get_video(self, request: Any) -> Any:
        from aiohttp import web

        self._count("GET /v1/videos/{id}")
        task_id = request.match_info["id"]
        fraction = self._fraction(task_id)
        if fraction is None:
            return web.json_response({"error": {"message": "not found", "type": "invalid_request_error"}}, status=404)
        return web.json_response(self._video(task_id, fraction))


#: How long a peer stub's task runs, in model seconds (the lifecycle benchmark's tasks: 30).
PEER_TASK_MODEL_S = 30.0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks._server")
    parser.add_argument("--config", default="{}", help="Sandbox keyword arguments as JSON")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(json.loads(args.config)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
