"""What happened in a sandbox, for tests and benchmarks to assert on.

The ledger only ever grows while the sandbox runs; read it at any time (it is plain data on the
event loop's thread, so reads between awaits are consistent).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import attrs

from .midjourney._ledger import MjHookAttempt, MjSubmission

__all__ = ["CallbackAttempt", "Ledger"]


@attrs.frozen(kw_only=True)
class CallbackAttempt:
    """One POST of a task to its ``callback_url``: ``status`` is the HTTP answer, ``error`` why none came."""

    task_id: str
    attempt: int
    status: int | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@attrs.define(kw_only=True)
class Ledger:
    """Counters of a running sandbox.

    - ``billed``: ids of the tasks that were accepted and charged, in submit order;
    - ``charges``: credits charged per billed task, ``credits_charged`` their sum;
    - ``replays``: how many idempotent replays were answered (``replayed_ids`` names their tasks);
    - ``requests``: requests per endpoint, keyed like ``"POST /v1/images/generations"``;
    - ``faults``: injected faults per kind (``"server_error"``, ``"reset_after"``, ...);
    - ``peak_unfinished``: most tasks of one API key submitted and not yet terminal at one moment
      (``peak_unfinished_by_key`` per key), counted at each accepted submit;
    - ``files_stored``: uploads the Files API stored; ``peak_files_by_key``: most files one key had
      stored at one moment (counted at each stored upload);
    - ``callbacks``: every callback attempt; ``callbacks_delivered`` the tasks whose callback got a 2xx;
    - Midjourney-proxy side: ``mj_tasks`` every created MJ task (also in ``billed``), ``mj_refused``
      submits answered without a task, per code (4, 23, 24, ...), ``mj_hooks`` every notifyHook send;
      MJ peaks are counted under the key ``"mj:<secret>"`` of ``peak_unfinished_by_key``.

    >>> sandbox.ledger.billed == [task_id]
    """

    billed: list[str] = attrs.field(factory=list)
    charges: dict[str, float] = attrs.field(factory=dict)
    credits_charged: float = 0.0
    replays: int = 0
    replayed_ids: list[str] = attrs.field(factory=list)
    requests: Counter[str] = attrs.field(factory=Counter)
    faults: Counter[str] = attrs.field(factory=Counter)
    peak_unfinished: int = 0
    peak_unfinished_by_key: dict[str, int] = attrs.field(factory=dict)
    files_stored: int = 0
    peak_files_by_key: dict[str, int] = attrs.field(factory=dict)
    callbacks: list[CallbackAttempt] = attrs.field(factory=list)
    callbacks_delivered: list[str] = attrs.field(factory=list)
    mj_tasks: list[MjSubmission] = attrs.field(factory=list)
    mj_refused: Counter[int] = attrs.field(factory=Counter)
    mj_hooks: list[MjHookAttempt] = attrs.field(factory=list)

    def record_billed(self, task_id: str, credits: float) -> None:
        self.billed.append(task_id)
        self.charges[task_id] = credits
        # Rounded so that 1.8 + 1.8 + 1.8 reads 5.4 in an assertion, not 5.3999999.
        self.credits_charged = round(self.credits_charged + credits, 6)

    def record_replay(self, task_id: str) -> None:
        self.replays += 1
        self.replayed_ids.append(task_id)

    def record_file_stored(self, api_key: str, stored: int) -> None:
        self.files_stored += 1
        if stored > self.peak_files_by_key.get(api_key, 0):
            self.peak_files_by_key[api_key] = stored

    def record_unfinished(self, api_key: str, unfinished: int) -> None:
        if unfinished > self.peak_unfinished_by_key.get(api_key, 0):
            self.peak_unfinished_by_key[api_key] = unfinished
        self.peak_unfinished = max(self.peak_unfinished, unfinished)

    def record_callback(self, attempt: CallbackAttempt) -> None:
        self.callbacks.append(attempt)
        if attempt.ok:
            self.callbacks_delivered.append(attempt.task_id)

    def record_mj_task(self, entry: MjSubmission) -> None:
        self.mj_tasks.append(entry)
        self.record_billed(entry.task_id, entry.credits)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready copy (served at ``GET /_sandbox/ledger`` for standalone servers)."""
        return {
            "billed": list(self.billed),
            "charges": dict(self.charges),
            "credits_charged": self.credits_charged,
            "replays": self.replays,
            "replayed_ids": list(self.replayed_ids),
            "requests": dict(self.requests),
            "faults": dict(self.faults),
            "peak_unfinished": self.peak_unfinished,
            "peak_unfinished_by_key": dict(self.peak_unfinished_by_key),
            "callbacks": [attrs.asdict(a) for a in self.callbacks],
            "callbacks_delivered": list(self.callbacks_delivered),
            "mj_tasks": [attrs.asdict(e) for e in self.mj_tasks],
            "mj_refused": {str(code): n for code, n in self.mj_refused.items()},
            "mj_hooks": [attrs.asdict(h) for h in self.mj_hooks],
        }
