"""Callbacks (API.md A5): the final task JSON, POSTed with the documented retries, time-scaled."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import pytest
from aiohttp import web

from evolink_async.sandbox import Faults

from .conftest import qwen


class Receiver:
    """A local callback endpoint answering a scripted list of statuses (then 200)."""

    def __init__(self) -> None:
        self.statuses: list[int] = []
        self.delay = 0.0
        self.received: list[tuple[float, dict[str, Any]]] = []
        self.url = ""
        self.event = asyncio.Event()
        #: Called with each body as it arrives, before the answer (to look at the sandbox then).
        self.on_arrival: Callable[[dict[str, Any]], Awaitable[None]] | None = None

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        if self.on_arrival is not None:
            await self.on_arrival(body)
        self.received.append((time.monotonic(), body))
        self.event.set()
        if self.delay:
            await asyncio.sleep(self.delay)
        status = self.statuses.pop(0) if self.statuses else 200
        return web.Response(status=status)

    async def wait_for(self, count: int, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while len(self.received) < count:
                self.event.clear()
                await self.event.wait()


async def settled(predicate: Any, timeout: float = 3.0) -> None:
    """Wait until the sandbox has recorded what the receiver already saw."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    hook = Receiver()
    app = web.Application()
    app.router.add_post("/hook/{secret}", hook.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    hook.url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook/s3cret"
    yield hook
    await runner.cleanup()


async def test_completed_task_is_delivered_once(evolink_sandbox_factory: Any, api_for: Any, receiver: Receiver) -> None:
    sandbox = await evolink_sandbox_factory(time_scale=0.002)
    api = api_for(sandbox)
    _, _, body = await api.submit(qwen(callback_url=receiver.url))
    await receiver.wait_for(1)
    await asyncio.sleep(0.05)
    assert len(receiver.received) == 1
    _, delivered = receiver.received[0]
    _, _, queried = await api.task(body["id"])
    assert delivered == queried
    assert delivered["status"] == "completed"
    assert delivered["results"]
    await settled(lambda: sandbox.ledger.callbacks)
    assert sandbox.ledger.callbacks_delivered == [body["id"]]
    assert [(a.attempt, a.status) for a in sandbox.ledger.callbacks] == [(1, 200)]


async def test_failed_task_is_delivered_too(evolink_sandbox_factory: Any, api_for: Any, receiver: Receiver) -> None:
    sandbox = await evolink_sandbox_factory(time_scale=0.002, faults=Faults(task_failure_rate=1.0))
    await api_for(sandbox).submit(qwen(callback_url=receiver.url))
    await receiver.wait_for(1)
    assert receiver.received[0][1]["status"] == "failed"
    assert receiver.received[0][1]["error"]["code"]


async def test_not_before_the_task_is_terminal(evolink_sandbox_factory: Any, api_for: Any, receiver: Receiver) -> None:
    sandbox = await evolink_sandbox_factory(time_scale=0.004, duration_spread=(1.0, 1.0))
    api = api_for(sandbox)
    status_on_arrival: list[str] = []

    async def look(body: dict[str, Any]) -> None:  # what a query says while the callback is in flight
        _, _, queried = await api.task(body["id"])
        status_on_arrival.append(queried["status"])

    receiver.on_arrival = look
    await api.submit(qwen(callback_url=receiver.url))  # 30 s * 0.004 = 0.12 s
    await receiver.wait_for(1)
    assert status_on_arrival == ["completed"]


async def test_retries_after_1_2_4_scaled_seconds(
    evolink_sandbox_factory: Any, api_for: Any, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The pauses the sandbox asks for between attempts, not a stopwatch (a busy machine stretches
    # every gap); its only sleep on this path is the pause before a retry.
    pauses: list[float] = []
    real_sleep = anyio.sleep

    async def recorded_sleep(delay: float) -> None:
        pauses.append(delay)
        await real_sleep(delay)

    monkeypatch.setattr(anyio, "sleep", recorded_sleep)
    receiver.statuses = [500, 503, 404]
    sandbox = await evolink_sandbox_factory(time_scale=0.05, estimated_times={"qwen-image-edit": 0.2})
    _, _, body = await api_for(sandbox).submit(qwen(callback_url=receiver.url))
    await receiver.wait_for(4)
    assert pauses == [pytest.approx(0.05), pytest.approx(0.1), pytest.approx(0.2)]  # 1, 2, 4 s at 0.05
    assert all(payload["id"] == body["id"] for _, payload in receiver.received)
    await settled(lambda: len(sandbox.ledger.callbacks) == 4)
    assert [(a.attempt, a.status) for a in sandbox.ledger.callbacks] == [(1, 500), (2, 503), (3, 404), (4, 200)]
    assert sandbox.ledger.callbacks_delivered == [body["id"]]


async def test_gives_up_after_three_retries(evolink_sandbox_factory: Any, api_for: Any, receiver: Receiver) -> None:
    receiver.statuses = [500] * 10
    sandbox = await evolink_sandbox_factory(time_scale=0.005, estimated_times={"qwen-image-edit": 1.0})
    await api_for(sandbox).submit(qwen(callback_url=receiver.url))
    await receiver.wait_for(4)
    await asyncio.sleep(0.1)  # a fifth attempt would come 0.04 s after the fourth at the latest
    assert len(receiver.received) == 4
    assert sandbox.ledger.callbacks_delivered == []


async def test_a_slow_receiver_times_out_after_10_scaled_seconds(
    evolink_sandbox_factory: Any, api_for: Any, receiver: Receiver
) -> None:
    receiver.delay = 0.5
    sandbox = await evolink_sandbox_factory(time_scale=0.01, estimated_times={"qwen-image-edit": 1.0})
    await api_for(sandbox).submit(qwen(callback_url=receiver.url))
    await receiver.wait_for(2, timeout=3)  # the first attempt timed out after 0.1 s, then a retry came
    await settled(lambda: sandbox.ledger.callbacks)
    assert sandbox.ledger.callbacks[0].error == "timeout"


async def test_other_hosts_are_never_called(evolink_sandbox: Any, api_for: Any) -> None:
    await api_for(evolink_sandbox).submit(qwen(callback_url="https://hooks.example.com/x"))
    await settled(lambda: evolink_sandbox.ledger.callbacks)
    attempt = evolink_sandbox.ledger.callbacks[0]
    assert attempt.status is None
    assert "loopback" in (attempt.error or "")


async def test_pending_deliveries_stop_with_the_sandbox(
    evolink_sandbox_factory: Any, api_for: Any, receiver: Receiver
) -> None:
    receiver.statuses = [500] * 10
    sandbox = await evolink_sandbox_factory(time_scale=1.0, estimated_times={"qwen-image-edit": 0.01})
    await api_for(sandbox).submit(qwen(callback_url=receiver.url))
    await receiver.wait_for(1)
    # The retry is a second away; leaving the fixture must cancel it without warnings.


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_callback_timeout_must_be_a_positive_finite_number(bad: float) -> None:
    from evolink_async.sandbox import Sandbox

    with pytest.raises(ValueError, match="callback_timeout"):
        Sandbox(callback_timeout=bad)


async def test_callback_timeout_is_how_long_a_slow_receiver_is_waited_for(
    evolink_sandbox_factory: Any, api_for: Any, receiver: Receiver
) -> None:
    receiver.delay = 0.2  # longer than the service's 10 s at this clock (0.05 s), shorter than 100 s
    sandbox = await evolink_sandbox_factory(time_scale=0.005, callback_timeout=100.0)
    await api_for(sandbox).submit(qwen(callback_url=receiver.url))
    await settled(lambda: sandbox.ledger.callbacks, timeout=30)
    assert [(a.attempt, a.status) for a in sandbox.ledger.callbacks] == [(1, 200)]
