"""fan_out accounts for every input when credits run out, and counts submits retried after an uncertain failure."""

from __future__ import annotations

import asyncio

import pytest

import evolink_async as evolink
from evolink_async.sandbox import Faults, Sandbox
from tests.helpers.hostile import edit

SUBMIT_ENDPOINT = "POST /v1/images/generations"


def _client(sandbox: Sandbox, *, max_retries: int = 4) -> evolink.EvolinkClient:
    return evolink.EvolinkClient(
        sandbox.api_key,
        base_url=sandbox.base_url,
        files_base_url=sandbox.files_base_url,
        poll_policy=evolink.PollPolicy().scaled(0.01),
        retry=evolink.RetryPolicy(max_retries=max_retries, initial_delay=0.01, max_delay=0.05),
    )


@pytest.mark.evolink_sandbox(credits=3)  # qwen-image-edit costs 1 credit: 3 tasks
async def test_inputs_left_when_credits_run_out_each_get_a_submit_failed_event(evolink_sandbox: Sandbox) -> None:
    """Item 10: 10 inputs, credits for 3, max_in_flight=1. 3 complete; the 4th is refused with 402
    (SUBMIT_FAILED, InsufficientCreditsError); the 6 never sent each get a SUBMIT_FAILED event whose
    error says they were not submitted, with no request for them; ``summary.not_submitted == 6``;
    exactly one terminal event per input, keys exactly the 10 inputs."""
    keys = [f"in-{n}" for n in range(10)]
    terminal: dict[object, list[evolink.TaskEvent]] = {}
    async with _client(evolink_sandbox) as client:
        async with asyncio.timeout(30):
            async with client.fan_out([(k, edit(n)) for n, k in enumerate(keys)], max_in_flight=1) as events:
                async for event in events:
                    if event.is_terminal:
                        terminal.setdefault(event.key, []).append(event)
    assert sorted(terminal, key=str) == sorted(keys)
    assert all(len(got) == 1 for got in terminal.values()), terminal
    by_kind = {kind: [e[0] for e in terminal.values() if e[0].kind is kind] for kind in evolink.EventKind}
    assert len(by_kind[evolink.EventKind.COMPLETED]) == 3
    refused = [e for e in by_kind[evolink.EventKind.SUBMIT_FAILED] if isinstance(e.error, evolink.InsufficientCreditsError)]
    never_sent = [e for e in by_kind[evolink.EventKind.SUBMIT_FAILED] if e not in refused]
    assert len(refused) == 1
    assert len(never_sent) == 6
    for event in never_sent:
        assert event.task is None
        assert event.error is not None
        assert "not submitted" in str(event.error).lower()
    # No network call for the inputs that were never sent: 3 billed submits + the refused one.
    assert evolink_sandbox.ledger.requests[SUBMIT_ENDPOINT] == 4
    assert len(evolink_sandbox.ledger.billed) == 3
    assert events.summary.not_submitted == 6
    assert events.summary.terminal == 10


@pytest.mark.evolink_sandbox(faults=Faults(reset_after_rate=1.0))
async def test_fan_out_summary_counts_submits_retried_after_an_uncertain_failure(evolink_sandbox: Sandbox) -> None:
    """Item 24: ``FanOutSummary.retried_uncertain_submits`` counts the submits that were retried
    after an uncertain failure (here every answer is dropped after the server accepted the
    request): 3 inputs, each retried, so 3; each input still ends with one SUBMIT_FAILED and is
    billed once."""
    assert evolink.FanOutSummary().retried_uncertain_submits == 0
    terminal: list[evolink.TaskEvent] = []
    async with _client(evolink_sandbox, max_retries=2) as client:
        async with asyncio.timeout(30):
            async with client.fan_out([edit(n) for n in range(3)], max_in_flight=3) as events:
                async for event in events:
                    if event.is_terminal:
                        terminal.append(event)
    assert len(terminal) == 3
    assert all(e.kind is evolink.EventKind.SUBMIT_FAILED for e in terminal)
    assert all(isinstance(e.error, evolink.APIConnectionError) for e in terminal)
    assert evolink_sandbox.ledger.faults["reset_after"] >= 6
    assert len(evolink_sandbox.ledger.billed) == 3  # retried with the same key: never billed twice
    assert events.summary.retried_uncertain_submits == 3
