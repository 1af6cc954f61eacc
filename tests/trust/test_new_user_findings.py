"""Regressions from a new-user trial and a hostile-server probe of the whole SDK."""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

import pytest
from aiohttp import web

import evolink_async as evolink

from ._hostile import API_KEY, edit, hostile_server, json_answer, task_body


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


@pytest.mark.parametrize(
    "body",
    [
        {"submitTime": 10**400, "startTime": 1e308, "progress": 10**400},
        {"submitTime": float("nan"), "progress": "1e999%"},
    ],
)
def test_midjourney_absurd_numbers_are_tolerated(body: dict[str, Any]) -> None:
    task = evolink.MidjourneyClient.parse_task({"id": "1712345678901", "status": "IN_PROGRESS", **body})
    assert task.created is None
    assert 0 <= task.progress <= 100


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: evolink.EvolinkClient(API_KEY, base_url=""), "base_url"),
        (lambda: evolink.EvolinkClient(API_KEY, files_base_url=""), "files_base_url"),
        (lambda: evolink.EvolinkClient(API_KEY, timeout=10**400), "timeout"),
        (lambda: evolink.MidjourneyClient(API_KEY, base_url="https://mj.example", path_prefix=None), "path_prefix"),
        (lambda: evolink.PollPolicy().scaled("2"), "factor"),
        (lambda: evolink.PollPolicy().scaled(math.nan), "factor"),
        (lambda: evolink.RemoveBackground(prompt="x", image_urls=["https://e.com/a.png"]), "prompt"),
        (lambda: evolink.ImageRequest(model="z-image-turbo", model_params={"x": math.nan}), "model_params"),
        (lambda: evolink.BatchSpec(model="qwen-image-edit", prompt="p", input_dir="i", output_dir="o",
                                   max_in_flight=math.nan), "max_in_flight"),
        (lambda: evolink.BatchSpec(model="qwen-image-edit", prompt="p", input_dir=None, output_dir="o"), "input_dir"),
        (lambda: evolink.BatchSpec(model="qwen-image-edit", prompt="p", input_dir="i", output_dir="o",
                                   max_credits=math.nan), "max_credits"),
        (lambda: evolink.BatchSpec(model="qwen-image-edit", prompt="p", input_dir="i", output_dir="o",
                                   recursive=1), "recursive"),
    ],
)
def test_more_bad_arguments_are_validation_errors(build: Any, field: str) -> None:
    with pytest.raises(evolink.ValidationError) as info:
        build()
    assert info.value.field == field


def test_server_text_in_errors_is_bounded() -> None:
    error = evolink.MidjourneyError("x" * 100_000, code=10**400)  # type: ignore[arg-type]
    assert len(str(error)) < 1_200
    status = evolink.BadRequestError("y" * 100_000, status_code=400, code="z" * 10_000, param="p" * 10_000)
    assert len(str(status)) < 1_600
