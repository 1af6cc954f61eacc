"""The sandbox answers every fact of facts.py as API.md says, over HTTP (a known difference: strict xfail)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from .conftest import Context, header_mismatches, mismatches
from .facts import FACTS, KNOWN_DIFFERENCES, Call, Fact, OneOf

_DIFFERENT = {d.fact: d for d in KNOWN_DIFFERENCES if d.fact is not None}


def _params() -> list[Any]:
    params = []
    for fact in FACTS:
        if fact.call is None:
            continue
        marks = []
        if fact.id in _DIFFERENT:
            marks.append(pytest.mark.xfail(reason=_DIFFERENT[fact.id].reason, strict=True))
        params.append(pytest.param(fact, id=fact.id, marks=marks))
    return params


async def _callback_problems(ctx: Context, fact: Fact, task_id: str) -> list[str]:
    assert fact.callbacks is not None
    bodies = await ctx.callbacks_done(task_id)
    problems = [] if len(bodies) == fact.callbacks["posts"] else [f"{len(bodies)} callback POSTs"]
    queried = await ctx.send(Call(method="GET", host="api", path=f"/v1/tasks/{task_id}"))
    for index, body in enumerate(bodies):
        problems += [f"callback {index}: {p}" for p in mismatches(fact.callbacks.get("body", {}), body, 200)]
        if fact.callbacks.get("as_queried") and body != queried.body:
            problems.append(f"callback {index} differs from the query: {body!r:.300} vs {queried.body!r:.300}")
    return problems


@pytest.mark.parametrize("fact", _params())
async def test_the_sandbox_answers_as_documented(fact: Fact, fact_context: Callable[[Fact], Awaitable[Context]]) -> None:
    ctx = await fact_context(fact)
    assert fact.call is not None
    answer = await ctx.send(fact.call)
    expected_status = fact.status.values if isinstance(fact.status, OneOf) else (fact.status,)
    problems = [] if answer.status in expected_status else [f"HTTP {answer.status}, documented {fact.status}"]
    problems += mismatches(ctx.fill(dict(fact.body)), answer.body, answer.status)
    problems += header_mismatches(fact.headers, answer.headers)
    if fact.callbacks is not None and not problems:
        problems += await _callback_problems(ctx, fact, answer.body["id"])
    assert not problems, f"{fact.id} ({fact.source}: {fact.says}):\n  " + "\n  ".join(problems) + f"\n{answer.body!r:.600}"
