"""The sandbox answers every fact of facts.py as API.md says, over HTTP (a known difference: strict xfail)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from .conftest import Context, header_mismatches, mismatches
from .facts import FACTS, KNOWN_DIFFERENCES, Fact, OneOf

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


@pytest.mark.parametrize("fact", _params())
async def test_the_sandbox_answers_as_documented(fact: Fact, fact_context: Callable[[Fact], Awaitable[Context]]) -> None:
    ctx = await fact_context(fact)
    assert fact.call is not None
    answer = await ctx.send(fact.call)
    expected_status = fact.status.values if isinstance(fact.status, OneOf) else (fact.status,)
    problems = [] if answer.status in expected_status else [f"HTTP {answer.status}, documented {fact.status}"]
    problems += mismatches(ctx.fill(dict(fact.body)), answer.body, answer.status)
    problems += header_mismatches(fact.headers, answer.headers)
    assert not problems, f"{fact.id} ({fact.source}: {fact.says}):\n  " + "\n  ".join(problems) + f"\n{answer.body!r:.600}"
