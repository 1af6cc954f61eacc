"""When to query an unfinished task next (pure arithmetic, no I/O, no clock of its own).

Each query of an unfinished task makes the gateway ask the upstream provider, so queries are
spent where they buy latency: none before the task could plausibly be done, dense around the
expected finish, and backing off once the task is overdue.
"""

from __future__ import annotations

import math
import random

import attrs

from .._core.checks import MAX_SECONDS, SCALE, SECONDS, number_at_least
from ..errors import ValidationError

__all__ = ["PollPolicy", "PollState"]


class PollState:
    """What the policy remembers about one watched task (kept small: 100k of them must fit)."""

    __slots__ = ("estimated", "first_progress", "last_progress", "overdue_queries", "queries", "submitted_at")

    def __init__(self, *, submitted_at: float, estimated: float | None) -> None:
        self.submitted_at = submitted_at
        self.estimated = estimated
        self.queries = 0
        self.overdue_queries = 0
        # (time, progress) of the first and latest observation with 0 < progress < 100.
        self.first_progress: tuple[float, int] | None = None
        self.last_progress: tuple[float, int] | None = None

    def observe(self, *, at: float, progress: int, estimated: float | None) -> None:
        """Record one query's answer."""
        self.queries += 1
        if estimated is not None:
            self.estimated = estimated
        if 0 < progress < 100:
            if self.first_progress is None:
                self.first_progress = (at, progress)
            if self.last_progress is None or progress > self.last_progress[1]:
                self.last_progress = (at, progress)

    @property
    def rate_measured(self) -> bool:
        """True once two observations with different progress give a measured rate."""
        first, last = self.first_progress, self.last_progress
        return first is not None and last is not None and last[1] > first[1] and last[0] > first[0]

    def progress_eta(self) -> float | None:
        """When the task should finish if progress keeps its observed rate (None without data)."""
        last = self.last_progress
        if last is None:
            return None
        first = self.first_progress
        if first is not None and last[1] > first[1] and last[0] > first[0]:
            start_at, start_progress = first
        else:
            # One point only: assume progress rose linearly from the submit.
            start_at, start_progress = self.submitted_at, 0
        rate = (last[1] - start_progress) / (last[0] - start_at) if last[0] > start_at else 0.0
        if rate <= 0:
            return None
        return last[0] + (100 - last[1]) / rate


