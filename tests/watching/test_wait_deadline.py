"""``wait`` with a server estimate far past its deadline still queries once before giving up."""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

import evolink_async as evolink
from tests.helpers.hostile import API_KEY, edit, hostile_server, json_answer, task_body


async def test_wait_queries_once_more_before_its_deadline() -> None:
    """A server estimate of a year put the first query past a 3 s ``wait``: the completed task
    was reported timed out. The schedule now ends with a query just before the deadline."""
    queries = 0

    async def handler(request: web.Request) -> web.StreamResponse:
        nonlocal queries
        if request.method == "POST":
            return json_answer(task_body("task-unified-1-year", created=int(time.time()),
                                         task_info={"estimated_time": 3.2e7}))  # fmt: skip
        queries += 1
        return json_answer(task_body("task-unified-1-year", status="completed", progress=100,
                                     results=["https://files.example/x.png"]))  # fmt: skip

    async with hostile_server(handler) as server:
        async with evolink.EvolinkClient(API_KEY, base_url=server.url) as client:  # default PollPolicy
            task = await client.images.submit(edit())
            async with asyncio.timeout(10):
                done = await client.tasks.wait(task, timeout=2)
    assert done.status is evolink.TaskStatus.COMPLETED
    assert queries == 1
