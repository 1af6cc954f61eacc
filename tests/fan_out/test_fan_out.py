"""fan_out against the sandbox: exactly one terminal event per input, bounds, backpressure, exits."""

from __future__ import annotations

import asyncio
import gc
from collections import Counter
from collections.abc import AsyncIterator, Callable, Hashable, Iterator

import anyio
import pytest

import evolink_async as evolink
from evolink_async import EventKind, EvolinkClient, FanOutItem, QwenImageEdit
from evolink_async.sandbox import Faults, Sandbox
from tests.helpers.fan_out import assert_one_terminal_each, requests

Build = Callable[..., EvolinkClient]


async def collect(events: evolink.FanOut) -> dict[Hashable, list[EventKind]]:
    by_key: dict[Hashable, list[EventKind]] = {}
    async for event in events:
        by_key.setdefault(event.key, []).append(event.kind)
    return by_key


def client_tasks() -> set[asyncio.Task[object]]:
    """Live tasks of this process, less the in-process sandbox server's connection handlers."""
    return {
        t for t in asyncio.all_tasks()
        if not t.done() and not t.get_coro().__qualname__.startswith("RequestHandler")  # type: ignore[union-attr]
    }




@pytest.mark.evolink_sandbox(
    time_scale=0.005,
    seed=7,
    faults=Faults(server_error_rate=0.05, rate_limit_rate=0.02, reset_before_rate=0.02, reset_after_rate=0.02,
                  malformed_rate=0.01, task_failure_rate=0.05),
)
async def test_two_thousand_inputs_under_faults(evolink_sandbox: Sandbox, scaled_client: Build) -> None:
    policy = evolink.PollPolicy().scaled(0.005)
    async with scaled_client(evolink_sandbox, poll_policy=policy) as client:
        async with client.fan_out(requests(2000), max_in_flight=50) as events:
            by_key = await collect(events)
    assert_one_terminal_each(by_key, 2000)
    ledger = evolink_sandbox.ledger
    assert len(ledger.billed) == len(set(ledger.billed)), "a task was billed twice"
    assert len(ledger.billed) == events.summary.submitted
    assert ledger.peak_unfinished <= 50
    assert ledger.replays > 0, "the injected resets should have caused idempotent replays"
    outcomes = events.summary.outcomes
    assert outcomes["completed"] > 1500
    assert outcomes["failed"] > 0
    assert sum(outcomes.values()) == 2000
    assert client.tracker.watched == 0


async def test_keys_order_and_summary(evolink_sandbox: Sandbox, scaled_client: Build) -> None:
    async with scaled_client(evolink_sandbox) as client:
        async with client.fan_out(requests(20), max_in_flight=5) as events:
            seen: dict[Hashable, list[EventKind]] = {}
            async for event in events:
                seen.setdefault(event.key, []).append(event.kind)
                if event.kind is EventKind.SUBMITTED:
                    assert event.task is not None
    for kinds in seen.values():
        assert kinds[0] is EventKind.SUBMITTED
        assert kinds[-1] is EventKind.COMPLETED
    assert events.summary.outcomes == Counter({"completed": 20})
    assert events.summary.credits_reserved == pytest.approx(20.0)
    assert events.summary.left_in_flight == []


async def test_plain_requests_are_keyed_by_index(evolink_sandbox: Sandbox, scaled_client: Build) -> None:
    async with scaled_client(evolink_sandbox) as client:
        async with client.fan_out([r for _, r in requests(3)], max_in_flight=3) as events:
            assert set(await collect(events)) == {0, 1, 2}


async def test_async_iterable_is_consumed_lazily(evolink_sandbox: Sandbox, scaled_client: Build) -> None:
    pulled = 0

    async def source() -> AsyncIterator[tuple[str, QwenImageEdit]]:
        nonlocal pulled
        for item in requests(1_000_000):
            pulled += 1
            yield item

    async with scaled_client(evolink_sandbox) as client:
        async with client.fan_out(source(), max_in_flight=4, buffer_size=4) as events:
            done = 0
            async for event in events:
                done += event.is_terminal
                if done == 10:
                    break
    assert pulled < 40  # a million-item source was not materialized


