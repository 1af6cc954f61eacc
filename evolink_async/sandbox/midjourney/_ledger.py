"""The ledger's MJ entries: each created MJ task with how it was billed, each notifyHook POST."""

from __future__ import annotations

import attrs

__all__ = ["MjHookAttempt", "MjSubmission"]


@attrs.frozen(kw_only=True)
class MjSubmission:
    """A created MJ task: the submit ``code`` it was answered with (1, 21 or 22), the
    ``endpoint`` (``"imagine"``, ``"action"``, ...), the ``credits`` charged for it and the
    request's ``state`` (a client's marker: count by it to prove no submit created two tasks)."""

    task_id: str
    action: str
    endpoint: str
    code: int
    credits: float
    state: str | None = None


@attrs.frozen(kw_only=True)
class MjHookAttempt:
    """One notifyHook send of a task's ``task_status``/``progress``: ``status`` is the HTTP answer,
    ``error`` why none came; ``dropped`` marks one deliberately not sent, ``duplicate`` a resend."""

    task_id: str
    task_status: str
    progress: str | None
    status: int | None = None
    error: str | None = None
    dropped: bool = False
    duplicate: bool = False

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300
