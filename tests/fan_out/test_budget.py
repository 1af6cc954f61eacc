"""``fan_out(max_credits=...)`` against the sandbox, whose model costs are known (qwen-image-edit
1.0, mj-v7-retexture 1.8): the budget holds, the inputs left end unsent, the summary counts them."""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterator

import anyio
import pytest

import evolink_async as evolink
from evolink_async import EventKind, EvolinkClient, FanOutItem, MidjourneyClient, QwenImageEdit, Retexture
from evolink_async._watching.credit_budget import CreditBudget
from evolink_async.sandbox import Faults, Sandbox
from tests.helpers.fan_out import assert_one_terminal_each, requests

Build = Callable[..., EvolinkClient]


def retextures(count: int) -> Iterator[tuple[str, Retexture]]:
    for i in range(count):
        yield f"r{i}", Retexture(prompt=f"style {i}", image_urls=[f"https://example.com/{i}.png"])


def posts(sandbox: Sandbox) -> int:
    return sum(n for endpoint, n in sandbox.ledger.requests.items() if endpoint.startswith("POST"))


ByKey = dict[Hashable, list[evolink.TaskEvent]]


async def run(client: EvolinkClient, items: object, **options: object) -> tuple[evolink.FanOut, ByKey]:
    by_key: ByKey = {}
    with anyio.fail_after(30):
        async with client.fan_out(items, **options) as events:  # type: ignore[arg-type]
            async for event in events:
                by_key.setdefault(event.key, []).append(event)
    return events, by_key


@pytest.mark.parametrize("credits_per_task", [None, 1.0])
async def test_the_budget_holds_and_the_rest_end_unsent(
    evolink_sandbox: Sandbox, scaled_client: Build, credits_per_task: float | None
) -> None:
    async with scaled_client(evolink_sandbox) as client:
        events, by_key = await run(client, requests(10), max_in_flight=4, max_credits=3.5,
                                   credits_per_task=credits_per_task)  # fmt: skip
    assert_one_terminal_each({k: [e.kind for e in v] for k, v in by_key.items()}, 10)
    ledger = evolink_sandbox.ledger
    # Four could be in flight at once: a fifth of the budget's worth was never sent.
    assert len(ledger.billed) == 3
    assert ledger.credits_charged == 3.0 <= 3.5
    assert posts(evolink_sandbox) == 3  # the inputs left cost no request
    summary = events.summary
    assert summary.submitted == 3
    assert summary.credits_reserved == 3.0
    assert summary.not_submitted == 7
    assert summary.outcomes == {"completed": 3, "submit_failed": 7}
    assert summary.stopped_reason is not None
    assert summary.stopped_reason.startswith("credit budget reached")
    unsent = [v for v in by_key.values() if v[-1].kind is EventKind.SUBMIT_FAILED]
    assert len(unsent) == 7
    for kinds in unsent:
        assert len(kinds) == 1  # exactly one event, the terminal one, with no task
        (event,) = kinds
        assert event.task is None
        assert isinstance(event.error, evolink.NotSubmittedError)
        assert event.error.reason.startswith("credit budget reached")


async def test_the_cost_is_learned_from_the_first_answer(evolink_sandbox: Sandbox, scaled_client: Build) -> None:
    """1.8 a task: 2 fit in 5 credits (3.6), a third (5.4) does not; no estimate was given."""
    async with scaled_client(evolink_sandbox) as client:
        events, _ = await run(client, retextures(6), max_in_flight=6, max_credits=5)
    assert len(evolink_sandbox.ledger.billed) == 2
    assert evolink_sandbox.ledger.credits_charged <= 5
    assert events.summary.credits_reserved == pytest.approx(3.6)
    assert events.summary.not_submitted == 4
    assert events.summary.terminal == 6


async def test_the_summary_counts_credits_as_the_service_states_them(
    evolink_sandbox: Sandbox, scaled_client: Build
) -> None:
    """Seven tasks at 1.8 are 12.6 credits, not the float sum 12.600000000000001 a user would print."""
    async with scaled_client(evolink_sandbox) as client:
        events, _ = await run(client, retextures(7), max_in_flight=7)
    assert events.summary.credits_reserved == 12.6
    assert str(events.summary.credits_reserved) == "12.6"


