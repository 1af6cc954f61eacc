"""What the Idempotency-Key buys, shown against a sandbox that honours it and one that does not."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import evolink_async as evolink
from evolink_async.sandbox import Faults, Sandbox
from tests.conftest import SCALE

URL = "https://example.com/in.png"


async def fan_out_with_lost_answers(sandbox: Sandbox, build: Callable[..., evolink.EvolinkClient]) -> evolink.FanOutSummary:
    requests = [evolink.RemoveBackground(image_urls=[URL]) for _ in range(20)]
    async with build(sandbox) as client:
        async with asyncio.timeout(60), client.fan_out(requests, max_in_flight=10) as events:
            async for _ in events:
                pass
    return events.summary


async def test_retried_submits_are_counted_and_deduplicated_where_keys_are_honoured(
    scaled_client: Callable[..., evolink.EvolinkClient],
) -> None:
    # reset_after: the task is created and billed, then the connection drops before the answer.
    async with Sandbox(time_scale=SCALE, seed=7, faults=Faults(reset_after_rate=0.3)) as sandbox:
        summary = await fan_out_with_lost_answers(sandbox, scaled_client)
        assert summary.retried_uncertain_submits > 0
        assert summary.outcomes["completed"] == 20
        assert len(sandbox.ledger.billed) == 20  # each retry was answered as a replay


async def test_a_server_that_ignores_the_key_bills_each_uncertain_retry(
    scaled_client: Callable[..., evolink.EvolinkClient],
) -> None:
    async with Sandbox(
        time_scale=SCALE, seed=7, faults=Faults(reset_after_rate=0.3), honor_idempotency_keys=False
    ) as sandbox:
        summary = await fan_out_with_lost_answers(sandbox, scaled_client)
        assert summary.retried_uncertain_submits > 0
        assert summary.outcomes["completed"] == 20
        # The difference the README warns about: each retried uncertain submit billed again (at
        # least once: a submit whose retry lost its answer too was billed a third time).
        assert len(sandbox.ledger.billed) >= 20 + summary.retried_uncertain_submits
        assert sandbox.ledger.replays == 0
