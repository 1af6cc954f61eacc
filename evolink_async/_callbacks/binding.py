"""One client's use of a :class:`~.receiver.CallbackReceiver`: the seam between receiver and client.

A client knows the receiver only through this binding (its callback URLs, the answer that names a
task, a lost answer's settling, which tasks report by callback); the receiver knows the client only
through the :class:`~.receiver.CallbackRoute` built here (parse, push into its tracker, fetch).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from .._models.task import Task
from ..errors import ValidationError
from .receiver import CallbackReceiver, CallbackRoute

__all__ = ["ReceiverBinding", "callback_binding"]


class ReceiverBinding:
    """One client's use of a receiver: its callback URLs, and which of its tasks report by callback."""

    def __init__(self, receiver: CallbackReceiver, route: CallbackRoute) -> None:
        self._receiver = receiver
        self._route = route

    def url_for(self, idempotency_key: str, *, marker: str | None = None) -> str:
        return self._receiver.register(idempotency_key, self._route, marker=marker).url

    def submitted(self, idempotency_key: str, task: Task) -> None:
        self._receiver.bind(self._receiver.register(idempotency_key, self._route), task.id)

    async def recover(self, idempotency_key: str, timeout: float) -> Task | None:
        registration = self._receiver.register(idempotency_key, self._route)
        return await self._receiver.settle(registration, timeout)

    def covers(self, task_id: str) -> bool:
        return self._receiver.covers(task_id)

    def missed(self, task_id: str) -> None:
        self._receiver.missed(task_id)

    def latest(self, task_id: str) -> Task | None:
        return self._receiver.latest(task_id)


class _Client(Protocol):
    @property
    def tracker(self) -> Any: ...

    @property
    def tasks(self) -> Any: ...


def callback_binding(
    receiver: CallbackReceiver | None,
    *,
    parse: Callable[[Any], Task],
    client: _Client,
    marker_of: Callable[[Task], str | None] | None = None,
) -> ReceiverBinding | None:
    """The binding of ``client`` to ``receiver`` (``None`` without one); checks the argument's type."""
    if receiver is None:
        return None
    if not isinstance(receiver, CallbackReceiver):
        raise ValidationError("callbacks", f"must be a CallbackReceiver, got {type(receiver).__name__}")
    # Late-bound: the client's tracker and views are built after this binding.
    route = CallbackRoute(
        parse=parse,
        push=lambda task: client.tracker.push(task),
        fetch=lambda task_id: client.tasks.get(task_id),
        marker_of=marker_of,
    )
    return ReceiverBinding(receiver, route)
