"""Midjourney-proxy notifyHook posts through the same receiver: push first, polling the safety net."""

from __future__ import annotations

import asyncio
from collections import Counter

import evolink_async as evolink
from evolink_async.sandbox import MidjourneyOptions, Sandbox
from tests.helpers.receivers import aiohttp_receiver

from ..conftest import SCALE


def poll_requests(sandbox: Sandbox) -> int:
    requests = sandbox.ledger.requests
    return requests["GET /mj/task/{task_id}/fetch"] + requests["POST /mj/task/list-by-condition"]


# 10 s of the proxy's patience per hook POST is 0.1 s at SCALE: a loaded machine misses that on
# loopback, and every hook is lost (seen under CI). 1000 API seconds is 10 s real, as the Evolink
# callback tests use; dropped hooks are the subject of their own test.
HOOK_TIMEOUT = 1000.0


async def imagine_all(sandbox: Sandbox, receiver: evolink.CallbackReceiver | None, count: int) -> Counter[str]:
    async with evolink.MidjourneyClient(
        sandbox.mj_api_key, base_url=sandbox.mj_base_url, callbacks=receiver,
        poll_policy=evolink.PollPolicy().scaled(SCALE),
        retry=evolink.RetryPolicy(max_retries=5, initial_delay=0.01, max_delay=0.05),
    ) as mj:  # fmt: skip
        requests = [evolink.Imagine(prompt=f"a red fox {i}") for i in range(count)]
        async with asyncio.timeout(60), mj.fan_out(requests, max_in_flight=count) as events:
            terminal = Counter([event.kind.value async for event in events if event.is_terminal])
    return terminal


async def test_notify_hooks_replace_most_polling() -> None:
    options = MidjourneyOptions(concurrency=12, queue_size=20, hook_timeout=HOOK_TIMEOUT)
    async with Sandbox(time_scale=SCALE, seed=3, midjourney=options) as polled:
        assert await imagine_all(polled, None, 12) == Counter(completed=12)
        polling_only = poll_requests(polled)
    async with Sandbox(time_scale=SCALE, seed=3, midjourney=options) as sandbox, aiohttp_receiver() as receiver:
        assert await imagine_all(sandbox, receiver, 12) == Counter(completed=12)
        assert receiver.accepted >= 12
        assert poll_requests(sandbox) < polling_only


async def test_dropped_notify_hooks_still_end_every_task() -> None:
    options = MidjourneyOptions(concurrency=12, queue_size=20, hook_drop_rate=0.5, hook_duplicate_rate=0.3,
                                hook_timeout=HOOK_TIMEOUT)  # fmt: skip
    async with Sandbox(time_scale=SCALE, seed=4, midjourney=options) as sandbox, aiohttp_receiver() as receiver:
        assert await imagine_all(sandbox, receiver, 12) == Counter(completed=12)