async def test_sleeping_consumer_stops_submits_at_the_bound(evolink_sandbox: Sandbox, scaled_client: Build) -> None:
    max_in_flight, buffer_size = 8, 6
    async with scaled_client(evolink_sandbox) as client:
        async with client.fan_out(requests(40), max_in_flight=max_in_flight, buffer_size=buffer_size) as events:
            # Stalled: something was submitted, and nothing is in flight or watched any more, while
            # nobody reads. An unbounded fan-out never gets here before billing far more (or all 40).
            with anyio.fail_after(60):
                while not (evolink_sandbox.ledger.billed and events.in_flight == 0 and client.tracker.watched == 0):
                    await anyio.sleep(0.01)
            stalled = len(evolink_sandbox.ledger.billed)
            assert stalled <= buffer_size + max_in_flight
            by_key = await collect(events)  # reading again resumes submitting
    assert_one_terminal_each(by_key, 40)
    assert evolink_sandbox.ledger.peak_unfinished <= max_in_flight


async def test_early_exit_leaves_nothing_running(evolink_sandbox: Sandbox, scaled_client: Build) -> None:
    async with scaled_client(evolink_sandbox) as client:
        await anyio.sleep(0)
        baseline = client_tasks()
        async with client.fan_out(requests(100), max_in_flight=10) as events:
            async for event in events:
                if event.kind is EventKind.SUBMITTED:
                    break
        assert client.tracker.watched == 0
        summary = events.summary
        assert summary.left_in_flight or summary.interrupted_submits
        await anyio.sleep(0.05)
        gc.collect()
        leftover = client_tasks() - baseline
        assert leftover == set(), leftover
        queries = evolink_sandbox.ledger.requests["GET /v1/tasks/{task_id}"]
        submits = evolink_sandbox.ledger.requests["POST /v1/images/generations"]
        await anyio.sleep(0.5)
        assert evolink_sandbox.ledger.requests["GET /v1/tasks/{task_id}"] == queries
        assert evolink_sandbox.ledger.requests["POST /v1/images/generations"] == submits


async def test_exception_in_consumer_stops_the_batch(evolink_sandbox: Sandbox, scaled_client: Build) -> None:
    async with scaled_client(evolink_sandbox) as client:
        with pytest.raises(KeyError):
            async with client.fan_out(requests(50), max_in_flight=5) as events:
                async for _ in events:
                    raise KeyError("consumer bug")
        assert client.tracker.watched == 0
        billed = len(evolink_sandbox.ledger.billed)
        await anyio.sleep(0.3)
        assert len(evolink_sandbox.ledger.billed) == billed


async def test_cancellation_stops_the_batch(evolink_sandbox: Sandbox, scaled_client: Build) -> None:
    async with scaled_client(evolink_sandbox) as client:
        with anyio.move_on_after(0.2):
            async with client.fan_out(requests(500), max_in_flight=5) as events:
                await collect(events)
        assert client.tracker.watched == 0
        assert events.summary.terminal < 500


async def test_authentication_error_stops_the_batch(evolink_sandbox: Sandbox, scaled_client: Build) -> None:
    async with scaled_client(evolink_sandbox, api_key="sk-evo-not-the-right-key-0000") as client:
        with pytest.raises(evolink.AuthenticationError):
            async with client.fan_out(requests(30), max_in_flight=5) as events:
                await collect(events)
    assert evolink_sandbox.ledger.billed == []
    assert events.summary.stopped_reason is not None


@pytest.mark.evolink_sandbox(credits=5.0)
async def test_exhausted_credits_stop_new_submits(evolink_sandbox: Sandbox, scaled_client: Build) -> None:
    async with scaled_client(evolink_sandbox) as client:
        async with client.fan_out(requests(20), max_in_flight=3) as events:
            by_key = await collect(events)
    summary = events.summary
    assert summary.outcomes["completed"] == 5
    assert summary.outcomes["submit_failed"] >= 1
    assert summary.stopped_reason is not None
    assert "credits" in summary.stopped_reason
    assert len(evolink_sandbox.ledger.billed) == 5
    failed = [k for k, kinds in by_key.items() if EventKind.SUBMIT_FAILED in kinds]
    assert len(failed) == summary.outcomes["submit_failed"]
    assert_one_terminal_each(by_key, len(by_key))


