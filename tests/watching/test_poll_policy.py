"""The default poll schedule, as pure arithmetic, and the tracker's reaction to 429s."""

from __future__ import annotations

import random

import anyio
import pytest

import evolink_async as evolink
from evolink_async import PollPolicy, Task, TaskStatus
from evolink_async._watching.poll_policy import PollState
from evolink_async._watching.tracker import Tracker
from tests.helpers.sinks import Recorder

RNG = random.Random(3)
NO_JITTER = PollPolicy(jitter=0.0)


def state(estimated: float | None = 48.0) -> PollState:
    return PollState(submitted_at=100.0, estimated=estimated)


def test_first_query_waits_for_half_the_estimate() -> None:
    assert NO_JITTER.first_delay(state(48.0), now=100.0, rng=RNG) == pytest.approx(24.0)
    assert NO_JITTER.first_delay(state(None), now=100.0, rng=RNG) == pytest.approx(15.0)  # default estimate 30 s
    assert NO_JITTER.first_delay(state(48.0), now=130.0, rng=RNG) == 0.0  # an old task: query now


def test_dense_around_the_expected_finish_without_progress() -> None:
    s = state(48.0)
    s.observe(at=124.0, progress=0, estimated=48.0)
    assert NO_JITTER.next_delay(s, now=124.0, rng=RNG) == pytest.approx(4.0)  # 48 / 12
    s.observe(at=160.0, progress=0, estimated=48.0)
    assert NO_JITTER.next_delay(s, now=160.0, rng=RNG) == pytest.approx(4.0)


def test_backs_off_past_the_window_up_to_the_ceiling() -> None:
    s = state(48.0)
    delays = []
    now = 100.0 + 48.0 * 1.5 + 1
    for _ in range(12):
        s.observe(at=now, progress=0, estimated=48.0)
        delay = NO_JITTER.next_delay(s, now=now, rng=RNG)
        delays.append(delay)
        now += delay
    assert delays == sorted(delays)
    assert delays[0] == pytest.approx(6.0)  # the spacing, 4 s, x 1.5
    assert delays[-1] == NO_JITTER.max_interval


def test_progress_extrapolation_skips_ahead() -> None:
    s = state(48.0)
    s.observe(at=124.0, progress=20, estimated=48.0)  # 20 % after 24 s: done around t=220
    assert s.progress_eta() == pytest.approx(220.0)
    assert NO_JITTER.next_delay(s, now=124.0, rng=RNG) == 30.0  # capped by max_interval
    roomy = PollPolicy(jitter=0.0, max_interval=120.0)
    assert roomy.next_delay(s, now=124.0, rng=RNG) == pytest.approx((220.0 - 124.0) * 0.5)
    s.observe(at=191.2, progress=60, estimated=48.0)  # two points: the rate is measured, not assumed
    assert s.progress_eta() == pytest.approx(191.2 + 40 / (40 / 67.2))


def test_a_measured_rate_aims_the_last_query_just_past_the_finish() -> None:
    s = state(48.0)
    s.observe(at=124.0, progress=40, estimated=48.0)
    s.observe(at=140.0, progress=80, estimated=48.0)  # 2.5 %/s: done at t=148
    assert s.rate_measured
    # 8 s left is within two spacings (2 x 4 s): one query at the finish plus a tenth of the spacing.
    assert NO_JITTER.next_delay(s, now=140.0, rng=RNG) == pytest.approx(8.0 + 0.4)
    jittered = PollPolicy(jitter=0.2)
    delays = [jittered.next_delay(s, now=140.0, rng=RNG) for _ in range(50)]
    assert min(delays) >= 8.4  # jitter only lengthens the margin: never before the finish
    assert max(delays) <= 8.0 + 0.4 * 1.2


def test_one_progress_point_does_not_aim_at_the_finish() -> None:
    s = state(48.0)
    s.observe(at=140.0, progress=87, estimated=48.0)  # one point: the rate is assumed from the submit
    assert not s.rate_measured
    assert NO_JITTER.next_delay(s, now=140.0, rng=RNG) == pytest.approx(4.0)  # the plain spacing


def test_progress_never_pushes_queries_past_a_missed_finish() -> None:
    s = state(48.0)
    s.observe(at=124.0, progress=50, estimated=48.0)
    # The extrapolated finish (t=148) has passed and the task still runs: stay at the dense spacing.
    assert NO_JITTER.next_delay(s, now=150.0, rng=RNG) == pytest.approx(4.0)


