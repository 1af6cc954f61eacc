"""The task book: accepted tasks, idempotency records, credit balance, unfinished counts."""

from __future__ import annotations

import heapq
import json
import random
import string
import time
from collections.abc import Mapping
from typing import Any

from .._config import SandboxConfig
from .._ledger import Ledger
from ._lifecycle import TaskRecord, plan_task

__all__ = ["IdempotencyConflict", "TaskBook", "fingerprint"]

_ID_ALPHABET = string.ascii_lowercase + string.digits
TASK_ID_PREFIX = "task-unified-"


class IdempotencyConflict(Exception):
    """The Idempotency-Key was already used with a different body."""


def fingerprint(body: Mapping[str, Any]) -> str:
    """The canonical form of a submit body: same JSON, same fingerprint (key order ignored)."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class TaskBook:
    """Every task a sandbox accepted, scoped per API key (another key's task is a 404)."""

    def __init__(self, config: SandboxConfig, ledger: Ledger) -> None:
        self._config = config
        self._ledger = ledger
        self._tasks: dict[str, TaskRecord] = {}
        # (api key, idempotency key) -> (body fingerprint, task id). Kept for the sandbox's
        # life: the real retention is undocumented, and a test run is far shorter than any.
        self._idempotency: dict[tuple[str, str], tuple[str, str]] = {}
        # api key -> min-heap of finish times of tasks that may still be unfinished.
        self._unfinished: dict[str, list[float]] = {}
        self._id_rng = random.Random(f"{config.seed}/ids")
        self.credits_remaining: float | None = config.credits

    def __len__(self) -> int:
        return len(self._tasks)

    def get(self, api_key: str, task_id: str) -> TaskRecord | None:
        record = self._tasks.get(task_id)
        return record if record is not None and record.api_key == api_key else None

    def lookup(self, task_id: str) -> TaskRecord | None:
        """A task whatever its key (result files are public URLs, like the real CDN's)."""
        return self._tasks.get(task_id)

    def replay(self, api_key: str, idempotency_key: str, body_fingerprint: str) -> TaskRecord | None:
        """The task an earlier submit with this key created, or None; raises on a body mismatch."""
        entry = self._idempotency.get((api_key, idempotency_key))
        if entry is None:
            return None
        if entry[0] != body_fingerprint:
            raise IdempotencyConflict(idempotency_key)
        return self._tasks[entry[1]]

    def can_afford(self, credits: float) -> bool:
        return self.credits_remaining is None or credits <= self.credits_remaining + 1e-9

    def create(
        self,
        *,
        api_key: str,
        body: dict[str, Any],
        credits: float,
        now: float,
        idempotency_key: str | None,
        body_fingerprint: str,
        input_image: bytes | None = None,
        input_missing: bool = False,
    ) -> TaskRecord:
        """Accept, plan and bill a task; the caller has checked ``can_afford``."""
        ordinal = len(self._tasks)
        created = int(time.time())
        record = plan_task(
            self._config,
            task_id=self._new_id(created),
            ordinal=ordinal,
            api_key=api_key,
            body=body,
            created=created,
            now=now,
            credits=credits,
            input_image=input_image,
            input_missing=input_missing,
        )
        self._tasks[record.id] = record
        if idempotency_key is not None:
            self._idempotency[(api_key, idempotency_key)] = (body_fingerprint, record.id)
        if self.credits_remaining is not None:
            self.credits_remaining = round(self.credits_remaining - credits, 6)
        self._ledger.record_billed(record.id, credits)
        self._count_unfinished(api_key, record.finishes, now)
        return record

    def _count_unfinished(self, api_key: str, finishes: float, now: float) -> None:
        # The count can only rise at a submit, so sampling it here finds the true peak.
        heap = self._unfinished.setdefault(api_key, [])
        while heap and heap[0] <= now:
            heapq.heappop(heap)
        heapq.heappush(heap, finishes)
        self._ledger.record_unfinished(api_key, len(heap))

    def _new_id(self, created: int) -> str:
        while True:
            suffix = "".join(self._id_rng.choice(_ID_ALPHABET) for _ in range(8))
            task_id = f"{TASK_ID_PREFIX}{created}-{suffix}"
            if task_id not in self._tasks:
                return task_id