@pytest.mark.evolink_sandbox(faults=Faults(stuck_rate=1.0))
async def test_per_task_timeout(evolink_sandbox: Sandbox, scaled_client: Build) -> None:
    async with scaled_client(evolink_sandbox) as client:
        async with client.fan_out(requests(6), max_in_flight=6, timeout=0.3) as events:
            by_key = await collect(events)
    assert {kinds[-1] for kinds in by_key.values()} == {EventKind.TIMED_OUT}
    assert events.summary.outcomes == Counter({"timed_out": 6})


async def test_bad_item_fails_alone(evolink_sandbox: Sandbox, scaled_client: Build) -> None:
    items = [FanOutItem(key="ok", request=next(requests(1))[1]), FanOutItem(key="empty")]
    async with scaled_client(evolink_sandbox) as client:
        async with client.fan_out(items, max_in_flight=2) as events:
            by_key = await collect(events)
    assert by_key["ok"][-1] is EventKind.COMPLETED
    assert by_key["empty"] == [EventKind.SUBMIT_FAILED]


async def test_duplicate_keys_in_flight_are_refused(evolink_sandbox: Sandbox, scaled_client: Build) -> None:
    request = next(requests(1))[1]
    async with scaled_client(evolink_sandbox) as client:
        with pytest.raises(evolink.ValidationError, match="key"):
            async with client.fan_out([("same", request), ("same", request)], max_in_flight=2) as events:
                await collect(events)


async def test_reattach_and_idempotency_keys_never_bill_twice(evolink_sandbox: Sandbox, scaled_client: Build) -> None:
    request = next(requests(1))[1]
    async with scaled_client(evolink_sandbox) as client:
        first = await client.images.submit(request, idempotency_key="resume-test-key-0001")
        items = [
            FanOutItem(key="attach", task_id=first.id),
            FanOutItem(key="replay", request=request, idempotency_key="resume-test-key-0001"),
        ]
        async with client.fan_out(items, max_in_flight=2) as events:
            by_key = await collect(events)
    assert by_key["attach"][-1] is EventKind.COMPLETED
    assert by_key["replay"][-1] is EventKind.COMPLETED
    assert evolink_sandbox.ledger.billed == [first.id]
    assert evolink_sandbox.ledger.replays == 1
    assert events.summary.reattached == 1


async def test_submit_pacing(evolink_sandbox: Sandbox, scaled_client: Build) -> None:
    async with scaled_client(evolink_sandbox) as client:
        started = anyio.current_time()
        async with client.fan_out(requests(11), max_in_flight=11, max_submits_per_second=50) as events:
            submitted_at = [e.at async for e in events if e.kind is EventKind.SUBMITTED]
    assert len(submitted_at) == 11
    # 11 submits at 50/s cannot all fit in less than 10 intervals of 20 ms.
    assert max(submitted_at) - started >= 10 * 0.02 * 0.9


@pytest.mark.parametrize(
    ("option", "value"),
    [("max_in_flight", 0), ("buffer_size", 0), ("max_submits_per_second", 0.0), ("timeout", -1.0)],
)
async def test_bad_options_fail_fast(evolink_sandbox: Sandbox, scaled_client: Build, option: str, value: float) -> None:
    async with scaled_client(evolink_sandbox) as client:
        with pytest.raises(evolink.ValidationError, match=option):
            client.fan_out([], **{option: value})  # type: ignore[arg-type]


async def test_fan_out_needs_a_running_client(evolink_sandbox: Sandbox, scaled_client: Build) -> None:
    client = scaled_client(evolink_sandbox)
    with pytest.raises(RuntimeError, match="async with"):
        async with client.fan_out([]):
            pass
    await client.aclose()


