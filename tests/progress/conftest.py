"""Helpers for the progress tests: a relay served over real HTTP, and an SSE reader."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import attrs
import pytest
import uvicorn
from aiohttp import web

from evolink_async import EvolinkClient, PollPolicy, ProgressRelay
from evolink_async.sandbox import Sandbox


@attrs.frozen
class Frame:
    id: int | None
    event: str | None
    data: Any
    retry: int | None = None


async def read_frames(response: aiohttp.ClientResponse, *, limit: int = 10_000) -> AsyncIterator[Frame]:
    """Server-Sent Events as a browser's EventSource parses them (comments skipped)."""
    fields: dict[str, str] = {}
    count = 0
    async for raw in response.content:
        line = raw.decode().rstrip("\n").rstrip("\r")
        if line.startswith(":"):
            continue
        if line:
            name, _, value = line.partition(": ")
            fields[name] = value
            continue
        if fields:
            data = fields.get("data")
            yield Frame(
                id=int(fields["id"]) if "id" in fields else None,
                event=fields.get("event"),
                data=json.loads(data) if data is not None else None,
                retry=int(fields["retry"]) if "retry" in fields else None,
            )
            fields = {}
            count += 1
            if count >= limit:
                return


def client_for(sandbox: Sandbox, **options: Any) -> EvolinkClient:
    options.setdefault("poll_policy", PollPolicy(min_interval=0.02, max_interval=0.02))
    return EvolinkClient(sandbox.api_key, base_url=sandbox.base_url, **options)


Serve = Callable[[ProgressRelay], Any]


@pytest.fixture
async def serve_aiohttp() -> AsyncIterator[Callable[[ProgressRelay], Any]]:
    """Serve a relay's aiohttp app on a loopback port; yields ``serve(relay) -> base URL``."""
    runners: list[web.AppRunner] = []

    async def serve(relay: ProgressRelay) -> str:
        app = web.Application()
        app.add_subapp("/progress/", relay.aiohttp_app())
        runner = web.AppRunner(app, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = runner.addresses[0][1]
        return f"http://127.0.0.1:{port}/progress"

    yield serve
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def serve_asgi() -> AsyncIterator[Callable[[ProgressRelay], Any]]:
    """Serve a relay's ASGI app under a real uvicorn server, mounted like Starlette's Mount does."""
    servers: list[tuple[uvicorn.Server, asyncio.Task[None], socket.socket]] = []

    async def serve(relay: ProgressRelay) -> str:
        async def mounted(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                scope = dict(scope, root_path="/progress")
            await relay.asgi(scope, receive, send)

        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(mounted, log_level="warning", lifespan="off"))
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        servers.append((server, serving, sock))
        async with asyncio.timeout(10):
            while not server.started:
                await asyncio.sleep(0.01)
        return f"http://127.0.0.1:{port}/progress"

    yield serve
    for server, serving, sock in servers:
        server.should_exit = True
        server.force_exit = True
        await asyncio.wait_for(serving, 10)
        sock.close()

