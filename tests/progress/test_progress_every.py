"""``progress_every``: steady progress for a watched task, with or without callbacks."""

from __future__ import annotations

import asyncio

import pytest

import evolink_async as evolink
from evolink_async import EventKind, PollPolicy, QwenImageEdit
from evolink_async.sandbox import Sandbox
from tests.helpers.receivers import aiohttp_receiver

TASKS_ENDPOINT = "GET /v1/tasks/{task_id}"
SCALE = 0.1
# A 6 s task: a 60 s estimate on a 10x clock, every task exactly as long as its estimate.
SIX_SECONDS = {"time_scale": SCALE, "estimated_times": {"qwen-image-edit": 60.0}, "duration_spread": (1.0, 1.0)}


def edit() -> QwenImageEdit:
    return QwenImageEdit(prompt="edit", image_urls=["https://example.com/a.png"])


async def distinct_progress(client: evolink.EvolinkClient, task: evolink.Task, **options: float) -> list[int]:
    seen: list[int] = []
    async with client.tasks.stream(task, **options) as events:
        async for event in events:
            if event.kind is EventKind.PROGRESS:
                seen.append(event.progress)
            else:
                assert event.kind is EventKind.COMPLETED
    return seen


@pytest.mark.evolink_sandbox(**SIX_SECONDS)
async def test_a_watched_task_reports_steady_progress(evolink_sandbox: Sandbox) -> None:
    async with evolink.EvolinkClient(
        evolink_sandbox.api_key, base_url=evolink_sandbox.base_url, poll_policy=PollPolicy().scaled(SCALE)
    ) as client:
        task = await client.images.submit(edit())
        steady = await distinct_progress(client, task, progress_every=0.3)
    assert len(set(steady)) >= 10


@pytest.mark.evolink_sandbox(**SIX_SECONDS)
async def test_callbacks_keep_progress_for_a_watched_task_and_cost_nothing_unwatched(
    evolink_sandbox: Sandbox,
) -> None:
    async with aiohttp_receiver() as receiver, evolink.EvolinkClient(
        evolink_sandbox.api_key,
        base_url=evolink_sandbox.base_url,
        poll_policy=PollPolicy().scaled(SCALE),
        callbacks=receiver,
    ) as client:
        unwatched = await client.images.submit(edit())
        async with asyncio.timeout(60):
            while unwatched.id not in evolink_sandbox.ledger.callbacks_delivered:
                await asyncio.sleep(0.05)
        # Nobody streamed it: its end came by callback, and not one query was spent on it.
        assert evolink_sandbox.ledger.requests[TASKS_ENDPOINT] == 0

        watched = await client.images.submit(edit())
        steady = await distinct_progress(client, watched, progress_every=0.3)
    assert len(set(steady)) >= 10  # without progress_every a callback-backed stream saw only the end


@pytest.mark.evolink_sandbox(**SIX_SECONDS)
async def test_without_progress_every_the_policy_stays_economical(evolink_sandbox: Sandbox) -> None:
    # The control: the same task under the default (economical) schedule gets a handful of
    # queries, so the steady cadence above comes from progress_every, not from the policy.
    async with evolink.EvolinkClient(
        evolink_sandbox.api_key, base_url=evolink_sandbox.base_url, poll_policy=PollPolicy().scaled(SCALE)
    ) as client:
        task = await client.images.submit(edit())
        economical = await distinct_progress(client, task)
    assert evolink_sandbox.ledger.requests[TASKS_ENDPOINT] < 10
    assert len(set(economical)) < 10


def test_progress_every_is_validated() -> None:
    client = evolink.EvolinkClient("sk-evo-TESTKEY0123456789abcdef", base_url="http://127.0.0.1:9")
    for bad in [0, -1, float("nan"), float("inf"), "1", True]:
        with pytest.raises(evolink.ValidationError) as caught:
            client.tasks.stream("task-unified-1", progress_every=bad)  # type: ignore[arg-type]
        assert caught.value.field == "progress_every"


@pytest.mark.evolink_sandbox(**SIX_SECONDS)
async def test_a_fan_out_can_ask_for_steady_progress_too(evolink_sandbox: Sandbox) -> None:
    requests = [(i, edit()) for i in range(3)]
    async with evolink.EvolinkClient(
        evolink_sandbox.api_key, base_url=evolink_sandbox.base_url, poll_policy=PollPolicy().scaled(SCALE)
    ) as client:
        async with client.fan_out(requests, max_in_flight=3, progress_every=0.3) as events:
            progress: dict[object, set[int]] = {}
            async for event in events:
                if event.kind is EventKind.PROGRESS:
                    progress.setdefault(event.key, set()).add(event.progress)
    assert events.summary.outcomes["completed"] == 3
    assert all(len(seen) >= 10 for seen in progress.values())
    assert len(progress) == 3


@pytest.mark.evolink_sandbox(time_scale=SCALE)
async def test_midjourney_streams_keep_the_same_cadence(evolink_sandbox: Sandbox) -> None:
    # An MJ imagine on this clock runs several seconds, and its progress moves in 3-5 steps, as
    # the proxies' does ("37%", which the client reads as 37): a steady cadence sees them.
    async with evolink.MidjourneyClient(
        evolink_sandbox.mj_api_key, base_url=evolink_sandbox.mj_base_url, poll_policy=PollPolicy().scaled(SCALE)
    ) as mj:
        task = await mj.submit(evolink.Imagine(prompt="a lighthouse at dusk"))
        steady = await distinct_progress(mj, task, progress_every=0.3)  # type: ignore[arg-type]
    assert len(set(steady)) >= 3
    assert steady == sorted(steady)
