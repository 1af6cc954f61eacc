"""A fan-out that stops (its block left early, a cancellation such as Ctrl-C, an error that ends it)
lets the submits already sent get their answers, within a bound, and sends nothing more: no
submit not yet sent, no retry. A task made for an input is then known (``left_in_flight``, which a
journal records) rather than lost with a cut-off answer, which a re-run would send again and a
server that ignores ``Idempotency-Key`` would bill again."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest
from aiohttp import web

import evolink_async as evolink
from evolink_async._watching import fan_out as fan_out_module
from tests.helpers.hostile import SUBMIT, client_for, edit, error_answer, hostile_server, json_answer, task_body


async def test_a_submit_sent_before_the_stop_gets_its_answer_and_its_task_is_left_in_flight() -> None:
    answered = anyio.Event()

    async def handler(request: web.Request) -> web.StreamResponse:
        if request.method == "POST" and request.path == SUBMIT:
            await answered.wait()  # the answer leaves only once the fan-out is stopping
            return json_answer(task_body("task-unified-1757165031-stopped1"))
        return json_answer(task_body(request.path.rsplit("/", 1)[-1]))  # still running

    async with hostile_server(handler) as server, client_for(server) as client:
        with anyio.fail_after(30):
            async with anyio.create_task_group() as group:
                async with client.fan_out([evolink.FanOutItem(key="only", request=edit(0))]) as stream:
                    while server.count("POST", SUBMIT) < 1:
                        await anyio.sleep(0.01)
                    # Leaving the block stops the fan-out; the answer comes while it does.
                    group.start_soon(_set_soon, answered)
    assert stream.summary.left_in_flight == [("only", "task-unified-1757165031-stopped1")]
    assert stream.summary.interrupted_submits == []


async def test_a_submit_waiting_to_retry_when_the_fan_out_stops_is_not_sent_again() -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        if request.method == "POST" and request.path == SUBMIT:
            return error_answer(503, code="service_unavailable", message="try again")  # may have been acted on
        return json_answer(task_body(request.path.rsplit("/", 1)[-1]))

    retry = evolink.RetryPolicy(max_retries=3, initial_delay=0.3, max_delay=0.3)
    async with hostile_server(handler) as server, client_for(server, retry=retry) as client:
        with anyio.fail_after(30):
            async with client.fan_out([evolink.FanOutItem(key="only", request=edit(0))]) as stream:
                while server.count("POST", SUBMIT) < 1:
                    await anyio.sleep(0.01)
            # The stop came during the backoff: the retry was not sent, and the outcome stays unknown.
            assert server.count("POST", SUBMIT) == 1
    assert [key for key, _ in stream.summary.interrupted_submits] == ["only"]
    assert stream.summary.left_in_flight == []


async def test_a_submit_not_yet_sent_when_the_fan_out_stops_is_never_sent() -> None:
    """A submit held back by the client's rate gate (a 429 seen) when the stop comes is not sent."""
    posts: list[int] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        if request.method == "POST" and request.path == SUBMIT:
            posts.append(1)
            if len(posts) == 1:
                return json_answer(
                    {"error": {"code": "rate_limit_exceeded", "message": "slow down", "type": "rate_limit_error"}},
                    status=429, headers={"Retry-After": "1"},
                )  # fmt: skip
            return json_answer(task_body())
        return json_answer(task_body(request.path.rsplit("/", 1)[-1]))

    retry = evolink.RetryPolicy(max_retries=3, initial_delay=0.0, max_delay=0.0, max_retry_after=5.0)
    async with hostile_server(handler) as server, client_for(server, retry=retry) as client:
        refused = anyio.Event()

        async def items() -> AsyncIterator[evolink.FanOutItem[evolink.QwenImageEdit]]:
            yield evolink.FanOutItem(key="input-0", request=edit(0))
            await refused.wait()  # the others start once the 429 has closed the client's gate
            for n in (1, 2):
                yield evolink.FanOutItem(key=f"input-{n}", request=edit(n))

        with anyio.fail_after(30):
            async with client.fan_out(items(), max_in_flight=3) as stream:
                while not posts:
                    await anyio.sleep(0.01)
                await anyio.sleep(0.1)  # the 429 is read (ordering only; nothing is timed)
                refused.set()
                await anyio.sleep(0.1)  # the other two wait at the gate
        assert server.count("POST", SUBMIT) == len(posts) == 1
    # The 429 created nothing, and the others never left: all three can be sent again safely.
    assert sorted(stream.summary.unsent) == ["input-0", "input-1", "input-2"]
    assert stream.summary.interrupted_submits == []


async def test_a_submit_whose_answer_never_comes_is_cut_off_at_the_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    """The wait for answers is bounded: a server that never answers cannot hold the stop."""
    monkeypatch.setattr(fan_out_module, "STOP_SETTLE_TIMEOUT", 0.2)
    never = anyio.Event()

    async def handler(request: web.Request) -> web.StreamResponse:
        if request.method == "POST" and request.path == SUBMIT:
            await never.wait()
        return json_answer(task_body(request.path.rsplit("/", 1)[-1]))

    async with hostile_server(handler) as server, client_for(server) as client:
        try:
            with anyio.fail_after(30):
                async with client.fan_out([evolink.FanOutItem(key="only", request=edit(0))]) as stream:
                    while server.count("POST", SUBMIT) < 1:
                        await anyio.sleep(0.01)
        finally:
            never.set()
    # Sent, never answered: its task may exist, so it is reported with the key that makes a resend safe.
    assert [key for key, _ in stream.summary.interrupted_submits] == ["only"]
    assert stream.summary.left_in_flight == stream.summary.unsent == []


async def _set_soon(event: anyio.Event) -> None:
    await anyio.sleep(0.05)  # after the block is left (ordering only; nothing is timed)
    event.set()
