"""What a fan-out takes in (``FanOutItem``, ``FanOutInput``) and reports (``FanOutSummary``)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable
from typing import Generic, TypeAlias

import attrs

from .._protocols.task_api import RequestT

__all__ = ["FanOutInput", "FanOutItem", "FanOutSummary", "as_item", "is_unhashable"]


@attrs.frozen(kw_only=True)
class FanOutItem(Generic[RequestT]):
    """One input with everything optional spelled out.

    ``idempotency_key`` makes the submit safe across process restarts; ``task_id`` re-attaches
    to a task submitted earlier instead of submitting (a resumed batch).
    """

    key: Hashable
    #: The protocol's request (``Request`` for Evolink, ``MidjourneyRequest`` for a proxy).
    request: RequestT | None = None
    idempotency_key: str | None = None
    task_id: str | None = None


#: What ``fan_out`` accepts per item: a request (keyed by its index), ``(key, request)``, or an item.
FanOutInput: TypeAlias = RequestT | tuple[Hashable, RequestT] | FanOutItem[RequestT]


@attrs.define
class FanOutSummary:
    """What a fan-out did; complete once its ``async with`` block has ended."""

    #: Terminal events by kind (``completed``, ``failed``, ``submit_failed``, ...).
    outcomes: Counter[str] = attrs.field(factory=Counter)
    submitted: int = 0
    reattached: int = 0
    credits_reserved: float = 0.0
    #: Why submitting stopped early (``None`` when every input was submitted).
    stopped_reason: str | None = None
    #: Inputs never submitted because submitting had stopped (credits exhausted): each got a
    #: ``SUBMIT_FAILED`` event with a :class:`~evolink_async.NotSubmittedError`, and no request.
    not_submitted: int = 0
    #: Keys of the inputs this fan-out took and surely created nothing for: never sent (submitting
    #: had stopped, or the block was left first) or refused by an answer that creates nothing (a
    #: refused model, a wrong base URL, 402, 429, ...). Whatever was made for them (uploads) may go.
    unsent: list[Hashable] = attrs.field(factory=list)
    #: ``(key, task_id)`` of tasks still unfinished when the block was left.
    left_in_flight: list[tuple[Hashable, str]] = attrs.field(factory=list)
    #: ``(key, idempotency_key)`` of submits whose outcome is unknown: cut off by leaving the
    #: block, or failed on the network after every retry (the server may have accepted them).
    #: Resubmitting with the same key cannot bill twice on a server that honours the key.
    interrupted_submits: list[tuple[Hashable, str]] = attrs.field(factory=list)
    #: Submits retried after a failure the server may have acted on (a broken connection, a
    #: 5xx). Each is safe only where the server honours ``Idempotency-Key``; elsewhere it may
    #: have created a second task.
    retried_uncertain_submits: int = 0
    #: Submits whose answer was lost and whose task was found anyway (by its callback), not paid twice.
    recovered_submits: int = 0

    @property
    def terminal(self) -> int:
        return sum(self.outcomes.values())


def is_unhashable(key: object) -> bool:
    try:
        hash(key)
    except TypeError:  # a tuple holding a list is Hashable to isinstance, and still unhashable
        return True
    return False


def as_item(raw: FanOutInput[RequestT], index: int) -> FanOutItem[RequestT]:
    if isinstance(raw, FanOutItem):
        return raw
    if isinstance(raw, tuple) and len(raw) == 2:
        return FanOutItem(key=raw[0], request=raw[1])
    return FanOutItem(key=index, request=raw)
