"""MidjourneyClient against the sandbox's Midjourney-proxy emulation: real HTTP on 127.0.0.1.

Every sandbox runs on a scaled clock and every await is bounded (the conftest runs each async
test under a deadline, and the waits below carry their own timeouts).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import attrs
import pytest

from evolink_async import (
    AuthenticationError,
    BannedPromptError,
    Blend,
    Change,
    ChangeAction,
    Describe,
    EventKind,
    Imagine,
    MidjourneyClient,
    Modal,
    NotFoundError,
    PollPolicy,
    RetryPolicy,
    Shorten,
    TaskCancelledError,
    TaskFailedError,
    TaskNeedsModalError,
    TaskStatus,
    UnsupportedOperationError,
)
from evolink_async.sandbox import Faults, MidjourneyOptions, Sandbox
from evolink_async.sandbox import _fault_answers as sandbox_faults
from evolink_async.sandbox._png import Image, encode

SCALE = 0.01
KEY = "mj-e2e-secret-0123456789abcdef"
PNG = b"\x89PNG\r\n\x1a\n"
LIMIT = 15.0  # seconds any single wait may take


def png(seed: int = 0) -> bytes:
    pixels = bytes((seed * 40 + i) % 256 for i in range(4 * 4 * 4))
    return encode(Image(4, 4, pixels))


@asynccontextmanager
async def sandbox(scale: float = SCALE, **options: Any) -> AsyncIterator[Sandbox]:
    mj = options.pop("midjourney", None) or MidjourneyOptions(api_key=KEY)
    async with Sandbox(time_scale=scale, seed=options.pop("seed", 0), midjourney=mj, **options) as box:
        yield box


def client(box: Sandbox, scale: float = SCALE, **options: Any) -> MidjourneyClient:
    options.setdefault("poll_policy", PollPolicy().scaled(scale))
    options.setdefault("retry", RetryPolicy(max_retries=4, initial_delay=0.001, max_delay=0.01))
    options.setdefault("auth", "mj-api-secret")
    return MidjourneyClient(options.pop("api_key", box.mj_api_key), base_url=box.mj_base_url, **options)


async def wait(mj: MidjourneyClient, task: Any, limit: float = LIMIT) -> Any:
    return await asyncio.wait_for(mj.tasks.wait(task, timeout=limit), limit + 1)


def fetches(box: Sandbox) -> int:
    return sum(n for key, n in box.ledger.requests.items() if key.startswith("GET") and key.endswith("/fetch"))


def batches(box: Sandbox) -> int:
    return sum(n for key, n in box.ledger.requests.items() if "list-by-" in key)


# --- flows ---------------------------------------------------------------------------------


async def test_imagine_upscale_download(tmp_path: Path) -> None:
    async with sandbox() as box, client(box) as mj:
        task = await mj.submit(Imagine(prompt="a red fox in snow"))
        assert task.status is TaskStatus.PENDING
        done = await wait(mj, task)
        assert done.status is TaskStatus.COMPLETED
        assert done.results
        assert done.midjourney is not None
        assert {b.label for b in done.midjourney.buttons} >= {"U1", "U2", "V4"}
        upscaled = await asyncio.wait_for(mj.action(done, "U2"), LIMIT)
        assert upscaled.id != done.id
        up = await wait(mj, upscaled)
        assert up.status is TaskStatus.COMPLETED
        assert up.type == "UPSCALE"
        for finished in (done, up):
            paths = await asyncio.wait_for(mj.download(finished, tmp_path, name=finished.id), LIMIT)
            assert paths
            assert all(p.read_bytes().startswith(PNG) for p in paths)
        assert [e.endpoint for e in box.ledger.mj_tasks] == ["imagine", "action"]


async def test_blend_describe_shorten_change() -> None:
    async with sandbox() as box, client(box) as mj:
        blend = await mj.submit(Blend(images=[png(1), png(2), png(3)], dimensions="LANDSCAPE"))
        describe = await mj.submit(Describe(image=png(4)))
        shorten = await mj.submit(Shorten(prompt="a very long and winding prompt about a red fox in deep snow"))
        blended, described, shortened = await asyncio.gather(*(wait(mj, t) for t in (blend, describe, shorten)))
        assert blended.status is TaskStatus.COMPLETED
        assert blended.type == "BLEND"
        assert blended.results
        assert described.status is TaskStatus.COMPLETED
        assert described.midjourney is not None
        assert (described.midjourney.final_prompt or "").count("\ufe0f\u20e3") == 4
        assert shortened.status is TaskStatus.COMPLETED
        assert shortened.midjourney is not None
        assert shortened.midjourney.final_prompt
        changed = await mj.submit(Change(task=blended, action=ChangeAction.VARIATION, index=3))
        varied = await wait(mj, changed)
        assert varied.status is TaskStatus.COMPLETED
        assert varied.type == "VARIATION"
        rerolled = await wait(mj, await mj.submit(Change(task=blended, action="REROLL")))
        assert rerolled.status is TaskStatus.COMPLETED
        endpoints = Counter(e.endpoint for e in box.ledger.mj_tasks)
        assert endpoints == {"blend": 1, "describe": 1, "shorten": 1, "change": 2}


@pytest.mark.parametrize("button", ["Custom Zoom", "Vary (Region)"])
async def test_modal_flow_never_hangs(button: str) -> None:
    async with sandbox() as box, client(box) as mj:
        grid = await wait(mj, await mj.submit(Imagine(prompt="a red fox")))
        upscaled = await wait(mj, await mj.action(grid, "U1"))
        waiting = await asyncio.wait_for(mj.action(upscaled, button), LIMIT)
        assert waiting.status is TaskStatus.MODAL
        assert [e.code for e in box.ledger.mj_tasks][-1] == 21
        # As a Task and as a bare id (the first query shows MODAL): wait says what to do, quickly.
        for handle in (waiting, waiting.id):
            with pytest.raises(TaskNeedsModalError):
                await asyncio.wait_for(mj.tasks.wait(handle, timeout=LIMIT), 2.0)
        confirmed = await mj.submit(Modal(task=waiting, prompt="a red fox, zoomed out --zoom 2"))
        assert confirmed.id == waiting.id
        done = await wait(mj, confirmed)
        assert done.status is TaskStatus.COMPLETED
        assert done.results
        assert len(box.ledger.mj_tasks) == 3  # the modal confirmation created no new task


async def test_describe_prompt_button_goes_through_modal() -> None:
    async with sandbox() as box, client(box) as mj:
        described = await wait(mj, await mj.submit(Describe(image=png())))
        waiting = await mj.action(described, "2")
        assert waiting.status is TaskStatus.MODAL
        done = await wait(mj, await mj.submit(Modal(task=waiting)))
        assert done.status is TaskStatus.COMPLETED
        assert done.type == "IMAGINE"
        assert box.ledger.mj_tasks[-1].code == 21


async def test_fan_out_ends_modal_inputs_with_needs_modal() -> None:
    async with sandbox() as box, client(box) as mj:
        grid = await wait(mj, await mj.submit(Imagine(prompt="a red fox")))
        up = await wait(mj, await mj.action(grid, "U3"))
        custom_zoom = next(b.custom_id for b in up.midjourney.buttons if b.label == "Custom Zoom")  # type: ignore[union-attr]
        from evolink_async import Action

        requests = [("zoom", Action(task=up, custom_id=custom_zoom)), ("fox", Imagine(prompt="another fox"))]
        async with mj.fan_out(requests, timeout=LIMIT) as events:
            terminal = {e.key: e for e in [e async for e in events] if e.kind.is_terminal}
        assert terminal["fox"].kind is EventKind.COMPLETED
        assert terminal["zoom"].kind is EventKind.FAILED
        assert isinstance(terminal["zoom"].error, TaskNeedsModalError)
        assert len(box.ledger.mj_tasks) == 4


# --- statuses, codes and progress quirks -------------------------------------------------


@pytest.mark.parametrize(
    ("status", "progress"), [("FAILURE", ""), ("FAILED", ""), ("FAILURE", "100%"), ("FAILED", "100%")]
)
async def test_failures_are_failures(status: str, progress: str) -> None:
    options = MidjourneyOptions(api_key=KEY, failure_status=status, failure_progress=progress)  # type: ignore[arg-type]
    async with sandbox(midjourney=options, faults=Faults(task_failure_rate=1.0)) as box, client(box) as mj:
        task = await mj.submit(Imagine(prompt="a red fox"))
        with pytest.raises(TaskFailedError) as failed:
            await wait(mj, task)
        assert failed.value.task.status is TaskStatus.FAILED
        assert failed.value.task.results == ()
        assert box.mj_task(task.id)["progress"] == progress  # type: ignore[index]


async def test_blank_status_before_first_upstream_poll_is_pending() -> None:
    options = MidjourneyOptions(api_key=KEY, blank_status_for=20.0)
    async with sandbox(midjourney=options) as box, client(box) as mj:
        task = await mj.submit(Imagine(prompt="a red fox"))
        seen = await asyncio.wait_for(mj.tasks.get(task), LIMIT)
        assert box.mj_task(task.id)["status"] == ""  # type: ignore[index]
        assert seen.status is TaskStatus.PENDING
        assert not seen.is_terminal
        assert (await wait(mj, task)).status is TaskStatus.COMPLETED


async def test_stuck_at_85_to_93_until_server_timeout() -> None:
    options = MidjourneyOptions(api_key=KEY, timeout=60.0)
    async with sandbox(midjourney=options, faults=Faults(stuck_rate=1.0)) as box, client(box) as mj:
        task = await mj.submit(Imagine(prompt="a red fox"))
        events = [event async for event in mj.tasks.stream(task, timeout=LIMIT)]
        last = events[-1]
        assert last.kind is EventKind.FAILED
        assert last.task is not None
        assert last.task.error is not None
        assert last.task.error.code == "generation_timeout"
        assert 85 <= max(e.progress for e in events[:-1] if e.progress is not None) <= 93
        assert box.mj_task(task.id)["failReason"] == "任务超时"  # type: ignore[index]


async def test_code_22_queued_tasks_are_kept_and_finish() -> None:
    options = MidjourneyOptions(api_key=KEY, concurrency=1, queue_size=10)
    async with sandbox(midjourney=options) as box, client(box) as mj:
        tasks = [await mj.submit(Imagine(prompt=f"fox {i}")) for i in range(3)]
        assert [e.code for e in box.ledger.mj_tasks] == [1, 22, 22]
        assert all(t.status is TaskStatus.PENDING for t in tasks)
        done = await asyncio.gather(*(wait(mj, t) for t in tasks))
        assert all(d.status is TaskStatus.COMPLETED for d in done)


@pytest.mark.parametrize("code", [23, 9])
async def test_queue_full_is_retried(code: int) -> None:
    # The first task runs 2 s (200 API s) in the only slot: the second submit, sent right after the
    # first's answer, is refused until then (sent together, a loaded machine could let the first
    # finish before the second arrived), and its retries outlast the 2 s.
    options = MidjourneyOptions(api_key=KEY, concurrency=1, queue_size=0, queue_full_code=code,
                                durations={"IMAGINE": 200.0})  # fmt: skip
    retry = RetryPolicy(max_retries=40, initial_delay=0.05, max_delay=0.5)
    async with sandbox(midjourney=options) as box, client(box, retry=retry) as mj:
        first = await mj.submit(Imagine(prompt="fox 0"))
        second = await mj.submit(Imagine(prompt="fox 1"))
        assert box.ledger.mj_refused[code] >= 1
        assert len(box.ledger.mj_tasks) == 2
        for task in (first, second):
            assert (await wait(mj, task)).status is TaskStatus.COMPLETED


async def test_queue_full_through_every_retry_raises() -> None:
    from evolink_async import QueueFullError

    options = MidjourneyOptions(api_key=KEY, concurrency=1, queue_size=0)
    retry = RetryPolicy(max_retries=2, initial_delay=0.001, max_delay=0.001)
    async with sandbox(midjourney=options) as box, client(box, retry=retry) as mj:
        await mj.submit(Imagine(prompt="fox"))
        with pytest.raises(QueueFullError) as full:
            await mj.submit(Imagine(prompt="another fox"))
        assert full.value.code == 23
        assert box.ledger.mj_refused[23] == 3
        assert len(box.ledger.mj_tasks) == 1


async def test_banned_prompt_at_submit_and_at_execution() -> None:
    async with sandbox() as box, client(box) as mj:
        with pytest.raises(BannedPromptError) as banned:
            await mj.submit(Imagine(prompt="a Nude statue"))
        assert banned.value.banned_word == "nude"
        assert banned.value.code == 24
        assert box.ledger.mj_tasks == []
        assert box.ledger.mj_refused[24] == 1
    options = MidjourneyOptions(api_key=KEY, banned_check="execute")
    async with sandbox(midjourney=options) as box, client(box) as mj:
        task = await mj.submit(Imagine(prompt="a nude statue"))
        with pytest.raises(TaskFailedError) as failed:
            await wait(mj, task)
        assert failed.value.task.error is not None
        assert failed.value.task.error.code == "content_policy_violation"


@pytest.mark.parametrize("server_auth", ["any", "mj-api-secret", "bearer"])
@pytest.mark.parametrize("client_auth", ["bearer", "mj-api-secret"])
async def test_wrong_key_is_authentication_error(
    server_auth: str, client_auth: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    options = MidjourneyOptions(api_key=KEY, auth=server_auth)  # type: ignore[arg-type]
    wrong = "mj-wrong-secret-9876543210fedcba"
    async with sandbox(midjourney=options) as box:
        async with client(box, auth=client_auth, api_key=wrong) as mj:
            with pytest.raises(AuthenticationError) as refused:
                await mj.submit(Imagine(prompt="a red fox"))
            with pytest.raises(AuthenticationError) as refused_query:
                await mj.tasks.get("1712345678901123")
            texts = [repr(mj), str(mj.config), repr(mj.config)]
            for exc in (refused.value, refused_query.value):
                texts += [str(exc), repr(exc), repr(getattr(exc, "body", None)), repr(vars(exc))]
        matching = server_auth == "any" or server_auth == client_auth
        async with client(box, auth=client_auth) as mj:
            if matching:
                task = await mj.submit(Imagine(prompt="a red fox"))
                assert (await wait(mj, task)).status is TaskStatus.COMPLETED
            else:
                with pytest.raises(AuthenticationError) as other:
                    await mj.submit(Imagine(prompt="a red fox"))
                texts += [str(other.value), repr(other.value)]
            texts += [repr(mj), str(mj.config), repr(mj.config)]
        texts += [record.getMessage() for record in caplog.records]
        for secret in (KEY, wrong):
            assert not any(secret in text for text in texts), secret


async def test_cancel_and_cancel_switched_off() -> None:
    async with sandbox() as box, client(box) as mj:
        task = await mj.submit(Imagine(prompt="a red fox"))
        cancelled = await asyncio.wait_for(mj.tasks.cancel(task), LIMIT)
        assert cancelled.status is TaskStatus.CANCELLED
        with pytest.raises(TaskCancelledError) as ended:
            await wait(mj, task)
        assert ended.value.task.status is TaskStatus.CANCELLED
        assert box.mj_task(task.id)["status"] == "FAILURE"  # type: ignore[index]  # trueai: FAILURE "取消任务"
    options = MidjourneyOptions(api_key=KEY, cancel=False)
    async with sandbox(midjourney=options) as box, client(box) as mj:
        task = await mj.submit(Imagine(prompt="a red fox"))
        with pytest.raises(UnsupportedOperationError):
            await mj.tasks.cancel(task)
        with pytest.raises(UnsupportedOperationError):  # learned: no second request
            await mj.tasks.cancel(task)
        assert (await wait(mj, task)).status is TaskStatus.COMPLETED


@pytest.mark.parametrize("quirk", ["empty", "no_content", "not_found"])
async def test_unknown_task_is_not_found_after_grace(quirk: str) -> None:
    options = MidjourneyOptions(api_key=KEY, unknown_fetch=quirk)  # type: ignore[arg-type]
    async with sandbox(midjourney=options) as box, client(box) as mj:
        with pytest.raises(NotFoundError):
            await asyncio.wait_for(mj.tasks.get("1712345678901123"), LIMIT)
        before = fetches(box)
        with pytest.raises(NotFoundError):
            await asyncio.wait_for(mj.tasks.wait("1712345678901123", timeout=LIMIT), LIMIT)
        assert fetches(box) - before >= 2  # a grace of a few queries, then the answer
        assert await mj.tasks.get_many(["1712345678901123"]) == []


# --- polling cost ------------------------------------------------------------------------


def _roomy(**extra: Any) -> MidjourneyOptions:
    return MidjourneyOptions(api_key=KEY, concurrency=64, queue_size=1000, **extra)


@pytest.mark.parametrize("list_by_condition", [True, False])
async def test_batch_polling_when_available(list_by_condition: bool) -> None:
    async with sandbox(midjourney=_roomy(list_by_condition=list_by_condition)) as box, client(box) as mj:
        tasks = [await mj.submit(Imagine(prompt=f"fox {i}")) for i in range(20)]
        done = await asyncio.gather(*(wait(mj, t) for t in tasks))
        assert all(d.status is TaskStatus.COMPLETED for d in done)
        many = await mj.tasks.get_many(tasks)
        assert [t.id for t in many] == [t.id for t in tasks]
    if list_by_condition:
        assert batches(box) >= 2
        assert fetches(box) < len(tasks) / 2, box.ledger.requests
    else:
        assert batches(box) <= 1  # one 404 teaches the client to fetch one by one
        assert fetches(box) >= len(tasks)


async def test_sixty_tasks_thirty_at_a_time_cost_under_one_poll_each() -> None:
    async with sandbox(midjourney=_roomy()) as box, client(box) as mj:
        requests = [(i, Imagine(prompt=f"fox {i}")) for i in range(60)]
        async with mj.fan_out(requests, max_in_flight=30, timeout=LIMIT) as events:
            terminal = [e async for e in events if e.kind.is_terminal]
        assert len(terminal) == 60
        assert all(e.kind is EventKind.COMPLETED for e in terminal)
    polls = fetches(box) + batches(box)
    print(
        f"\n60 tasks, 30 in flight: {fetches(box)} fetches + {batches(box)} list-by-condition = {polls / 60:.2f}/task"
    )
    assert polls / 60 < 1.0, box.ledger.requests


# --- faults: one terminal event each, no task created twice -------------------------------


def _states(box: Sandbox) -> Counter[str | None]:
    return Counter(entry.state for entry in box.ledger.mj_tasks)


async def test_uncertain_submit_is_found_by_state_not_resubmitted(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="evolink_async")
    async with sandbox(midjourney=_roomy()) as box, client(box) as mj:
        injector = box._running.faults  # the first request (the submit) takes effect, then its connection drops
        real, calls = injector.decide, []

        def decide() -> Any:
            decision = real()
            calls.append(decision)
            return attrs.evolve(decision, kind="reset_after") if len(calls) == 1 else decision

        injector.decide = decide  # type: ignore[method-assign]
        task = await asyncio.wait_for(mj.submit(Imagine(prompt="a red fox")), LIMIT)
        assert box.ledger.faults["reset_after"] == 1
        assert len(box.ledger.mj_tasks) == 1
        assert box.ledger.mj_tasks[0].task_id == task.id
        assert _states(box) == {task.midjourney.state: 1}  # type: ignore[union-attr]
        assert any("found task" in r.getMessage() for r in caplog.records)
        assert (await wait(mj, task)).status is TaskStatus.COMPLETED
        requests = {k: v for k, v in box.ledger.requests.items() if "submit" in k}
        assert requests == {"POST /mj/submit/imagine": 1}, requests


async def test_five_hundred_imagines_under_faults() -> None:
    scale = 0.002
    faults = Faults(server_error_rate=0.04, reset_before_rate=0.03, reset_after_rate=0.03, malformed_rate=0.03)
    retry = RetryPolicy(max_retries=6, initial_delay=0.001, max_delay=0.01)
    # novicezk's task/list holds every task (trueai's the newest 100: see the test below).
    async with sandbox(scale, midjourney=_roomy(list_limit=None), faults=faults, seed=3) as box:
        async with client(box, scale, retry=retry) as mj:
            requests = [(i, Imagine(prompt=f"fox number {i}")) for i in range(500)]
            async with mj.fan_out(requests, max_in_flight=64, timeout=LIMIT) as events:
                seen = [e async for e in events]
    terminal = Counter(e.key for e in seen if e.kind.is_terminal)
    assert set(terminal) == set(range(500))
    assert set(terminal.values()) == {1}
    kinds = Counter(e.kind for e in seen if e.kind.is_terminal)
    states = _states(box)
    assert set(states.values()) == {1}, [s for s, n in states.items() if n > 1]
    assert len(box.ledger.mj_tasks) == len(states) <= 500
    faults_seen = box.ledger.faults
    print(f"\n500 under faults: {dict(kinds)}; faults {dict(faults_seen)}; requests {dict(box.ledger.requests)}")
    assert min(faults_seen["server_error"], faults_seen["reset_before"], faults_seen["reset_after"],
               faults_seen["malformed"]) > 0  # fmt: skip
    assert kinds[EventKind.COMPLETED] >= 490, kinds


async def test_uncertain_submit_cut_off_a_truncated_list_is_not_resubmitted(monkeypatch: pytest.MonkeyPatch) -> None:
    """trueai lists the newest 100 tasks: when 100 newer ones push the lost submit's task out of
    ``task/list``, not finding it there proves nothing, and the submit must not be sent again."""
    others_submitted = asyncio.Event()

    class HeldUntilOthersSubmitted:
        """The sandbox's fault ``anyio`` whose slow-answer pause ends once the 100 others are in,
        however long they take on a busy machine (a fixed delay raced them)."""

        def __getattr__(self, name: str) -> Any:
            return getattr(anyio, name)

        @staticmethod
        async def sleep(_delay: float) -> None:
            await asyncio.wait_for(others_submitted.wait(), LIMIT)

    monkeypatch.setattr(sandbox_faults, "anyio", HeldUntilOthersSubmitted())
    async with sandbox(midjourney=_roomy(list_limit=100)) as box, client(box) as mj:
        injector = box._running.faults
        real, calls = injector.decide, []
        listing = asyncio.Event()

        def decide() -> Any:
            decision = real()
            calls.append(decision)
            if len(calls) == 1:
                return attrs.evolve(decision, kind="reset_after")  # the submit: created, answer lost
            if len(calls) == 2:
                listing.set()
                return attrs.evolve(decision, slow=True)  # task/list, answered after the others
            return decision

        injector.decide = decide  # type: ignore[method-assign]
        lost = asyncio.create_task(mj.submit(Imagine(prompt="the lost one"), idempotency_key="lost-one-000000001"))
        await asyncio.wait_for(listing.wait(), LIMIT)
        await asyncio.gather(*(mj.submit(Imagine(prompt=f"fox {i}")) for i in range(100)))
        others_submitted.set()
        from evolink_async import APIConnectionError

        with pytest.raises(APIConnectionError):
            await asyncio.wait_for(lost, LIMIT)
        assert _states(box)["lost-one-000000001"] == 1
        assert len(box.ledger.mj_tasks) == 101


async def test_with_options_shares_pool_and_tracker() -> None:
    async with sandbox() as box, client(box) as mj:
        patient = mj.with_options(timeout=120, max_retries=7, default_headers={"X-Trace": "e2e"})
        assert patient.config.timeout == 120
        assert patient.config.retry.max_retries == 7
        assert mj.config.timeout == 60
        assert mj.config.retry.max_retries == 4
        assert patient.session is mj.session
        assert patient.tracker is mj.tracker
        assert patient.api_base == mj.api_base
        assert repr(patient) == repr(mj)
        assert KEY not in repr(patient)
        async with patient:  # a view: entering it starts nothing, leaving it closes nothing shared
            task = await patient.submit(Imagine(prompt="a red fox"))
        done = await wait(patient, task)
        assert done.status is TaskStatus.COMPLETED
        assert (await wait(mj, await mj.action(done, "U1"))).status is TaskStatus.COMPLETED


async def test_uncertain_modal_submit_is_checked_on_the_task_itself() -> None:
    """A modal confirmation keeps the MODAL task's id (and its first ``state``): when its answer
    is lost, the task itself says whether it went through; it is not confirmed twice."""
    async with sandbox() as box, client(box) as mj:
        grid = await wait(mj, await mj.submit(Imagine(prompt="a red fox")))
        upscaled = await wait(mj, await mj.action(grid, "U1"))
        waiting = await mj.action(upscaled, "Custom Zoom")
        injector = box._running.faults
        real, armed = injector.decide, [True]

        def decide() -> Any:
            decision = real()
            if armed and armed.pop():
                return attrs.evolve(decision, kind="reset_after")  # the modal submit: accepted, answer lost
            return decision

        injector.decide = decide  # type: ignore[method-assign]
        confirmed = await asyncio.wait_for(mj.submit(Modal(task=waiting, prompt="zoomed out")), LIMIT)
        assert confirmed.id == waiting.id
        assert confirmed.status is not TaskStatus.MODAL
        assert box.ledger.faults["reset_after"] == 1
        assert box.ledger.requests["POST /mj/submit/modal"] == 1
        assert box.ledger.mj_refused == {}
        assert (await wait(mj, confirmed)).status is TaskStatus.COMPLETED


async def test_notify_hook_bodies_pushed_into_the_tracker_end_waits() -> None:
    """The proxy's notifyHook POSTs (the fetch shape) parsed and pushed: waits end on them, with
    polling (here slowed 100x) only as the fallback; dropped and duplicated hooks do no harm."""
    from aiohttp import web

    options = MidjourneyOptions(api_key=KEY, concurrency=16, hook_drop_rate=0.3, hook_duplicate_rate=0.2)
    async with sandbox(midjourney=options) as box, client(box, poll_policy=PollPolicy().scaled(SCALE * 3)) as mj:

        async def hook(request: web.Request) -> web.Response:
            mj.tracker.push(mj.parse_task(await request.json()))
            return web.Response()

        app = web.Application()
        app.router.add_post("/hook", hook)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
            tasks = [await mj.submit(Imagine(prompt=f"fox {i}", notify_hook=url)) for i in range(8)]
            done = await asyncio.gather(*(wait(mj, t) for t in tasks))
        finally:
            await runner.cleanup()
        assert all(d.status is TaskStatus.COMPLETED for d in done)
        assert any(h.ok for h in box.ledger.mj_hooks)
        assert any(h.dropped for h in box.ledger.mj_hooks)


async def test_trueai_401_text_is_authentication_error() -> None:
    options = MidjourneyOptions(api_key=KEY, unauthorized_body="Authorization header missing.")
    async with sandbox(midjourney=options) as box, client(box, api_key="mj-wrong-secret-0000000000") as mj:
        with pytest.raises(AuthenticationError, match="Authorization header missing"):
            await mj.submit(Imagine(prompt="a red fox"))
        assert box.ledger.mj_tasks == []


async def test_refusal_codes_3_and_4() -> None:
    from evolink_async import Action, MidjourneyError

    async with sandbox() as box, client(box) as mj:
        pending = await mj.submit(Imagine(prompt="a red fox"))
        with pytest.raises(MidjourneyError) as not_done:  # the parent is not SUCCESS yet
            await mj.submit(Change(task=pending, action="UPSCALE", index=1))
        assert (not_done.value.code, not_done.value.status_code) == (4, 200)
        with pytest.raises(MidjourneyError) as gone:  # trueai: an unknown parent is HTTP 404, code 3
            await mj.submit(Action(task="1712345678901123", custom_id="MJ::JOB::upsample::1::abc"))
        assert (gone.value.code, gone.value.status_code) == (3, 404)
        assert box.ledger.mj_refused == {4: 1, 3: 1}
        assert len(box.ledger.mj_tasks) == 1


async def test_rate_limited_answers_are_waited_out() -> None:
    faults = Faults(rate_limit_rate=0.3, retry_after=(0.5, 1.0))
    async with sandbox(midjourney=_roomy(), faults=faults, seed=5) as box, client(box) as mj:
        tasks = [await mj.submit(Imagine(prompt=f"fox {i}")) for i in range(10)]
        done = await asyncio.gather(*(wait(mj, t) for t in tasks))
        assert all(d.status is TaskStatus.COMPLETED for d in done)
        assert box.ledger.faults["rate_limit"] > 0
        assert len(box.ledger.mj_tasks) == 10
