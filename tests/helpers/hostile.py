"""A hostile local server for tests of what the SDK does with bad answers (loopback only, port 0).

Only public names of evolink_async are used here.
"""

from __future__ import annotations

import contextlib
import itertools
import json
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web

import evolink_async as evolink

API_KEY = "sk-evo-TRUSTKEY0123456789abcdef"
SUBMIT = "/v1/images/generations"
QUERY_PREFIX = "/v1/tasks/"

#: Polls fast: a test that waits on a task spends milliseconds per query, not seconds.
FAST_POLL = evolink.PollPolicy(
    min_interval=0.01, max_interval=0.1, default_estimated_time=0.05, max_error_interval=0.05, first_query=0.0
)
FAST_RETRY = evolink.RetryPolicy(max_retries=1, initial_delay=0.0, max_delay=0.0, max_retry_after=1.0)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_ids = itertools.count(1)


def task_body(task_id: str | None = None, *, status: str = "pending", **overrides: Any) -> dict[str, Any]:
    """A task object as the real API sends it (submit and query answers)."""
    body: dict[str, Any] = {
        "id": task_id if task_id is not None else f"task-unified-1757165031-trust{next(_ids)}",
        "object": "image.generation.task",
        "created": 1757165031,
        "model": "qwen-image-edit",
        "status": status,
        "progress": 100 if status == "completed" else 0,
        "type": "image",
        "task_info": {"can_cancel": True, "estimated_time": 0.05},
        "usage": {"billing_rule": "per_call", "credits_reserved": 1.0, "user_group": "default"},
    }
    if status == "completed":
        body["results"] = ["https://cdn.example.com/result-0.png"]
    body.update(overrides)
    return body


def json_answer(body: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status, body=json.dumps(body).encode(), content_type="application/json", headers=headers
    )


def error_answer(status: int, code: str = "invalid_request", message: str = "refused", **extra: Any) -> web.Response:
    return json_answer({"error": {"code": code, "message": message, "type": "invalid_request_error", **extra}},
                       status=status)


class HostileServer:
    """One catch-all handler; counts every request by ``"METHOD /path"``."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: Counter[str] = Counter()
        self.url = ""

    @property
    def total(self) -> int:
        return sum(self.requests.values())

    def count(self, method: str, prefix: str) -> int:
        return sum(n for key, n in self.requests.items() if key.startswith(f"{method} {prefix}"))

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        self.requests[f"{request.method} {request.path}"] += 1
        return await self.handler(request)


@contextlib.asynccontextmanager
async def hostile_server(handler: Handler) -> AsyncIterator[HostileServer]:
    server = HostileServer(handler)
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", server._dispatch)
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        server.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        yield server
    finally:
        await runner.cleanup()


def holding_submit_answers(upstream: str, hold: Callable[[], Awaitable[None]]) -> Handler:
    """A handler for :func:`hostile_server`: a proxy to ``upstream`` (a sandbox's base URL) that
    holds each submit's answer with ``hold()`` once the submit took effect there (billed)."""

    async def forward(request: web.Request) -> web.StreamResponse:
        headers = {name: value for name, value in request.headers.items()
                   if name.lower() not in ("host", "content-length", "transfer-encoding", "connection")}  # fmt: skip
        async with aiohttp.ClientSession() as session, session.request(
            request.method, upstream + request.path_qs, data=await request.read(), headers=headers
        ) as answer:
            body = await answer.read()
        if request.method == "POST" and request.path == SUBMIT:
            await hold()
        return web.Response(status=answer.status, body=body, content_type=answer.content_type)

    return forward


def client_for(server: HostileServer, **options: Any) -> evolink.EvolinkClient:
    options.setdefault("poll_policy", FAST_POLL)
    options.setdefault("retry", FAST_RETRY)
    return evolink.EvolinkClient(
        options.pop("api_key", API_KEY), base_url=server.url, files_base_url=server.url, **options
    )


def edit(n: int = 0, **options: Any) -> evolink.QwenImageEdit:
    return evolink.QwenImageEdit(prompt=f"make it blue {n}", image_urls=["https://example.com/in.png"], **options)


async def drop_connection(request: web.Request) -> web.StreamResponse:
    """Close the socket without an answer (a connection reset as the client sees it)."""
    transport = request.transport
    if transport is not None:
        transport.close()
    return web.Response(status=500)
