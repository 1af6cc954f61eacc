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

        async def stats(_request: web.Request) -> web.Response:
            ledger = sandbox.ledger
            return web.json_response(
                {"cpu_seconds": time.process_time(), "requests": dict(ledger.requests), "tasks": len(ledger.billed)}
            )

        app = web.Application()
        app.router.add_post("/timeline", timeline)
        app.router.add_get("/stats", stats)
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


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks._server")
    parser.add_argument("--config", default="{}", help="Sandbox keyword arguments as JSON")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(json.loads(args.config)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
