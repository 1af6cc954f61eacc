"""A server that echoes the key everywhere it can: no span, event, metric or log field carries it."""

from __future__ import annotations

import logging
import time

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from evolink_async import EvolinkClient, QwenImageEdit, RetryPolicy, TaskFailedError

from .conftest import Otel

KEY = "sk-evo-ECHOED0123456789abcdefECHO"


def echoing_app() -> web.Application:
    submits = 0

    def echo_headers(request: web.Request) -> dict[str, str]:
        key = request.headers["Authorization"].removeprefix("Bearer ")
        return {"x-request-id": f"req-{key}", "x-oneapi-request-id": key}

    async def submit(request: web.Request) -> web.Response:
        nonlocal submits
        submits += 1
        key = request.headers["Authorization"].removeprefix("Bearer ")
        if submits == 1:  # a 503 whose body and headers echo the key: retried, with a span of its own
            return web.json_response({"error": {"code": key, "message": f"bad {key}"}}, status=503,
                                     headers=echo_headers(request))
        task = {"id": "task-echo-1", "status": "pending", "model": "qwen-image-edit", "progress": 0,
                "created": int(time.time()), "usage": {"credits_reserved": 1.5, "billing_rule": key},
                "task_info": {"estimated_time": 1}}
        return web.json_response(task, headers=echo_headers(request))

    async def query(request: web.Request) -> web.Response:
        key = request.headers["Authorization"].removeprefix("Bearer ")
        task = {"id": request.match_info["task_id"], "status": "failed", "model": "qwen-image-edit",
                "progress": 100, "created": int(time.time()), "error": {"code": key, "message": f"echo {key}"}}
        return web.json_response(task, headers=echo_headers(request))

    app = web.Application()
    app.router.add_post("/v1/images/generations", submit)
    app.router.add_get("/v1/tasks/{task_id}", query)
    return app


async def test_an_echoing_server_leaks_the_key_nowhere(otel: Otel, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="evolink_async")
    async with TestServer(echoing_app(), host="127.0.0.1") as server:
        base = str(server.make_url("")).rstrip("/")
        retry = RetryPolicy(max_retries=2, initial_delay=0.0, max_delay=0.0, max_retry_after=1)
        async with EvolinkClient(
            KEY, base_url=base, files_base_url=base, retry=retry,
            tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider,
        ) as client:
            task = await client.images.submit(QwenImageEdit(prompt="x", image_urls=["https://example.com/a.png"]))
            with pytest.raises(TaskFailedError):
                await client.tasks.wait(task, timeout=10)
    spans = otel.spans()
    assert len([s for s in spans if s.name == "POST /v1/images/generations"]) == 2  # the 503, then the retry
    (task_span,) = [s for s in spans if s.name.startswith("generate_content")]
    assert task_span.attributes["evolink.task.status"] == "failed"
    assert task_span.attributes["error.type"] == "***"  # the echoed code, redacted
    text = otel.everything_as_text()
    assert "req-" in text  # request ids are recorded, only without the key
    assert KEY not in text
    fields = [str(value) for record in caplog.records for value in vars(record).values()]
    assert any("retrying" in field for field in fields)  # the logs did see the echoes
    assert not [field for field in fields if KEY in field]
