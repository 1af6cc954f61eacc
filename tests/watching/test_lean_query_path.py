"""The tracker's query path: the task id is checked once, when its watch starts; an answer that
repeats the last one is not parsed again; an answer about another task is still refused."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

import evolink_async as evolink
from evolink_async import EventKind, PollPolicy, Task, TaskStatus
from evolink_async._protocols.evolink import api as evolink_api
from evolink_async._watching.tracker import Tracker

MINE = "task-unified-1757165031-mine"
OTHER = "task-unified-1757165031-other"
POLICY = PollPolicy(min_interval=0.005, max_interval=0.005, default_estimated_time=0.01, first_query=0.0, jitter=0.0)


def body(task_id: str, status: str, progress: int) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "id": task_id, "object": "image.generation.task", "created": 1757165031, "model": "qwen-image-edit",
        "status": status, "progress": progress, "type": "image",
        "task_info": {"can_cancel": status != "completed", "estimated_time": 0.01},
        "usage": {"billing_rule": "per_call", "credits_reserved": 1.0, "user_group": "default"},
    }  # fmt: skip
    if status == "completed":
        answer["results"] = ["https://cdn.example.com/result-0.png"]
    return answer


@contextlib.asynccontextmanager
async def server_answering(answers: list[dict[str, Any]]) -> AsyncIterator[tuple[str, list[str]]]:
    """Answers each query with the next of ``answers``, then the last one for ever."""
    queried: list[str] = []

    async def query(request: web.Request) -> web.Response:
        queried.append(request.match_info["task_id"])
        answer = answers[min(len(queried), len(answers)) - 1]
        return web.Response(body=json.dumps(answer).encode(), content_type="application/json")

    app = web.Application()
    app.router.add_get("/v1/tasks/{task_id}", query)
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", queried
    finally:
        await runner.cleanup()


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every query answer the Evolink protocol parses into a ``Task``."""
    parsed: list[object] = []
    structure_task = evolink_api.structure_task

    def counting(answer: object, **options: Any) -> Task:
        parsed.append(answer)
        return structure_task(answer, **options)

    monkeypatch.setattr(evolink_api, "structure_task", counting)
    return parsed


async def test_answers_that_repeat_the_last_one_are_not_parsed_again(parses: list[object]) -> None:
    answers = [body(MINE, "processing", 40)] * 6 + [body(MINE, "completed", 100)]
    async with server_answering(answers) as (url, queried):
        async with evolink.EvolinkClient("sk-evo-LEANPATH0123456789", base_url=url, poll_policy=POLICY) as client:
            async with asyncio.timeout(10):
                events = [event async for event in client.tasks.stream(MINE)]
    assert [event.kind for event in events] == [EventKind.PROGRESS, EventKind.COMPLETED]
    assert len(queried) == 7
    # The first "processing" answer and the terminal one; the five repeats came back as the same Task.
    assert len(parses) == 2


async def test_an_answer_about_another_task_is_refused_after_identical_answers(parses: list[object]) -> None:
    """The repeat short cut compares the answer's id with the id asked for before anything else:
    the same body about another task is never taken for the last answer (nor for the task)."""
    answers = [body(MINE, "processing", 40)] * 3 + [body(OTHER, "processing", 40)]
    async with server_answering(answers) as (url, queried):
        async with evolink.EvolinkClient("sk-evo-LEANPATH0123456789", base_url=url, poll_policy=POLICY) as client:
            async with asyncio.timeout(10):
                with pytest.raises(evolink.ResponseFormatError, match="about another task"):
                    await client.tasks.wait(MINE)
    assert len(parses) == 1 + 3  # the first answer, then each refused answer about the other task
    assert len(queried) == 3 + 3  # three answers about another task in a row end the watch


@pytest.mark.parametrize("task_id", ["..", "a/b", " task-1 ", "x" * 300])
async def test_the_tracker_checks_a_task_id_when_its_watch_starts(task_id: str) -> None:
    queried: list[str] = []

    async def fetch(task_id: str) -> Task:
        queried.append(task_id)
        return Task(id=task_id, status=TaskStatus.COMPLETED, progress=100)

    class Sink:
        def deliver(self, event: object) -> None:
            pass

        def fail(self, error: BaseException) -> None:
            pass

    tracker = Tracker(fetch, policy=POLICY)
    tracker.open()
    with pytest.raises(evolink.ValidationError, match="task_id"):
        tracker.watch(task_id, Sink())
    assert tracker.watched == 0
    assert queried == []
