"""Callbacks from the sandbox to a real receiver: push first, polling as the safety net, and
submits whose answer was lost settled by their callback instead of being paid for twice."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable

import pytest

import evolink_async as evolink
from evolink_async.sandbox import Faults, Sandbox
from tests.conftest import SCALE
from tests.helpers.receivers import aiohttp_receiver

URL = "https://example.com/in.png"
# Tasks end by 1.0x their estimate and the safety-net query comes at 1.6x: the 0.6x between is
# what a callback has to arrive in before a query is spent. At the tests' 100x clock that is
# ~180 ms, enough on a busy machine; the default spread (up to 1.5x) would leave ~30 ms.
SPREAD = (0.5, 1.0)
# The receiver answers from this test's own event loop, shared with the sandbox and the client: on
# a loaded machine it can take longer than the service's 10 s (0.1 s at this clock) to answer, and
# a callback given up on is a lost callback. 1000 API s = 10 s.
CALLBACK_TIMEOUT = 1000.0


def patient_policy() -> evolink.PollPolicy:
    """The default policy, with the safety-net query (1.6x -> 20x the estimate: 6 s at this clock,
    its cap raised to match) far enough after the last possible finish that a callback delayed by
    a loaded machine still comes first. It costs nothing while callbacks arrive: a task ends at its
    callback, and the query never comes."""
    return evolink.PollPolicy(first_query=20.0, max_interval=300.0).scaled(SCALE)


async def run_fan_out(
    client: evolink.EvolinkClient, count: int, *, max_in_flight: int = 50, timeout: float = 60
) -> tuple[evolink.FanOutSummary, list[evolink.TaskEvent]]:
    requests = [(i, evolink.RemoveBackground(image_urls=[URL])) for i in range(count)]
    seen: list[evolink.TaskEvent] = []
    async with asyncio.timeout(timeout), client.fan_out(requests, max_in_flight=max_in_flight) as events:
        async for event in events:
            seen.append(event)
    return events.summary, seen


def finished_deliveries(sandbox: Sandbox) -> set[str]:
    """Tasks whose callback delivery is over: answered 2xx, or its last retry made."""
    last = len(sandbox.config.callback_retry_delays) + 1
    return {a.task_id for a in sandbox.ledger.callbacks if a.ok or a.attempt >= last}


def assert_one_terminal_each(events: list[evolink.TaskEvent], count: int) -> None:
    terminal = Counter(e.key for e in events if e.is_terminal)
    assert sorted(terminal) == list(range(count))
    assert set(terminal.values()) == {1}
    for key in range(count):  # change-only: never a repeated or backward event per input
        progress = [(e.kind, e.progress) for e in events if e.key == key and e.kind is evolink.EventKind.PROGRESS]
        assert len(progress) == len(set(progress))


async def test_all_callbacks_delivered_means_almost_no_queries(
    scaled_client: Callable[..., evolink.EvolinkClient],
) -> None:
    async with Sandbox(time_scale=SCALE, callback_timeout=CALLBACK_TIMEOUT, seed=3, duration_spread=SPREAD) as sandbox, aiohttp_receiver() as receiver:
        async with scaled_client(sandbox, callbacks=receiver, poll_policy=patient_policy()) as client:
            summary, events = await run_fan_out(client, 40)
            queries = client.tracker.queries_sent
            async with asyncio.timeout(60):  # every delivery over (a task can end before its 2xx is sent)
                while len(finished_deliveries(sandbox)) < 40:
                    await asyncio.sleep(0.02)
        assert summary.outcomes["completed"] == 40
        assert_one_terminal_each(events, 40)
        assert queries <= 4  # <= 0.1 per task
        # Every task ended by its callback, or by one of those few queries (counted per task: a
        # callback held before its submit's answer counts once, with the sender's retries of it).
        by_callback = {task_id for task_id in sandbox.ledger.billed if receiver.latest(task_id) is not None}
        assert len(by_callback) + queries >= 40
        assert len(sandbox.ledger.billed) == 40


async def test_dropped_duplicated_and_late_callbacks_still_end_every_task_once(
    scaled_client: Callable[..., evolink.EvolinkClient],
) -> None:
    faults = Faults(callback_drop_rate=0.2, callback_duplicate_rate=0.3, callback_delay=(0.0, 5.0))
    async with Sandbox(time_scale=SCALE, callback_timeout=CALLBACK_TIMEOUT, seed=5, faults=faults) as sandbox, aiohttp_receiver() as receiver:
        async with scaled_client(sandbox, callbacks=receiver) as client:
            summary, events = await run_fan_out(client, 60)
            queries = client.tracker.queries_sent
        assert summary.outcomes["completed"] == 60
        assert_one_terminal_each(events, 60)
        dropped = sum(1 for a in sandbox.ledger.callbacks if a.error and "dropped" in a.error)
        assert dropped > 0
        # Every dropped callback's task was found by the safety-net query, and little else was queried.
        assert dropped <= queries < 90  # polling alone spends 2-3 per task


async def test_an_unreachable_receiver_falls_back_to_polling(
    scaled_client: Callable[..., evolink.EvolinkClient],
) -> None:
    # The public URL names a port nobody listens on: every callback fails.
    receiver = evolink.CallbackReceiver("http://127.0.0.1:9/hooks", allow_local=True)
    async with Sandbox(time_scale=SCALE, callback_timeout=CALLBACK_TIMEOUT, seed=9) as sandbox:
        async with scaled_client(sandbox, callbacks=receiver) as client:
            summary, events = await run_fan_out(client, 30, max_in_flight=10)
        assert summary.outcomes["completed"] == 30
        assert_one_terminal_each(events, 30)
        assert not receiver.reachable


@pytest.mark.parametrize("honor_keys", [True, False])
async def test_lost_submit_answers_are_settled_by_their_callback_not_paid_twice(
    honor_keys: bool, scaled_client: Callable[..., evolink.EvolinkClient]
) -> None:
    # reset_after: the sandbox creates and bills the task, then drops the connection.
    faults = Faults(reset_after_rate=0.3)
    async with (
        Sandbox(time_scale=SCALE, callback_timeout=CALLBACK_TIMEOUT, seed=11, faults=faults, honor_idempotency_keys=honor_keys) as sandbox,
        aiohttp_receiver() as receiver,
    ):
        # Patient: on a loaded machine, safety-net queries that beat callbacks would make the
        # receiver look unreachable, and the lost submits could no longer be settled.
        async with scaled_client(sandbox, callbacks=receiver, poll_policy=patient_policy()) as client:
            requests = [(i, evolink.RemoveBackground(image_urls=[URL])) for i in range(30)]
            async with asyncio.timeout(60), client.fan_out(requests, max_in_flight=30, timeout=30) as events:
                seen = [event async for event in events]
        summary = events.summary
        assert summary.recovered_submits > 0
        assert summary.retried_uncertain_submits == 0  # with callbacks, lost answers are never resent
        assert_one_terminal_each(seen, 30)
        assert summary.outcomes["completed"] == 30
        assert len(sandbox.ledger.billed) == 30  # one billed task per input, whatever the server does with keys


async def test_a_thousand_tasks_through_callbacks_end_exactly_once(
    scaled_client: Callable[..., evolink.EvolinkClient],
) -> None:
    async with Sandbox(time_scale=SCALE, callback_timeout=CALLBACK_TIMEOUT, seed=13, duration_spread=SPREAD) as sandbox, aiohttp_receiver() as receiver:
        async with scaled_client(sandbox, callbacks=receiver) as client:
            summary, events = await run_fan_out(client, 1000, max_in_flight=250, timeout=120)
            # Tasks the safety-net query found first end before their callback: let the sandbox
            # finish every delivery (a 2xx or its last retry) while the receiver still serves.
            async with asyncio.timeout(60):
                while len(finished_deliveries(sandbox)) < 1000:
                    await asyncio.sleep(0.02)
        assert summary.outcomes["completed"] == 1000
        assert_one_terminal_each(events, 1000)
        attempts = sandbox.ledger.callbacks
        assert {a.task_id for a in attempts} == set(sandbox.ledger.billed)  # every task's callback was sent
        # Every callback that reached the receiver was taken (a slow answer under load may pass the
        # sandbox's scaled 0.1 s timeout and be retried: it is still taken, never refused). One that
        # came before its submit's answer is held (202), then taken when the answer names its task.
        assert [a for a in attempts if a.status is not None and not 200 <= a.status < 300] == []
        assert receiver.accepted >= len(sandbox.ledger.callbacks_delivered) > 0
        # Counted per task: each task answered with a 2xx was taken for its own task.
        taken = {task_id for task_id in sandbox.ledger.billed if receiver.latest(task_id) is not None}
        assert set(sandbox.ledger.callbacks_delivered) <= taken