@pytest.mark.evolink_sandbox(faults=Faults(reset_after_rate=1.0))
async def test_uncertain_submit_reports_its_idempotency_key(evolink_sandbox: Sandbox, scaled_client: Build) -> None:
    no_retry = evolink.RetryPolicy(max_retries=0)
    async with scaled_client(evolink_sandbox, retry=no_retry) as client:
        async with client.fan_out(requests(1, prefix="photo"), max_in_flight=1) as events:
            by_key = await collect(events)
    assert by_key == {"photo0": [EventKind.SUBMIT_FAILED]}
    # The server accepted and billed the task before the connection dropped: the summary says
    # which key makes a resubmit safe.
    assert len(evolink_sandbox.ledger.billed) == 1
    ((key, idempotency_key),) = events.summary.interrupted_submits
    assert key == "photo0"
    assert 16 <= len(idempotency_key) <= 96


async def test_unexpected_submit_error_ends_the_iteration(
    evolink_sandbox: Sandbox, scaled_client: Build, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Submits run as plain asyncio tasks the fan-out owns: a bug in one (not an API error, which
    # becomes a SUBMIT_FAILED event) must still end the batch, with that error, leaving no task.
    async with scaled_client(evolink_sandbox) as client:
        real_submit = client._api.submit
        calls = 0

        async def flaky_submit(request: object, *, idempotency_key: str) -> evolink.Task:
            nonlocal calls
            calls += 1
            if calls == 3:
                raise RuntimeError("submit bug")
            return await real_submit(request, idempotency_key=idempotency_key)  # type: ignore[arg-type]

        monkeypatch.setattr(client._api, "submit", flaky_submit)
        await anyio.sleep(0)
        baseline = client_tasks()
        with pytest.raises(RuntimeError, match="submit bug"):
            async with client.fan_out(requests(20), max_in_flight=5) as events:
                await collect(events)
        assert client.tracker.watched == 0
        await anyio.sleep(0.05)
        assert client_tasks() - baseline == set()


@pytest.mark.evolink_sandbox(credits=5.0)
async def test_inputs_left_when_credits_run_out_each_end_not_submitted(
    evolink_sandbox: Sandbox, scaled_client: Build
) -> None:
    """After a 402 the fan-out keeps pulling: every input left gets one SUBMIT_FAILED, no request."""
    errors: dict[Hashable, BaseException] = {}
    async with scaled_client(evolink_sandbox) as client:
        with anyio.fail_after(30):
            async with client.fan_out(requests(20), max_in_flight=3) as events:
                by_key: dict[Hashable, list[EventKind]] = {}
                async for event in events:
                    by_key.setdefault(event.key, []).append(event.kind)
                    if event.kind is EventKind.SUBMIT_FAILED:
                        assert event.error is not None
                        errors[event.key] = event.error
    assert_one_terminal_each(by_key, 20)  # none dropped, the one pulled when the 402 came included
    summary = events.summary
    unsent = {k for k, e in errors.items() if isinstance(e, evolink.NotSubmittedError)}
    assert summary.not_submitted == len(unsent) > 0
    assert all("credits" in errors[k].reason for k in unsent)  # type: ignore[attr-defined]
    refused = {k for k, e in errors.items() if isinstance(e, evolink.InsufficientCreditsError)}
    assert len(refused) <= 3  # only submits already under way when the first 402 came were sent
    assert summary.outcomes["completed"] == 5
    assert summary.terminal == 20
    assert len(evolink_sandbox.ledger.billed) == 5
    sent = sum(n for endpoint, n in evolink_sandbox.ledger.requests.items() if endpoint.startswith("POST"))
    assert 5 < sent <= 5 + 3, evolink_sandbox.ledger.requests  # the never-submitted ones cost no request


@pytest.mark.evolink_sandbox(credits=2.0)
async def test_reattached_inputs_go_on_after_credits_run_out(evolink_sandbox: Sandbox, scaled_client: Build) -> None:
    async with scaled_client(evolink_sandbox) as client:
        first = await client.images.submit(QwenImageEdit(prompt="x", image_urls=["https://example.com/a.png"]))

        def items() -> Iterator[FanOutItem | tuple[str, QwenImageEdit]]:
            yield from requests(4)
            yield FanOutItem(key="old", task_id=first.id)

        with anyio.fail_after(30):
            async with client.fan_out(items(), max_in_flight=1) as events:
                by_key = await collect(events)
    assert_one_terminal_each(by_key, 5)
    assert by_key["old"][-1] is EventKind.COMPLETED
    assert events.summary.not_submitted >= 1
