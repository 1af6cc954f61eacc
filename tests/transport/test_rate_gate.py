"""After a 429 the client waits for the server's next free slot and sends one request per slot.

A server that takes one request per slot (a token bucket with room for one, as the sandbox's rate
limit and many gateways are) answers a flood of requests sent at the end of one cooldown with one
answer and a 429 for each of the others; each of those retried, and a retry used up an attempt
until the call failed with ``RateLimitError`` though the server had only said "later".
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import anyio
import pytest
from aiohttp import web

import evolink_async as evolink
from evolink_async._core import rate_gate
from evolink_async._core.rate_gate import OPEN_AFTER, RateGate
from tests.helpers.hostile import client_for, hostile_server, json_answer, task_body

SLOT = 0.01  # the server's one request per 10 ms


class OneSlotLimit:
    """A token bucket with room for one request, refilled at one per ``SLOT``; 429 with the exact wait."""

    def __init__(self) -> None:
        self.tokens = 1.0
        self.at = time.monotonic()
        self.accepted = 0
        self.rejected = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        now = time.monotonic()
        self.tokens = min(1.0, self.tokens + (now - self.at) / SLOT)
        self.at = now
        if self.tokens < 1.0:
            self.rejected += 1
            wait = (1.0 - self.tokens) * SLOT
            return json_answer({"error": {"code": "rate_limit_exceeded", "message": "Too many requests."}},
                               status=429, headers={"Retry-After": f"{wait:.6f}"})  # fmt: skip
        self.tokens -= 1.0
        self.accepted += 1
        return json_answer(task_body(request.path.rsplit("/", 1)[-1], status="completed"))


async def _flood(call: Callable[[int], Awaitable[object]], count: int = 40) -> list[BaseException]:
    """``count`` calls at once; the ``RateLimitError``s they end with."""
    failed: list[BaseException] = []

    async def one(i: int) -> None:
        try:
            await call(i)
        except evolink.RateLimitError as exc:
            failed.append(exc)

    async with anyio.create_task_group() as group:
        for i in range(count):
            group.start_soon(one, i)
    return failed


async def test_a_flood_after_a_429_gets_through_one_per_slot_without_failing() -> None:
    limit = OneSlotLimit()
    retry = evolink.RetryPolicy(max_retries=3, initial_delay=0.001, max_delay=0.01, max_retry_after=10)
    async with hostile_server(limit.handle) as server, client_for(server, retry=retry) as client:
        failed = await _flood(lambda i: client.tasks.get(f"task-unified-{i}"))
    # Every call got its answer: the server's "later" used no attempt (3 would not have sufficed).
    assert failed == []
    assert limit.accepted == 40
    # One request per free slot, plus the flood's first round: not a 429 per waiting call per slot.
    assert limit.rejected <= 2 * limit.accepted + 40


async def test_rate_limited_waits_of_one_call_are_bounded_by_max_retry_after() -> None:
    async def always_later(request: web.Request) -> web.StreamResponse:
        return json_answer({"error": {"code": "rate_limit_exceeded", "message": "later"}}, status=429,
                           headers={"Retry-After": "0.01"})  # fmt: skip

    retry = evolink.RetryPolicy(max_retries=3, initial_delay=0.001, max_delay=0.01, max_retry_after=0.05)
    async with hostile_server(always_later) as server, client_for(server, retry=retry) as client:
        with pytest.raises(evolink.RateLimitError):
            await client.tasks.get("task-unified-1")
        # 0.01 s asked each time, 0.05 s in all: the sixth 429 ends the call.
        assert server.count("GET", "/v1/tasks/") == 6
    # Retries off: the first 429 is the answer, whatever it asks for.
    no_retries = evolink.RetryPolicy(max_retries=0)
    async with hostile_server(always_later) as server, client_for(server, retry=no_retries) as client:
        with pytest.raises(evolink.RateLimitError):
            await client.tasks.get("task-unified-1")
        assert server.count("GET", "/v1/tasks/") == 1


# --- the gate itself, on a clock of the test's own -------------------------------------------


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [1000.0]
    monkeypatch.setattr(rate_gate, "now", lambda: now[0])
    return now


def test_the_cooldown_is_counted_from_the_server_answer(clock: list[float]) -> None:
    gate = RateGate()
    gate.rejected(0.5, round_trip=0.2)  # the answer took time to come; the next request takes time to go
    assert gate.until == pytest.approx(1000.3)
    gate.rejected(0.1, round_trip=0.3)
    assert gate.until == 1000.0  # never before now; the latest answer is the freshest news


async def test_one_turn_after_a_429_one_more_per_first_try_accepted_open_after_a_run(clock: list[float]) -> None:
    gate = RateGate()
    gate.rejected(0.0, round_trip=0.0)
    assert gate.closed
    taken: list[int] = []

    async def waiter(i: int) -> None:
        await gate.take_turn()
        taken.append(i)

    async with anyio.create_task_group() as group:
        for i in range(3):
            group.start_soon(waiter, i)
        await wait_until(lambda: taken == [0] and gate.waiting == 2)  # one turn while the server says "later"
        gate.accepted(first_try=False)  # a retry got the slot it waited for: no news of more room
        assert gate.waiting == 2
        gate.accepted(first_try=True)  # went through without waiting: the server may have room for more
        await wait_until(lambda: taken == [0, 1] and gate.waiting == 1)
        gate.give_back()
        await wait_until(lambda: taken == [0, 1, 2])
    for _ in range(OPEN_AFTER - 2):
        gate.accepted(first_try=True)
    gate.rejected(0.0, round_trip=0.0)  # a 429 between: back to one turn, the run starts again
    for _ in range(OPEN_AFTER - 1):
        gate.accepted(first_try=True)
    assert gate.closed
    gate.accepted(first_try=True)
    assert not gate.closed


async def test_a_waiter_cancelled_leaves_no_turn_behind(clock: list[float]) -> None:
    gate = RateGate()
    gate.rejected(0.0, round_trip=0.0)
    await gate.take_turn()  # held by "another request"
    with anyio.move_on_after(0.05):
        await gate.take_turn()  # cancelled while it waits
    gate.give_back()
    with anyio.fail_after(5):
        await gate.take_turn()  # the one turn is free again


async def wait_until(condition: object, bound: float = 5.0) -> None:
    with anyio.fail_after(bound):
        while not condition():  # type: ignore[operator]
            await anyio.sleep(0.001)


async def test_a_flood_of_midjourney_submits_takes_turns_after_a_429_like_every_request() -> None:
    """A proxy's submit carries no idempotency key and is never retried blindly, but a 429 created
    nothing: it is retried through the same gate (it used to be its own loop, one sleep per submit
    and a 429 for each of them at every slot)."""
    limit = OneSlotLimit()
    ids = iter(range(1, 1000))

    async def handle(request: web.Request) -> web.StreamResponse:
        answer = await limit.handle(request)
        if answer.status == 429:
            return answer
        return json_answer({"code": 1, "description": "Submit success", "result": str(next(ids))})

    retry = evolink.RetryPolicy(max_retries=3, initial_delay=0.001, max_delay=0.01, max_retry_after=10)
    async with hostile_server(handle) as server, evolink.MidjourneyClient(
        "mj-key", base_url=server.url, retry=retry
    ) as mj:
        failed = await _flood(lambda i: mj.submit(evolink.Imagine(prompt=f"a fox {i}")))
    assert failed == []
    assert limit.accepted == 40
    assert limit.rejected <= 2 * limit.accepted + 40
