"""notifyHook: one POST of the full task per change, no retry, with drop/duplicate/delay quirks."""

from __future__ import annotations

import asyncio
from typing import Any

from evolink_async.sandbox import MidjourneyOptions, Sandbox
from tests.helpers.mj_sandbox import receiver

SCALE = {"time_scale": 0.01, "seed": 11}


def _finished(task_id: str) -> Any:
    return lambda bodies: any(b["id"] == task_id and b["status"] in ("SUCCESS", "FAILURE") for b in bodies)


async def test_every_change_is_posted_once_with_the_full_task(mj_for: Any) -> None:
    async with receiver() as hook, Sandbox(**SCALE) as sandbox:
        mj = mj_for(sandbox)
        task_id = await mj.imagine("a hooked fish", notifyHook=hook.url, state="abc")
        await hook.until(_finished(task_id))
        await mj.imagine("no hook here")
        statuses = [b["status"] for b in hook.bodies]
        assert statuses[0] == "NOT_START"
        assert statuses[1] == "SUBMITTED"
        assert statuses[-1] == "SUCCESS"
        assert set(statuses[2:-1]) == {"IN_PROGRESS"}
        assert all(b["id"] == task_id and b["state"] == "abc" for b in hook.bodies)
        assert hook.bodies[-1]["buttons"]
        assert hook.bodies[-1]["progress"] == "100%"
        assert hook.bodies[-1] == await mj.fetch(task_id)  # the same object as fetch
        attempts = sandbox.ledger.mj_hooks
        assert len(attempts) == len(hook.bodies)
        assert all(a.ok for a in attempts)
        assert [(a.task_status, a.progress) for a in attempts] == [(b["status"], b["progress"]) for b in hook.bodies]


async def test_a_failed_hook_is_not_retried(mj_for: Any) -> None:
    async with Sandbox(**SCALE) as sandbox:
        mj = mj_for(sandbox)
        task_id = await mj.imagine(notifyHook="http://127.0.0.1:9/nothing-listens")
        done = await mj.wait(task_id)
        await hook_settle(sandbox, lambda: any(a.task_status == "SUCCESS" for a in sandbox.ledger.mj_hooks))
        attempts = sandbox.ledger.mj_hooks
        assert len(attempts) >= 4
        assert all(a.error and not a.ok for a in attempts)
        assert len({(a.task_status, a.progress) for a in attempts}) == len(attempts)  # one attempt each
        assert done["status"] == "SUCCESS"


async def test_remote_hooks_are_never_called(mj_for: Any) -> None:
    async with Sandbox(**SCALE) as sandbox:
        mj = mj_for(sandbox)
        await mj.wait(await mj.imagine(notifyHook="https://example.com/hook"))
        await hook_settle(sandbox, lambda: any(a.task_status == "SUCCESS" for a in sandbox.ledger.mj_hooks))
        assert all(a.error and "loopback" in a.error for a in sandbox.ledger.mj_hooks)


async def test_drop_duplicate_and_delay(mj_for: Any) -> None:
    options = MidjourneyOptions(hook_drop_rate=0.3, hook_duplicate_rate=0.4, hook_delay=(0.0, 30.0))
    async with receiver() as hook, Sandbox(**SCALE, midjourney=options) as sandbox:
        mj = mj_for(sandbox)
        ids = [await mj.imagine(f"p{i}", notifyHook=hook.url) for i in range(3)]
        for task_id in ids:
            await mj.wait(task_id)
        ledger = sandbox.ledger
        await asyncio.sleep(0.6)  # the longest delay is 30 API s (0.3 s) per copy
        await hook_settle(sandbox, lambda: len(hook.bodies) == sum(1 for a in ledger.mj_hooks if not a.dropped))
        dropped = [a for a in ledger.mj_hooks if a.dropped]
        duplicates = [a for a in ledger.mj_hooks if a.duplicate]
        assert dropped
        assert duplicates
        received = [(b["id"], b["status"], b["progress"]) for b in hook.bodies]
        assert len(received) > len(set(received))  # some arrived twice
        sent = {(a.task_id, a.task_status, a.progress) for a in ledger.mj_hooks if not a.dropped}
        assert set(received) == sent
        assert not {(a.task_id, a.task_status, a.progress) for a in dropped} & set(received)


async def test_cancel_is_notified(mj_for: Any) -> None:
    async with receiver() as hook, Sandbox(**SCALE) as sandbox:
        mj = mj_for(sandbox)
        task_id = await mj.imagine(notifyHook=hook.url)
        await mj.call("POST", f"/task/{task_id}/cancel")
        await hook.until(lambda bodies: any(b.get("failReason") == "取消任务" for b in bodies))
        await asyncio.sleep(0.8)  # past the planned end: its SUCCESS send was abandoned
        assert not any(b["status"] == "SUCCESS" for b in hook.bodies)


async def hook_settle(sandbox: Sandbox, predicate: Any, limit: float = 10.0) -> None:
    async with asyncio.timeout(limit):
        while not predicate():
            await asyncio.sleep(0.02)
