"""Watching tasks on a host that never answers: single fetches and bulk fetches (a Midjourney
proxy's ``task/list-by-condition``) give up by the same rule, after the same number of failed
queries, and every watch ends with the same typed error instead of polling for ever."""

from __future__ import annotations

import asyncio
from collections import Counter

import anyio
import pytest

from evolink_async import (
    APIConnectionError,
    APIUnreachableError,
    EvolinkClient,
    MidjourneyClient,
    PollPolicy,
    RetryPolicy,
)
from evolink_async._watching.queries import MAX_CONSECUTIVE_ERRORS
from tests.helpers.dead_host import DeadHost, dead_host

KEY = "sk-dead-host-test-key-0123456789"
# Fast and deterministic: no jitter, so the watches of one bulk request stay due together.
POLICY = PollPolicy(min_interval=0.001, max_interval=0.01, max_error_interval=0.004, jitter=0.0)
# One HTTP request per query: the transport's own retries would multiply the counts below.
NO_RETRY = RetryPolicy(max_retries=0)
IDS = [f"17000000000000{index:02d}" for index in range(5)]


async def _wait_all(client: EvolinkClient | MidjourneyClient) -> list[BaseException]:
    with anyio.fail_after(20):  # the old bulk path never gave up: this bound is what it hit
        outcomes = await asyncio.gather(*(client.tasks.wait(task_id, timeout=60) for task_id in IDS),
                                        return_exceptions=True)  # fmt: skip
    assert all(isinstance(outcome, BaseException) for outcome in outcomes), outcomes
    return [outcome for outcome in outcomes if isinstance(outcome, BaseException)]


def _queries_per_task(host: DeadHost) -> Counter[str]:
    asked: Counter[str] = Counter()
    for method, path, body in host.requests:
        if method == "POST" and path.endswith("/task/list-by-condition"):
            asked.update(body["ids"])
        elif method == "GET":
            asked[path.strip("/").split("/")[-1] if path.startswith("/v1/") else path.split("/")[-2]] += 1
    return asked


@pytest.mark.parametrize("refuse", [False, True], ids=["resets", "refuses"])
async def test_single_fetches_give_up_after_the_same_failures_in_a_row(refuse: bool) -> None:
    async with dead_host(refuse=refuse) as host:
        async with EvolinkClient(KEY, base_url=host.url, poll_policy=POLICY, retry=NO_RETRY) as client:
            errors = await _wait_all(client)
            assert client._tracker.watched == 0
            queries = client._tracker.queries_sent
    # Refused: no connection was made, nothing sent (APIUnreachableError); reset: a request went out.
    assert all(isinstance(error, APIConnectionError) for error in errors), errors
    assert all(isinstance(error, APIUnreachableError) is refuse for error in errors), errors
    assert queries == MAX_CONSECUTIVE_ERRORS * len(IDS)
    if not refuse:
        # aiohttp itself sends an idempotent GET once more after a reset (not a POST).
        attempts = len(host.requests) // queries
        assert attempts in (1, 2)
        assert len(host.requests) == attempts * queries
        assert _queries_per_task(host) == Counter({task_id: attempts * MAX_CONSECUTIVE_ERRORS for task_id in IDS})


@pytest.mark.parametrize("refuse", [False, True], ids=["resets", "refuses"])
async def test_bulk_fetches_give_up_by_the_same_rule(refuse: bool) -> None:
    async with dead_host(refuse=refuse) as host:
        async with MidjourneyClient(KEY, base_url=host.url, poll_policy=POLICY, retry=NO_RETRY) as mj:
            errors = await _wait_all(mj)
            assert mj.tracker.watched == 0
            queries, bulk = mj.tracker.queries_sent, mj.tracker.batch_queries
    # Refused: no connection was made, nothing sent (APIUnreachableError); reset: a request went out.
    assert all(isinstance(error, APIConnectionError) for error in errors), errors
    assert all(isinstance(error, APIUnreachableError) is refuse for error in errors), errors
    # Every task was asked about in every one of the requests, each of them a bulk fetch.
    assert queries == bulk == MAX_CONSECUTIVE_ERRORS
    if not refuse:
        assert host.count("POST", "/mj/task/list-by-condition") == bulk
        assert _queries_per_task(host) == Counter({task_id: MAX_CONSECUTIVE_ERRORS for task_id in IDS})