def test_limits_hold() -> None:
    policy = PollPolicy(min_interval=2.0, max_interval=5.0, jitter=0.0)
    tiny, huge = state(1.0), state(10_000.0)
    for s in (tiny, huge):
        s.observe(at=101.0, progress=0, estimated=s.estimated)
    assert policy.next_delay(tiny, now=101.0, rng=RNG) == 2.0
    assert policy.next_delay(huge, now=101.0, rng=RNG) == 5.0


def test_jitter_spreads_delays() -> None:
    policy = PollPolicy(jitter=0.2)
    s = state(48.0)
    s.observe(at=124.0, progress=0, estimated=48.0)
    delays = {round(policy.next_delay(s, now=124.0, rng=RNG), 6) for _ in range(50)}
    assert len(delays) > 10
    assert min(delays) >= 4.0 * 0.8
    assert max(delays) <= 4.0 * 1.2


def test_error_delays_double_and_cap() -> None:
    policy = PollPolicy(jitter=0.0, min_interval=1.0, max_error_interval=8.0)
    assert [policy.error_delay(n, rng=RNG) for n in (1, 2, 3, 4, 10)] == [1.0, 2.0, 4.0, 8.0, 8.0]


def test_scaled_policy() -> None:
    scaled = PollPolicy().scaled(0.01)
    assert scaled.min_interval == pytest.approx(0.01)
    assert scaled.max_interval == pytest.approx(0.3)
    assert scaled.default_estimated_time == pytest.approx(0.3)


def test_invalid_policy() -> None:
    with pytest.raises(ValueError, match="min_interval"):
        PollPolicy(min_interval=5, max_interval=1)


async def test_a_429_slows_every_watched_task() -> None:
    queried: dict[str, int] = {}
    rate_limited = True

    async def fetch(task_id: str) -> Task:
        queried[task_id] = queried.get(task_id, 0) + 1
        if task_id == "limited" and rate_limited:
            raise evolink.RateLimitError("slow down", status_code=429)
        return Task(id=task_id, status=TaskStatus.PROCESSING, progress=1)

    policy = PollPolicy(min_interval=0.01, max_interval=0.01, jitter=0.0, max_error_interval=0.01)
    tracker = Tracker(fetch, policy=policy, max_concurrent_queries=2)
    sinks = [Recorder(), Recorder()]
    async with anyio.create_task_group() as group:
        tracker.open()
        group.start_soon(tracker.run)
        tracker.watch("calm", sinks[0])
        tracker.watch("limited", sinks[1])
        with anyio.fail_after(10):  # every task's next delay is multiplied by the slowdown
            while tracker.slowdown <= 1:
                await anyio.sleep(0.01)
        calm_before = queried["calm"]
        await anyio.sleep(0.2)  # a window to count queries in, slowed
        calm_slowed = queried["calm"] - calm_before
        rate_limited = False
        with anyio.fail_after(10):  # successes decay the slowdown
            while tracker.slowdown >= 2:
                await anyio.sleep(0.01)
        calm_after = queried["calm"]
        await anyio.sleep(0.2)  # the same window, recovered
        calm_recovered = queried["calm"] - calm_after
        group.cancel_scope.cancel()
    assert calm_recovered > calm_slowed
    assert all(isinstance(e, evolink.ClientClosedError) for s in sinks for e in s.errors)


async def test_concurrent_queries_are_bounded() -> None:
    running = peak = 0

    async def fetch(task_id: str) -> Task:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await anyio.sleep(0.02)
        running -= 1
        return Task(id=task_id, status=TaskStatus.COMPLETED, progress=100)

    tracker = Tracker(fetch, policy=PollPolicy(min_interval=0.01, max_interval=0.01), max_concurrent_queries=3)
    sinks = [Recorder() for _ in range(30)]
    async with anyio.create_task_group() as group:
        tracker.open()
        group.start_soon(tracker.run)
        for i, sink in enumerate(sinks):
            tracker.watch(f"t{i}", sink)
        with anyio.fail_after(5):
            while tracker.watched:
                await anyio.sleep(0.01)
        group.cancel_scope.cancel()
    assert peak == 3
    assert all(s.events[-1].kind is evolink.EventKind.COMPLETED for s in sinks)
