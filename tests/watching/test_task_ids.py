"""Task ids that are no safe path segment are refused, from the caller and the server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

import evolink_async as evolink
from tests.helpers.hostile import SUBMIT, HostileServer, client_for, edit, hostile_server, json_answer, task_body

BAD_IDS = ["..", ".", "%2e%2e", "a b", " task-1 ", "x" * 300]
BAD_ID_NAMES = ["dotdot", "dot", "encoded-dotdot", "inner-space", "outer-space", "too-long"]


async def _completed(request: web.Request) -> web.StreamResponse:
    return json_answer(task_body(status="completed"))


@pytest.fixture
async def server() -> AsyncIterator[HostileServer]:
    async with hostile_server(_completed) as running:
        yield running


@pytest.mark.parametrize("task_id", BAD_IDS, ids=BAD_ID_NAMES)
@pytest.mark.parametrize("call", ["get", "wait", "stream"])
async def test_unsafe_task_id_is_refused_before_any_query(server: HostileServer, call: str, task_id: Any) -> None:
    """Item 8: ``tasks.get/wait/stream`` with an id of "..", ".", "%2e%2e", whitespace, or > 256
    characters raise ValidationError naming task_id, before any network call."""
    async with client_for(server) as client:
        async with asyncio.timeout(10):
            with pytest.raises(evolink.ValidationError) as exc:
                if call == "get":
                    await client.tasks.get(task_id)
                elif call == "wait":
                    await client.tasks.wait(task_id)
                else:
                    stream = client.tasks.stream(task_id)
                    async with stream:
                        await anext(stream)
    assert "task_id" in str(exc.value)
    assert server.total == 0


@pytest.mark.parametrize("task_id", [*BAD_IDS, "a/b", "   "], ids=[*BAD_ID_NAMES, "slash", "blank"])
async def test_unsafe_task_id_in_a_submit_answer_is_a_response_format_error(task_id: str) -> None:
    """Item 8: a server that answers a submit with such an id gives ResponseFormatError."""

    async def handler(request: web.Request) -> web.StreamResponse:
        if request.method == "POST" and request.path == SUBMIT:
            return json_answer(task_body(task_id))
        return json_answer(task_body(status="completed"))

    async with hostile_server(handler) as server, client_for(server) as client:
        async with asyncio.timeout(10):
            with pytest.raises(evolink.ResponseFormatError):
                await client.images.submit(edit())


async def test_an_answer_about_another_task_is_never_taken_for_the_task_asked_for() -> None:
    """A server that answers a query with another (completed) task: ``tasks.get`` raises
    ``ResponseFormatError``, and ``wait`` never returns the other task's results."""

    async def handler(request: web.Request) -> web.StreamResponse:
        if request.method == "POST" and request.path == SUBMIT:
            return json_answer(task_body("task-unified-1-mine"))
        return json_answer(task_body("task-unified-1-someone-else", status="completed"))

    async with hostile_server(handler) as server, client_for(server) as client:
        async with asyncio.timeout(10):
            with pytest.raises(evolink.ResponseFormatError, match="about another task"):
                await client.tasks.get("task-unified-1-mine")
            task = await client.images.submit(edit())
            with pytest.raises(evolink.ResponseFormatError):
                await client.tasks.wait(task)
