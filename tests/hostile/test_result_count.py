"""A completed task listing thousands of result URLs: at most 1000 are taken (a real task has up to 10).

Before, ``results`` had no bound (``result_data`` had): 20 000 URLs in one answer made
``client.download`` (and a batch) save 20 000 files.
"""

from __future__ import annotations

import pytest
from aiohttp import web

from tests.helpers.hostile import client_for, edit, hostile_server, json_answer, task_body

pytestmark = pytest.mark.asyncio


async def test_a_task_with_thousands_of_results_keeps_the_first_thousand() -> None:
    urls = [f"https://cdn.example.com/result-{index}.png" for index in range(5000)]

    async def handler(request: web.Request) -> web.StreamResponse:
        if request.method == "POST":
            return json_answer(task_body())
        return json_answer(task_body(request.path.rsplit("/", 1)[-1], status="completed", results=urls))

    async with hostile_server(handler) as server, client_for(server) as client:
        done = await client.images.generate(edit(), timeout=30)
    assert done.results == tuple(urls[:1000])