async def test_a_budget_fitting_exactly_is_used_up(evolink_sandbox: Sandbox, scaled_client: Build) -> None:
    async with scaled_client(evolink_sandbox) as client:
        events, _ = await run(client, retextures(5), max_in_flight=3, max_credits=5.4, credits_per_task=1.8)
    assert len(evolink_sandbox.ledger.billed) == 3  # 1.8 x 3 == 5.4, despite float sums
    assert events.summary.not_submitted == 2


async def test_a_zero_budget_sends_nothing(evolink_sandbox: Sandbox, scaled_client: Build) -> None:
    async with scaled_client(evolink_sandbox) as client:
        events, by_key = await run(client, requests(4), max_in_flight=2, max_credits=0)
    assert evolink_sandbox.ledger.billed == []
    assert posts(evolink_sandbox) == 0
    assert events.summary.not_submitted == 4
    assert all(len(v) == 1 and v[0].kind is EventKind.SUBMIT_FAILED for v in by_key.values())


async def test_reattached_inputs_go_on_past_the_budget(evolink_sandbox: Sandbox, scaled_client: Build) -> None:
    async with scaled_client(evolink_sandbox) as client:
        first = await client.images.submit(QwenImageEdit(prompt="x", image_urls=["https://example.com/a.png"]))

        def items() -> Iterator[FanOutItem | tuple[str, QwenImageEdit]]:
            yield from requests(3)
            yield FanOutItem(key="old", task_id=first.id)

        events, by_key = await run(client, items(), max_in_flight=2, max_credits=1)
    assert by_key["old"][-1].kind is EventKind.COMPLETED
    assert len(evolink_sandbox.ledger.billed) == 2  # the earlier one and one under the budget
    assert events.summary.not_submitted == 2


@pytest.mark.evolink_sandbox(faults=Faults(reset_after_rate=1.0))
async def test_a_lost_answer_counts_against_the_budget(evolink_sandbox: Sandbox, scaled_client: Build) -> None:
    """The server billed it, the answer was lost: it counts at the estimate, so no second goes out."""
    no_retry = evolink.RetryPolicy(max_retries=0)
    async with scaled_client(evolink_sandbox, retry=no_retry) as client:
        events, _ = await run(client, requests(3), max_in_flight=1, max_credits=1.5, credits_per_task=1.0)
    assert len(evolink_sandbox.ledger.billed) == 1
    assert len(events.summary.interrupted_submits) == 1
    assert events.summary.not_submitted == 2


@pytest.mark.parametrize("value", [-1, math.nan, math.inf, "3", True])
async def test_bad_budgets_fail_fast(evolink_sandbox: Sandbox, scaled_client: Build, value: object) -> None:
    async with scaled_client(evolink_sandbox) as client:
        with pytest.raises(evolink.ValidationError, match="max_credits"):
            client.fan_out([], max_credits=value)  # type: ignore[arg-type]
        with pytest.raises(evolink.ValidationError, match="credits_per_task"):
            client.fan_out([], max_credits=1, credits_per_task=value if value != -1 else 0)  # type: ignore[arg-type]
        with pytest.raises(evolink.ValidationError, match="credits_per_task"):
            client.fan_out([], credits_per_task=1.0)


async def test_midjourney_budgets_need_a_cost_per_task() -> None:
    async with MidjourneyClient("mj-secret-KEY0123456789abcdef", base_url="https://mj.test") as mj:
        with pytest.raises(evolink.ValidationError, match="credits_per_task"):
            mj.fan_out([], max_credits=10)
        mj.fan_out([], max_credits=10, credits_per_task=2.0)


async def test_the_budget_waits_for_answers_before_giving_up() -> None:
    budget = CreditBudget(3.0, 1.0)
    for _ in range(3):
        assert await budget.admit()
    with anyio.move_on_after(0.05) as scope:
        await budget.admit()  # 3 in flight at 1.0: a fourth waits for their answers
    assert scope.cancelled_caught
    budget.settle(0.0)  # one was refused: its estimate is freed
    assert await budget.admit()
    budget.settle(1.0)
    budget.settle(1.0)
    budget.settle(None)  # no cost said (or the answer was lost): counted at the estimate
    assert (budget.counted, budget.pending) == (3.0, 0)
    assert not await budget.admit()


async def test_an_unknown_first_cost_stops_the_budget() -> None:
    budget = CreditBudget(10.0)
    assert await budget.admit()
    budget.settle(None)
    assert not await budget.admit()
    assert "credits_per_task" in budget.reason