def _below_one(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if value >= 1:
        raise ValidationError(attribute.name, f"must be below 1, got {value!r}")


@attrs.frozen(kw_only=True)
class PollPolicy:
    """The default schedule of task queries.

    - The first query comes at ``first_query`` x the task's ``estimated_time`` after submit, and
      never later than ``max_interval`` after the watch starts. Where that is below
      ``min_interval`` (a short task, or a scaled clock), it comes at ``overdue_after`` x the
      estimate instead (at most ``min_interval``): past the finish, not racing it.
    - Until ``overdue_after`` x ``estimated_time`` queries come every ``resolution`` x
      ``estimated_time`` (within ``min_interval``..``max_interval``); where progress has been
      seen, the policy extrapolates the finish and skips ahead toward it, and once two answers
      have measured the rate, it aims the last query just past the extrapolated finish.
    - Past that it backs off by ``backoff`` per query, up to ``max_interval``.
    - Every delay gets +-``jitter`` so that thousands of tasks do not query in lockstep.

    >>> PollPolicy(min_interval=0.5, max_interval=20.0)
    """

    min_interval: float = attrs.field(default=1.0, validator=SECONDS.validator())
    max_interval: float = attrs.field(default=30.0, validator=SECONDS.validator())
    #: Assumed when the server gives no ``estimated_time``.
    default_estimated_time: float = attrs.field(default=30.0, validator=SECONDS.validator())
    #: The largest ``estimated_time`` believed: a server's number guides the schedule, and a
    #: huge one (1e9) must not put the first query off for ever. Midjourney takes up to ~20 min.
    max_estimated_time: float = attrs.field(default=3600.0, validator=SECONDS.validator())
    first_query: float = attrs.field(default=0.5, validator=number_at_least(0, maximum=MAX_SECONDS))
    #: The spacing of queries near the expected finish, as a fraction of ``estimated_time``. A
    #: twelfth, not a sixteenth: without progress data (a server that reports none) 1/16 spent
    #: 0.88x the queries of fixed 3 s polling; 1/12 spends fewer at still lower latency
    #: (benchmarks/polling.py, "progress-blind").
    resolution: float = attrs.field(default=1 / 12, validator=number_at_least(0, above=True))
    overdue_after: float = attrs.field(default=1.5, validator=number_at_least(0))
    backoff: float = attrs.field(default=1.5, validator=number_at_least(1))
    #: Fraction of the remaining time to the extrapolated finish that one skip covers. Half, not
    #: more: a task that sat in ``pending`` first makes the extrapolation late, and a longer skip
    #: overshoots the finish (measured in benchmarks/polling.py: 0.7 doubled the mean latency).
    approach: float = attrs.field(default=0.5, validator=[number_at_least(0, above=True), _below_one])
    #: How far past a measured-rate finish the last query aims, as a fraction of the spacing.
    final_margin: float = attrs.field(default=0.1, validator=number_at_least(0))
    jitter: float = attrs.field(default=0.1, validator=[number_at_least(0), _below_one])
    #: Waits after failed queries: ``min_interval`` doubling per consecutive error, up to this.
    max_error_interval: float = attrs.field(default=60.0, validator=SECONDS.validator())

    def __attrs_post_init__(self) -> None:
        if self.min_interval > self.max_interval:
            raise ValidationError("min_interval", f"must not exceed max_interval ({self.max_interval:g})")
        if self.default_estimated_time > self.max_estimated_time:
            raise ValidationError(
                "default_estimated_time", f"must not exceed max_estimated_time ({self.max_estimated_time:g})"
            )

    def scaled(self, factor: float) -> PollPolicy:
        """This policy on a clock running ``1/factor`` times faster (for a time-scaled sandbox)."""
        SCALE.check("factor", factor)
        return attrs.evolve(
            self,
            min_interval=self.min_interval * factor,
            max_interval=self.max_interval * factor,
            default_estimated_time=self.default_estimated_time * factor,
            max_error_interval=self.max_error_interval * factor,
            max_estimated_time=self.max_estimated_time * factor,
        )

    def safety_net(self) -> PollPolicy:
        """The schedule for a task that reports its own end (a callback): one query a little after
        the task should have ended, then slow back-off, so a lost callback costs latency, not the task.
        """
        return attrs.evolve(
            self,
            first_query=max(self.first_query, 1.6),
            overdue_after=max(self.overdue_after, 1.6),
            resolution=max(self.resolution, 0.5),
            backoff=max(self.backoff, 2.0),
            max_interval=self.max_interval * 10,
        )

    def _estimate(self, state: PollState) -> float:
        estimated = state.estimated
        if not estimated or not 0 < estimated < math.inf:  # absent, zero, negative, NaN or infinite
            return self.default_estimated_time
        return min(estimated, self.max_estimated_time)

    def _clamp(self, delay: float) -> float:
        return min(self.max_interval, max(self.min_interval, delay))

    def _jittered(self, delay: float, rng: random.Random) -> float:
        # ``rng.uniform(-j, j)`` written out: its Python frame was a visible share of a query's CPU.
        return delay * (1.0 + self.jitter * (2.0 * rng.random() - 1.0))

    def first_delay(self, state: PollState, *, now: float, rng: random.Random) -> float:
        """Seconds from ``now`` until the first query of a task submitted at ``state.submitted_at``."""
        estimated = self._estimate(state)
        aim = self.first_query * estimated
        if aim < self.min_interval:
            # The floor binds: every later query is ``min_interval`` apart, so a first query that
            # races the finish costs a whole ``min_interval`` (1 s against a 30 ms task). Aim past
            # the latest plausible finish instead (still no later than the floor), and let jitter
            # only lengthen the wait: a query that lands early is the expensive mistake here.
            target = state.submitted_at + min(self.min_interval, self.overdue_after * estimated)
            if target <= now:
                return 0.0
            return min(self.max_interval, (target - now) * (1.0 + self.jitter * rng.random()))
        target = state.submitted_at + aim
        # Never more than ``max_interval`` away, like every later query: the estimate comes from
        # the server, and may guide the schedule but not suspend it.
        return min(self.max_interval, max(0.0, self._jittered(target - now, rng))) if target > now else 0.0

    def next_delay(self, state: PollState, *, now: float, rng: random.Random) -> float:
        """Seconds from ``now`` until the next query, after ``state`` took in the latest answer."""
        estimated = self._estimate(state)
        spacing = self._clamp(self.resolution * estimated)
        eta = state.progress_eta()
        if eta is not None and eta - now > 2 * spacing:
            delay = max(spacing, (eta - now) * self.approach)
        elif eta is not None and eta > now and state.rate_measured:
            # Close to a finish extrapolated from a measured rate: one query just past it beats
            # stepping toward it at the spacing (lower latency, and fewer queries). Jitter only
            # lengthens the margin: a query that lands before the finish costs another query.
            margin = self.final_margin * spacing * (1.0 + self.jitter * rng.random())
            return min(self.max_interval, max(self.min_interval, eta - now + margin))
        elif now < state.submitted_at + self.overdue_after * estimated or (eta is not None and eta > now - spacing):
            delay = spacing
        else:
            state.overdue_queries += 1
            delay = spacing * self.backoff**state.overdue_queries
        return self._jittered(min(self.max_interval, delay), rng)

    def error_delay(self, consecutive_errors: int, *, rng: random.Random) -> float:
        """Seconds to wait after ``consecutive_errors`` failed queries in a row."""
        delay = min(self.max_error_interval, self.min_interval * 2.0 ** max(0, consecutive_errors - 1))
        return self._jittered(delay, rng)
