"""The first query of a short task lands past its finish, not in a race with it (issue 25).

When ``first_query x estimated_time`` is below ``min_interval``, every later query is a whole
``min_interval`` away: a first query that comes before the finish costs that much latency (33x a
30 ms task). The policy aims the first query at ``overdue_after x estimate`` instead.
"""

from __future__ import annotations

import random

import pytest

import evolink_async as evolink
from evolink_async import EventKind, PollPolicy, QwenImageEdit
from evolink_async._watching.poll_policy import PollState
from evolink_async.sandbox import Sandbox

TASKS_ENDPOINT = "GET /v1/tasks/{task_id}"


def test_a_short_task_is_first_queried_past_its_latest_plausible_finish() -> None:
    policy = PollPolicy()  # min_interval 1 s, overdue_after 1.5
    rng = random.Random(7)
    delays = [policy.first_delay(PollState(submitted_at=50.0, estimated=0.03), now=50.0, rng=rng) for _ in range(500)]
    assert min(delays) >= 0.045  # 1.5 x the estimate: jitter only lengthens it
    assert max(delays) <= 0.045 * (1 + policy.jitter)
    assert len(set(delays)) > 400  # still spread, so thousands of tasks do not query in lockstep


def test_the_short_task_rule_never_waits_longer_than_the_floor() -> None:
    policy = PollPolicy(jitter=0.0)
    # Estimate 1.2 s: 0.5 x 1.2 < 1 s, and 1.5 x 1.2 = 1.8 s is capped at min_interval.
    assert policy.first_delay(PollState(submitted_at=0.0, estimated=1.2), now=0.0, rng=random.Random(1)) == 1.0
    # Estimates whose first query clears the floor keep today's schedule (half the estimate).
    assert policy.first_delay(PollState(submitted_at=0.0, estimated=4.0), now=0.0, rng=random.Random(1)) == 2.0
    # A task already old when the watch starts is queried at once.
    assert policy.first_delay(PollState(submitted_at=0.0, estimated=0.03), now=5.0, rng=random.Random(1)) == 0.0


@pytest.mark.evolink_sandbox(time_scale=0.001)
@pytest.mark.parametrize("max_in_flight", [16, 100])
async def test_tasks_shorter_than_the_floor_are_found_by_their_first_query(
    evolink_sandbox: Sandbox, max_in_flight: int
) -> None:
    # The sandbox runs 1000x faster (a 20 s estimate is 20 ms, durations 0.5-1.5x it) and the
    # client keeps the unscaled default policy: every query after the first is 1 s away.
    count = 120
    requests = (
        (i, QwenImageEdit(prompt=f"edit {i}", image_urls=[f"https://example.com/{i}.png"])) for i in range(count)
    )
    async with evolink.EvolinkClient(
        evolink_sandbox.api_key, base_url=evolink_sandbox.base_url, poll_policy=PollPolicy()
    ) as client:
        async with client.fan_out(requests, max_in_flight=max_in_flight) as events:
            seen = [event async for event in events]
    assert sum(event.kind is EventKind.COMPLETED for event in seen) == count
    # A 20 ms task can be over before its own submit answer is written when the machine is busy
    # (the sandbox is descheduled between the two): that answer says completed, no query needed.
    done_at_submit = sum(
        1 for e in seen if e.kind is EventKind.SUBMITTED and e.task is not None and e.task.status.is_terminal
    )
    # One query per other task: none raced the finish (today's code queried most of them twice).
    assert evolink_sandbox.ledger.requests[TASKS_ENDPOINT] == count - done_at_submit
