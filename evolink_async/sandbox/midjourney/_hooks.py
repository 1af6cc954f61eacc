"""notifyHook delivery: one POST of the full task per status or progress change, as the proxies do.

Every planned event of a task with a ``notifyHook`` is due at its time (plus a random
``hook_delay``, which reorders sends close together); one attempt, no retry, no signature.
``hook_drop_rate`` of the sends are skipped and ``hook_duplicate_rate`` sent twice, decided
by a seeded stream. A cancelled or re-planned task's pending sends are abandoned (its
``generation`` moved on). Only loopback hosts are called, as for Evolink callbacks.
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

from .._config import SandboxConfig
from .._http import is_loopback_url
from .._ledger import Ledger
from ._ledger import MjHookAttempt
from ._tasks import MjEvent, MjTask

__all__ = ["MjHookDispatcher"]

_MAX_CONCURRENT = 64
_Due = tuple[float, int, MjTask, int, MjEvent, bool]


class MjHookDispatcher:
    def __init__(
        self,
        config: SandboxConfig,
        ledger: Ledger,
        *,
        body_of: Callable[[MjTask, float], dict[str, Any]],
        clock: Callable[[], float],
    ) -> None:
        self._config = config
        self._options = config.midjourney
        self._ledger = ledger
        self._body_of = body_of
        self._clock = clock
        self._rng = random.Random(f"{config.seed}/mj/hooks")
        self._due: list[_Due] = []
        self._sequence = itertools.count()
        self._wake = anyio.Event()
        self._limiter = anyio.CapacityLimiter(_MAX_CONCURRENT)

    def schedule(self, task: MjTask, *, after: float = -math.inf) -> None:
        """Queue the sends of ``task``'s events later than ``after`` (all of them by default)."""
        if task.notify_hook is None:
            return
        low, high = self._options.hook_delay
        for event in task.events:
            if event.at <= after:
                continue
            draw, delay = self._rng.random(), self._rng.uniform(low, high)
            if draw < self._options.hook_drop_rate:
                self._ledger.mj_hooks.append(
                    MjHookAttempt(task_id=task.id, task_status=event.status, progress=event.progress, dropped=True)
                )
                continue
            copies = 2 if draw < self._options.hook_drop_rate + self._options.hook_duplicate_rate else 1
            for copy in range(copies):
                due = event.at + self._config.real(delay * (1 + copy))
                heapq.heappush(self._due, (due, next(self._sequence), task, task.generation, event, copy > 0))
        self._wake.set()

    async def run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=self._config.real(self._options.hook_timeout))
        async with aiohttp.ClientSession(timeout=timeout) as session, anyio.create_task_group() as group:
            while True:
                now = self._clock()
                while self._due and self._due[0][0] <= now:
                    _, _, task, generation, event, duplicate = heapq.heappop(self._due)
                    if generation == task.generation:
                        group.start_soon(self._send, session, task, event, duplicate)
                wait = self._due[0][0] - now if self._due else math.inf
                with anyio.move_on_after(wait):
                    await self._wake.wait()
                if self._wake.is_set():
                    self._wake = anyio.Event()

    async def _send(self, session: aiohttp.ClientSession, task: MjTask, event: MjEvent, duplicate: bool) -> None:
        url = task.notify_hook
        assert url is not None

        def attempt(status: int | None = None, error: str | None = None) -> MjHookAttempt:
            return MjHookAttempt(
                task_id=task.id, task_status=event.status, progress=event.progress,
                status=status, error=error, duplicate=duplicate,
            )  # fmt: skip

        if not is_loopback_url(url):
            self._ledger.mj_hooks.append(attempt(error="not sent: the sandbox only calls loopback hosts"))
            return
        body = self._body_of(task, event.at)
        async with self._limiter:
            try:
                async with session.post(url, json=body) as response:
                    await response.read()
                    result = attempt(status=response.status)
            except TimeoutError:
                result = attempt(error="timeout")
            except aiohttp.ClientError as exc:
                result = attempt(error=f"{type(exc).__name__}: {exc}")
        self._ledger.mj_hooks.append(result)
