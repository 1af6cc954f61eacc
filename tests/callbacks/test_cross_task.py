"""A callback URL's token authorizes exactly its own task (issue 19, item 1).

Each class over real HTTP: the aiohttp app and the ASGI app under uvicorn (Evolink callbacks from the
sandbox), and Midjourney notifyHook URLs; plus the window before a submit's answer names its task.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import aiohttp

import evolink_async as evolink
from evolink_async._callbacks.receiver import CallbackRoute
from evolink_async._models.converter import structure_task
from evolink_async._protocols.midjourney.tasks import state_of, structure_mj_task
from evolink_async.sandbox import MidjourneyOptions, Sandbox

from ..conftest import SCALE
from .conftest import ServeReceiver, aiohttp_receiver

URL = "https://example.com/in.png"
FORGED = "https://forged.example/not-yours.png"


async def post(url: str, payload: Any) -> int:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        async with http.post(url, data=json.dumps(payload).encode()) as response:
            return response.status


def completed_body(task_id: str) -> dict[str, Any]:
    return {"id": task_id, "object": "image.generation.task", "status": "completed", "progress": 100,
            "results": [FORGED]}  # fmt: skip


async def until_watched(client: Any, count: int) -> None:
    async with asyncio.timeout(10):
        while client.tracker.watched < count:
            await asyncio.sleep(0.005)


async def test_a_url_completes_only_its_own_task(
    serve_receiver: ServeReceiver, scaled_client: Callable[..., evolink.EvolinkClient]
) -> None:
    async with Sandbox(time_scale=SCALE, seed=21) as sandbox, serve_receiver() as receiver:
        async with scaled_client(sandbox, callbacks=receiver) as client:
            task_a = await client.images.submit(evolink.RemoveBackground(image_urls=[URL]), idempotency_key="key-a-0123456789")
            task_b = await client.images.submit(evolink.RemoveBackground(image_urls=[URL]), idempotency_key="key-b-0123456789")
            registration_a = receiver.registration("key-a-0123456789")
            assert registration_a is not None
            stream_b = client.tasks.stream(task_b, timeout=30)
            events_b = asyncio.create_task(asyncio.wait_for(_collect(stream_b), 30))
            await until_watched(client, 1)
            # Task A's URL naming task B: refused, and B is not completed with what was posted.
            assert await post(registration_a.url, completed_body(task_b.id)) == 403
            # Naming a task this client never submitted: refused too.
            assert await post(registration_a.url, completed_body("task-unified-1757165031-never")) == 403
            done_b = (await events_b)[-1].task
            done_a = await client.tasks.wait(task_a, timeout=30)
            async with asyncio.timeout(10):  # both genuine callbacks made their attempts
                while {task_a.id, task_b.id} - {attempt.task_id for attempt in sandbox.ledger.callbacks}:
                    await asyncio.sleep(0.005)
        assert done_b is not None
        assert done_b.id == task_b.id
        assert FORGED not in done_b.results
        assert done_b.results
        assert FORGED not in done_a.results
        assert done_a.results
        # The strays did not make the genuine callback of A (or of B) fail.
        answers = {(attempt.task_id, attempt.status) for attempt in sandbox.ledger.callbacks}
        assert answers == {(task_a.id, 200), (task_b.id, 200)}
        assert receiver.latest(task_a.id) is not None
        assert receiver.latest(task_a.id).results == done_a.results


async def _collect(stream: Any) -> list[evolink.TaskEvent]:
    return [event async for event in stream]


class Pushed:
    """A client's side of a route: what was pushed to its tracker, and the tasks its server knows
    (a lost answer's settling fetches its candidate before taking it)."""

    def __init__(self) -> None:
        self.tasks: list[evolink.Task] = []
        self.server_knows: dict[str, evolink.Task] = {}
        self.fetched: list[str] = []

    def route(self, *, mj: bool = False) -> CallbackRoute:
        async def fetch(task_id: str) -> evolink.Task:
            self.fetched.append(task_id)
            if task_id not in self.server_knows:
                raise evolink.NotFoundError("no such task", status_code=404)
            return self.server_knows[task_id]

        if mj:
            return CallbackRoute(parse=structure_mj_task, push=self.tasks.append, fetch=fetch, marker_of=state_of)
        return CallbackRoute(parse=structure_task, push=self.tasks.append, fetch=fetch)


def evolink_body(task_id: str, status: str = "completed") -> dict[str, Any]:
    return {"id": task_id, "object": "image.generation.task", "status": status,
            "progress": 100 if status == "completed" else 10, "results": [f"https://x.example/{task_id}.png"]}  # fmt: skip


async def test_before_the_answer_a_stray_first_callback_does_not_lock_the_url(serve_receiver: ServeReceiver) -> None:
    async with serve_receiver() as receiver:
        pushed = Pushed()
        registration = receiver.register("key-a-0123456789", pushed.route())
        # A stray body first, then the genuine one, both before the submit's answer names the task.
        assert await post(registration.url, evolink_body("task-unified-1-stray")) == 202
        assert await post(registration.url, evolink_body("task-unified-1-genuine")) == 202
        assert pushed.tasks == []  # nothing is trusted before the answer
        receiver.bind(registration, "task-unified-1-genuine")  # what the submit's answer does
        assert [task.id for task in pushed.tasks] == ["task-unified-1-genuine"]
        assert receiver.latest("task-unified-1-stray") is None
        assert await post(registration.url, evolink_body("task-unified-1-stray")) == 403
        assert await post(registration.url, evolink_body("task-unified-1-genuine")) == 200  # a retry: taken


async def test_a_task_another_submit_owns_is_refused_even_before_the_answer(serve_receiver: ServeReceiver) -> None:
    async with serve_receiver() as receiver:
        pushed = Pushed()
        unanswered = receiver.register("key-a-0123456789", pushed.route())
        other = receiver.register("key-b-0123456789", pushed.route())
        receiver.bind(other, "task-unified-2-owned")
        assert await post(unanswered.url, evolink_body("task-unified-2-owned")) == 403
        # Settling the lost answer finds nothing: the other submit's task is not this one's.
        assert await receiver.settle(unanswered, 0.05) is None
        assert unanswered.task_id is None
        assert pushed.tasks == []


async def test_settling_a_lost_answer_skips_tasks_that_became_another_submits() -> None:
    async with aiohttp_receiver() as receiver:
        pushed = Pushed()
        lost = receiver.register("key-a-0123456789", pushed.route())
        other = receiver.register("key-b-0123456789", pushed.route())
        assert await post(lost.url, evolink_body("task-unified-2-theirs")) == 202  # held, not yet known
        receiver.bind(other, "task-unified-2-theirs")  # then the other submit's answer claims it
        assert await post(lost.url, evolink_body("task-unified-1-mine")) == 202
        pushed.server_knows["task-unified-1-mine"] = structure_task(evolink_body("task-unified-1-mine"))
        settled = await receiver.settle(lost, 5)
        assert settled is not None
        assert settled.id == "task-unified-1-mine"
        assert lost.task_id == "task-unified-1-mine"


def mj_body(task_id: str, state: str | None) -> dict[str, Any]:
    return {"id": task_id, "action": "IMAGINE", "status": "SUCCESS", "progress": "100%", "state": state,
            "imageUrl": FORGED}  # fmt: skip


async def test_a_notify_hook_refuses_another_submits_state_before_the_answer() -> None:
    async with aiohttp_receiver() as receiver:
        pushed = Pushed()
        registration = receiver.register("key-a-0123456789", pushed.route(mj=True), marker="key-a-0123456789")
        assert await post(registration.url, mj_body("1748339029401828", "key-b-0123456789")) == 403
        assert await post(registration.url, mj_body("1748339029401829", "key-a-0123456789")) == 202
        pushed.server_knows["1748339029401829"] = structure_mj_task(mj_body("1748339029401829", "key-a-0123456789"))
        assert await receiver.settle(registration, 5) is not None
        assert registration.task_id == "1748339029401829"


async def test_a_notify_hook_url_completes_only_its_own_task(serve_receiver: ServeReceiver) -> None:
    # Hooks dropped: no genuine post reaches A's URL first, so only the token stands in the way.
    options = MidjourneyOptions(hook_drop_rate=1.0)
    async with Sandbox(time_scale=SCALE, seed=22, midjourney=options) as sandbox, serve_receiver() as receiver:
        async with evolink.MidjourneyClient(
            sandbox.mj_api_key, base_url=sandbox.mj_base_url, callbacks=receiver,
            poll_policy=evolink.PollPolicy().scaled(SCALE),
        ) as mj:  # fmt: skip
            task_a = await mj.submit(evolink.Imagine(prompt="a red fox"), idempotency_key="key-a-0123456789")
            task_b = await mj.submit(evolink.Imagine(prompt="a blue fox"), idempotency_key="key-b-0123456789")
            registration_a = receiver.registration("key-a-0123456789")
            assert registration_a is not None
            events_b = asyncio.create_task(asyncio.wait_for(_collect(mj.tasks.stream(task_b, timeout=30)), 30))
            await until_watched(mj, 1)
            body_b = sandbox.mj_task(task_b.id)
            assert body_b is not None
            forged = dict(body_b, status="SUCCESS", progress="100%", imageUrl=FORGED, finishTime=body_b.get("submitTime"))
            assert await post(registration_a.url, forged) == 403
            assert await post(registration_a.url, dict(forged, id="1748339029401828")) == 403  # never submitted
            done_b = (await events_b)[-1].task
            done_a = await mj.tasks.wait(task_a, timeout=30)
        assert done_b is not None
        assert done_b.id == task_b.id
        assert done_b.results
        assert FORGED not in done_b.results
        assert FORGED not in done_a.results


async def test_settling_takes_no_task_the_server_does_not_know_and_trusts_the_server_not_the_body() -> None:
    async with aiohttp_receiver() as receiver:
        pushed = Pushed()
        lost = receiver.register("key-a-0123456789", pushed.route())
        # A URL holder invents a task first; the genuine callback comes after it.
        assert await post(lost.url, evolink_body("task-unified-1-invented")) == 202
        assert await post(lost.url, evolink_body("task-unified-1-mine")) == 202
        pushed.server_knows["task-unified-1-mine"] = structure_task(evolink_body("task-unified-1-mine", "processing"))
        settled = await receiver.settle(lost, 5)
        assert settled is not None
        assert settled.id == "task-unified-1-mine"
        assert settled.status is evolink.TaskStatus.PROCESSING  # the server's snapshot, not the posted one
        assert pushed.fetched == ["task-unified-1-invented", "task-unified-1-mine"]
        assert lost.task_id == "task-unified-1-mine"
