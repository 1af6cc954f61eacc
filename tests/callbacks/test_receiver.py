"""The callback receiver on its own: tokens, bounds, ordering, and both HTTP entry points."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import uvicorn
from aiohttp import web

import evolink_async as evolink
from evolink_async._callbacks.receiver import CallbackRoute
from evolink_async._models.converter import structure_task

SECRET = "a-test-secret-of-enough-bytes"


def body(status: str, progress: int, task_id: str = "task-unified-1-abc") -> dict[str, Any]:
    return {"id": task_id, "status": status, "progress": progress, "object": "image.generation.task",
            "results": ["https://files.example/x.png"] if status == "completed" else None}  # fmt: skip


class Pushed:
    def __init__(self) -> None:
        self.tasks: list[evolink.Task] = []
        self.fetched: list[str] = []
        self.fetch_answer: evolink.Task | Exception | None = None

    def route(self) -> CallbackRoute:
        async def fetch(task_id: str) -> evolink.Task:
            self.fetched.append(task_id)
            if isinstance(self.fetch_answer, Exception):
                raise self.fetch_answer
            assert self.fetch_answer is not None
            return self.fetch_answer

        return CallbackRoute(parse=structure_task, push=self.tasks.append, fetch=fetch)


def receiver(**options: Any) -> evolink.CallbackReceiver:
    return evolink.CallbackReceiver("http://127.0.0.1:9/hooks", secret=SECRET, allow_local=True, **options)


def bound(rx: evolink.CallbackReceiver, pushed: Pushed, key: str = "key-one-0123456789",
          task_id: str = "task-unified-1-abc") -> str:
    """The token of a submit whose answer named ``task_id`` (what a client does after submitting)."""
    registration = rx.register(key, pushed.route())
    rx.bind(registration, task_id)
    return registration.token


async def post(rx: evolink.CallbackReceiver, token: str, payload: Any) -> int:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return await rx.handle(token, raw)


async def test_each_submit_gets_its_own_url_under_the_public_url() -> None:
    rx, pushed = receiver(), Pushed()
    first = rx.register("key-one-0123456789", pushed.route())
    second = rx.register("key-two-0123456789", pushed.route())
    assert first.url.startswith("http://127.0.0.1:9/hooks/")
    assert first.url != second.url
    assert rx.register("key-one-0123456789", pushed.route()) is first  # same key, same URL
    # The token depends on the secret: another receiver cannot mint it.
    other = evolink.CallbackReceiver("http://127.0.0.1:9/hooks", secret="another-secret-of-bytes", allow_local=True)
    assert other.register("key-one-0123456789", pushed.route()).token != first.token


async def test_unknown_or_forged_token_gets_404_and_changes_nothing() -> None:
    rx, pushed = receiver(), Pushed()
    real = rx.register("key-one-0123456789", pushed.route())
    forged = real.token[:-1] + ("A" if real.token[-1] != "A" else "B")
    assert await post(rx, forged, body("completed", 100)) == 404
    assert await post(rx, "x" * 32, body("completed", 100)) == 404
    assert pushed.tasks == []
    assert rx.accepted == 0


async def test_duplicates_and_out_of_order_updates_never_go_backwards() -> None:
    rx, pushed = receiver(), Pushed()
    token = bound(rx, pushed)
    for status, progress in [("processing", 50), ("processing", 80), ("processing", 80), ("processing", 40),
                             ("pending", 0), ("completed", 100), ("completed", 100), ("failed", 0),
                             ("processing", 90)]:  # fmt: skip
        assert await post(rx, token, body(status, progress)) == 200
    assert [(t.status.value, t.progress) for t in pushed.tasks] == [
        ("processing", 50), ("processing", 80), ("completed", 100)
    ]


async def test_bodies_that_are_not_tasks_get_400_and_large_ones_413() -> None:
    rx, pushed = receiver(max_body_bytes=2048), Pushed()
    token = rx.register("key-one-0123456789", pushed.route()).token
    assert await post(rx, token, b"not json") == 400
    assert await post(rx, token, b"[" * 100_000 + b"]" * 100_000) == 413
    deep = receiver(max_body_bytes=1_000_000)
    deep_token = deep.register("key-one-0123456789", pushed.route()).token
    assert await post(deep, deep_token, b"[" * 100_000 + b"]" * 100_000) == 400  # nested too deep
    assert await post(rx, token, {"hello": "world"}) == 400
    assert await post(rx, token, [1, 2]) == 400
    assert await post(rx, token, b"x" * 2049) == 413
    assert pushed.tasks == []


async def test_a_callback_for_another_task_on_this_url_is_refused() -> None:
    rx, pushed = receiver(), Pushed()
    token = bound(rx, pushed)
    assert await post(rx, token, body("processing", 10, "task-unified-1-abc")) == 200
    assert await post(rx, token, body("completed", 100, "task-unified-2-other")) == 403
    assert [t.id for t in pushed.tasks] == ["task-unified-1-abc"]


async def test_verify_fetch_trusts_the_server_not_the_body() -> None:
    rx, pushed = receiver(verify="fetch"), Pushed()
    token = bound(rx, pushed)
    pushed.fetch_answer = structure_task(body("processing", 30))
    assert await post(rx, token, body("completed", 100)) == 200  # a forged "completed"
    assert pushed.fetched == ["task-unified-1-abc"]
    assert [(t.status.value, t.progress) for t in pushed.tasks] == [("processing", 30)]
    pushed.fetch_answer = evolink.APIConnectionError("down")
    assert await post(rx, token, body("completed", 100)) == 503  # the sender retries later
    assert len(pushed.tasks) == 1


async def test_an_orphaned_submit_is_found_by_its_url() -> None:
    rx, pushed = receiver(), Pushed()
    pushed.fetch_answer = structure_task(body("completed", 100))  # what the server says of it
    registration = rx.register("key-one-0123456789", pushed.route())
    assert await rx.settle(registration, 0.01) is None
    waiter = asyncio.create_task(rx.settle(registration, 10))
    await asyncio.sleep(0)
    assert await post(rx, registration.token, body("completed", 100)) == 202  # held until settled
    task = await asyncio.wait_for(waiter, 10)
    assert task is not None
    assert task.id == "task-unified-1-abc"
    assert registration.task_id == "task-unified-1-abc"  # the URL now authorizes that task alone


@pytest.mark.parametrize(
    ("url", "options", "field"),
    [
        ("http://hooks.example.com/x", {}, "public_url"),
        ("https://127.0.0.1/x", {}, "public_url"),
        ("https://hooks.example.com/x?a=1", {}, "public_url"),
        (5, {}, "public_url"),
        ("https://hooks.example.com/x", {"secret": "short"}, "secret"),
        ("https://hooks.example.com/x", {"verify": "yes"}, "verify"),
        ("https://hooks.example.com/x", {"max_body_bytes": 0}, "max_body_bytes"),
        ("https://hooks.example.com/x", {"allow_local": "yes"}, "allow_local"),
    ],
)
def test_bad_options_are_validation_errors(url: Any, options: dict[str, Any], field: str) -> None:
    with pytest.raises(evolink.ValidationError) as info:
        evolink.CallbackReceiver(url, **options)
    assert info.value.field == field


def test_the_secret_never_shows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVOLINK_CALLBACK_SECRET", "env-secret-value-0123456789")
    rx = evolink.CallbackReceiver("https://hooks.example.com/evolink")
    assert "env-secret-value" not in repr(rx)
    assert rx.register("key-one-0123456789", Pushed().route()).token not in repr(rx)


# --- both entry points over real HTTP ------------------------------------------------------------


Served = tuple[str, evolink.CallbackReceiver, Pushed]


@pytest.fixture(params=["aiohttp", "asgi"])
async def served(request: pytest.FixtureRequest) -> AsyncIterator[Served]:
    serve = aiohttp_mounted if request.param == "aiohttp" else asgi_served
    async with contextlib.asynccontextmanager(serve)() as found:
        yield found


async def aiohttp_mounted() -> AsyncIterator[Served]:
    rx, pushed = receiver(), Pushed()
    app = web.Application()
    app.add_subapp("/evolink", rx.aiohttp_app())
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/evolink", rx, pushed
    finally:
        await runner.cleanup()


async def asgi_served() -> AsyncIterator[Served]:
    """The bare ASGI app under a real uvicorn server, as a framework's mount would see it."""
    rx, pushed = receiver(), Pushed()

    async def mounted(scope: Any, receive: Any, send: Any) -> None:
        # What Starlette's Mount("/evolink", app) hands the app: the full path and a root_path.
        if scope["type"] == "http":
            scope = dict(scope, root_path="/evolink")
        await rx.asgi(scope, receive, send)

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(mounted, log_level="warning", lifespan="on"))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(10):
            while not server.started:
                await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}/evolink", rx, pushed
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 10)
        sock.close()


async def test_real_http_entry_points(served: Served) -> None:
    base, rx, pushed = served
    token = bound(rx, pushed)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        async with http.post(f"{base}/{token}", json=body("processing", 20)) as response:
            assert response.status == 200
        async with http.post(f"{base}/{token}", json=body("completed", 100)) as response:
            assert response.status == 200
        async with http.post(f"{base}/{token}", json=body("completed", 100)) as response:
            assert response.status == 200  # a retry of a delivered callback: accepted, no event
        async with http.post(f"{base}/{'A' * 32}", json=body("completed", 100)) as response:
            assert response.status == 404
        async with http.post(f"{base}/{token}", data=b"x" * (rx.max_body_bytes + 10)) as response:
            assert response.status == 413
        async with http.post(f"{base}/{token}", data=b"{nope") as response:
            assert response.status == 400
    assert [(t.status.value, t.progress) for t in pushed.tasks] == [("processing", 20), ("completed", 100)]
