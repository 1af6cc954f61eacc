"""A server answering a negative cost cannot lift a fan-out's credit budget.

``usage.credits_reserved: -100`` was taken at its word: the credits counted as reserved went down
with every submit, so ``max_credits=3`` let all six inputs through (``credits_reserved=-600``).
A negative cost is now unknown, and an unknown cost is what the budget already handles with care.
"""

from __future__ import annotations

import pytest
from aiohttp import web

import evolink_async as evolink
from tests.helpers.hostile import (
    QUERY_PREFIX,
    SUBMIT,
    Handler,
    client_for,
    edit,
    hostile_server,
    json_answer,
    task_body,
)

pytestmark = pytest.mark.asyncio


def _costing(credits: float) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        if request.method == "POST":
            return json_answer(task_body(usage={"billing_rule": "per_call", "credits_reserved": credits}))
        return json_answer(task_body(request.path.removeprefix(QUERY_PREFIX), status="completed"))

    return handler


@pytest.mark.parametrize("field", ["credits_reserved", "credits_used", "estimated_cost"])
async def test_a_negative_cost_parses_as_unknown(field: str) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        return json_answer(task_body(usage={"billing_rule": "per_call", field: -5}))

    async with hostile_server(handler) as server, client_for(server) as client:
        task = await client.images.submit(edit())
    assert task.usage is not None
    assert getattr(task.usage, field) is None


async def test_negative_credits_do_not_lift_max_credits() -> None:
    async with hostile_server(_costing(-100.0)) as server, client_for(server) as client:
        async with client.fan_out([edit(n) for n in range(6)], max_credits=3) as events:
            kinds = [event.kind async for event in events if event.is_terminal]
    # One submit to learn the cost; the answer does not tell it, so nothing more is risked.
    assert server.count("POST", SUBMIT) == 1
    assert events.summary.submitted == 1
    assert events.summary.credits_reserved >= 0
    assert kinds.count(evolink.EventKind.SUBMIT_FAILED) == 5


async def test_a_zero_cost_is_still_a_cost() -> None:
    # Free tasks are real (a promotion, a test key): 0 stays 0, not unknown.
    async with hostile_server(_costing(0.0)) as server, client_for(server) as client:
        task = await client.images.submit(edit())
    assert task.usage is not None
    assert task.usage.credits_reserved == 0.0
