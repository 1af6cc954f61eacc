"""Callback delivery (API.md A5): POST the final task JSON to its ``callback_url``.

One dispatcher coroutine keeps a heap of due times (tasks finish on a planned timeline, so
the due time is known at submit) and starts one short-lived delivery per finished task; no
coroutine waits per unfinished task. A delivery makes the documented attempts: a 10 s timeout,
then up to 3 retries 1, 2 and 4 s after a failure (all time-scaled); a 2xx answer is success.

The sandbox only calls loopback hosts: nothing outside the machine may be contacted, so a
callback to any other host is recorded in the ledger as undeliverable instead of being sent.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections.abc import Callable
from typing import Any

import aiohttp
import anyio
import anyio.abc

from .._config import SandboxConfig
from .._http import is_loopback_url
from .._ledger import CallbackAttempt, Ledger
from ._lifecycle import TaskRecord

__all__ = ["CallbackDispatcher"]

_MAX_CONCURRENT_DELIVERIES = 64


class CallbackDispatcher:
    """Delivers callbacks of finished tasks; runs inside the sandbox's task group."""

    def __init__(
        self,
        config: SandboxConfig,
        ledger: Ledger,
        *,
        body_of: Callable[[TaskRecord], dict[str, Any]],
        clock: Callable[[], float],
    ) -> None:
        self._config = config
        self._ledger = ledger
        self._body_of = body_of
        self._clock = clock
        self._due: list[tuple[float, int, TaskRecord]] = []
        self._sequence = itertools.count()
        self._wake = anyio.Event()
        self._limiter = anyio.CapacityLimiter(_MAX_CONCURRENT_DELIVERIES)
        # Its own stream: callback faults must not shift the per-request fault draws.
        self._rng = random.Random(config.seed * 7919 + 1)

    def schedule(self, record: TaskRecord) -> None:
        """Deliver ``record``'s callback once it is terminal (no-op without a callback_url)."""
        if record.callback_url is None:
            return
        low, high = self._config.faults.callback_delay
        late = self._config.real(self._rng.uniform(low, high)) if high > 0 else 0.0
        heapq.heappush(self._due, (record.finishes + late, next(self._sequence), record))
        self._wake.set()

    async def run(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        timeout = aiohttp.ClientTimeout(total=self._config.real(self._config.callback_timeout))
        async with aiohttp.ClientSession(timeout=timeout) as session, anyio.create_task_group() as group:
            task_status.started()
            while True:
                now = self._clock()
                while self._due and self._due[0][0] <= now:
                    _, _, record = heapq.heappop(self._due)
                    group.start_soon(self._deliver, session, record)
                wait = self._due[0][0] - now if self._due else math.inf
                with anyio.move_on_after(wait):
                    await self._wake.wait()
                if self._wake.is_set():
                    self._wake = anyio.Event()

    async def _deliver(self, session: aiohttp.ClientSession, record: TaskRecord) -> None:
        url = record.callback_url
        assert url is not None
        if not is_loopback_url(url):
            self._ledger.record_callback(
                CallbackAttempt(task_id=record.id, attempt=1, error="not sent: the sandbox only calls loopback hosts")
            )
            return
        body = self._body_of(record)
        faults = self._config.faults
        if self._rng.random() < faults.callback_drop_rate:
            self._ledger.record_callback(CallbackAttempt(task_id=record.id, attempt=1, error="dropped (sandbox fault)"))
            return
        if self._rng.random() < faults.callback_duplicate_rate:
            await self._post(session, url, body, record.id, 0)  # a duplicate: the receiver must ignore it
        delays = self._config.callback_retry_delays
        async with self._limiter:
            for attempt in range(1, len(delays) + 2):
                result = await self._post(session, url, body, record.id, attempt)
                self._ledger.record_callback(result)
                if result.ok or attempt > len(delays):
                    return
                await anyio.sleep(self._config.real(delays[attempt - 1]))

    @staticmethod
    async def _post(
        session: aiohttp.ClientSession, url: str, body: dict[str, Any], task_id: str, attempt: int
    ) -> CallbackAttempt:
        try:
            async with session.post(url, json=body) as response:
                await response.read()
                return CallbackAttempt(task_id=task_id, attempt=attempt, status=response.status)
        except TimeoutError:
            return CallbackAttempt(task_id=task_id, attempt=attempt, error="timeout")
        except aiohttp.ClientError as exc:
            return CallbackAttempt(task_id=task_id, attempt=attempt, error=f"{type(exc).__name__}: {exc}")
