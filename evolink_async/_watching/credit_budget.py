"""``fan_out(max_credits=...)``: the credits a fan-out may reserve, checked before each submit.

A task's cost is known only from its submit answer (``usage.credits_reserved``), so each submit
in flight is counted at an estimate: ``credits_per_task`` when given, or the largest cost seen so
far, whichever is bigger. A submit goes out only while

    credits reserved by answers so far + (submits in flight + 1) x estimate <= max_credits.

When it does not fit but submits are in flight, the feeder waits for their answers (their real
costs replace the estimate) and checks again; once nothing is in flight and it still does not fit,
submitting stops for good. Until a first cost is known (no ``credits_per_task``), one submit at a
time goes out, and only while the budget is not used up: that first submit is the only one whose
cost cannot be checked beforehand. A submit whose outcome is unknown (lost on the network) counts
at the estimate, since the server may have billed it; a refused one counts nothing.
"""

from __future__ import annotations

import asyncio

from .._core.checks import check_number
from .._models.task import Task

__all__ = ["CreditBudget", "credits_of"]

# Float sums (1.8 + 1.8 + ...) must not refuse a submit that fits exactly.
_SLACK = 1e-9


def credits_of(task: Task) -> float | None:
    """The credits a submit answer says it reserved, or ``None`` when it does not say."""
    usage = task.usage
    return usage.credits_reserved if usage is not None else None


class CreditBudget:
    """Admits submits while the credits reserved and in flight fit ``max_credits``."""

    def __init__(self, max_credits: float, credits_per_task: float | None = None) -> None:
        self.max_credits = check_number("max_credits", max_credits)
        self._hint = None if credits_per_task is None else check_number("credits_per_task", credits_per_task,
                                                                         above=True)  # fmt: skip
        self._largest: float | None = None
        #: Credits of the settled submits (answers' costs, estimates for unknown outcomes).
        self.counted = 0.0
        self.pending = 0
        self._cost_unknown = False
        self._settled = asyncio.Event()

    @property
    def estimate(self) -> float | None:
        """What one more submit is expected to cost, or ``None`` before anything is known."""
        known = [cost for cost in (self._hint, self._largest) if cost is not None]
        return max(known) if known else None

    @property
    def reason(self) -> str:
        """Why submitting stopped (the ``NotSubmittedError`` reason of the inputs left)."""
        if self._cost_unknown:
            return "credit budget reached: the cost of a submit is unknown (no cost in its answer, or the answer " \
                "was lost); pass credits_per_task"
        return f"credit budget reached ({self.counted:g} of max_credits={self.max_credits:g} reserved)"

    async def admit(self) -> bool:
        """True: one more submit may go out (it is counted as in flight). False: stop submitting."""
        while True:
            if self._cost_unknown:
                return False
            estimate = self.estimate
            if estimate is None:
                fits = self.pending == 0 and self.counted < self.max_credits - _SLACK
            else:
                fits = self.counted + (self.pending + 1) * estimate <= self.max_credits + _SLACK
            if fits:
                self.pending += 1
                return True
            if self.pending == 0:
                return False
            self._settled.clear()
            await self._settled.wait()

    def withdraw(self) -> None:
        """An admitted submit that was not sent after all."""
        self.settle(0.0)

    def settle(self, cost: float | None) -> None:
        """An admitted submit ended: ``cost`` from its answer, ``None`` when it may have been billed
        at an unknown cost (no cost in the answer, or the answer was lost)."""
        self.pending -= 1
        if cost is None:
            cost = self.estimate
            if cost is None:
                self._cost_unknown = True
                cost = 0.0
        else:
            self._largest = cost if self._largest is None else max(self._largest, cost)
        self.counted += cost
        self._settled.set()
