"""The seam between one wire protocol and the machinery above it (tracker, streams, fan-out, batch).

A protocol plugs in by implementing :class:`TaskAPI`: submit a request under an idempotency key,
fetch one task, and, where the server can, fetch many tasks in one call and cancel. Everything
above speaks only this interface, so a new protocol touches nothing in the watching layer.
A :class:`TaskProtocol` tells a client how to connect one (``evolink_async.Client`` is built from it):
a new protocol touches nothing in the client or batch layers either.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, TypeVar, runtime_checkable

from .._core.transport import Transport
from .._models.task import Task

__all__ = [
    "Cancel", "CallbackURLs", "FetchMany", "QueryingTaskAPI", "Recover", "ReleaseUploads", "TaskAPI", "TaskProtocol",
]  # fmt: skip

#: The request type a protocol submits (``Request`` for Evolink, ``MidjourneyRequest`` for a proxy).
RequestT = TypeVar("RequestT")
RequestT_contra = TypeVar("RequestT_contra", contravariant=True)

#: Fetch several tasks in one request; tasks the server does not know are left out of the answer.
FetchMany = Callable[[Sequence[str]], Awaitable[Sequence[Task]]]
#: Ask the server to cancel one task; the answer is the task as the server now reports it.
Cancel = Callable[[str], Awaitable[Task]]
#: Find the task a submit created when its answer was lost (by idempotency key), waiting at most
#: ``timeout`` seconds; ``None`` when it did not show up (the outcome stays unknown).
Recover = Callable[[str, float], Awaitable[Task | None]]
#: The task has ended (or is no longer watched): let go of the files uploaded for its submit, deleting
#: them when ``delete`` is true. Returns what is left to await (the deletions), or ``None`` when
#: nothing is (no file was uploaded for it, or none is deleted): a fan-out spawns no task for
#: those, which are nearly all. The awaitable never raises: a file that cannot be deleted expires
#: on its own.
ReleaseUploads = Callable[[str, bool], Awaitable[None] | None]


class CallbackURLs(Protocol):
    """Where a protocol asks the server to report a submit's task (a callback or notify hook)."""

    def url_for(self, idempotency_key: str, *, marker: str | None = None) -> str:
        """The callback URL of the submit made under ``idempotency_key``; ``marker`` is what its
        task will carry of the submit (Midjourney's ``state``), so that no other task's body counts."""
        ...

    def submitted(self, idempotency_key: str, task: Task) -> None:
        """The submit's answer arrived: its callbacks belong to ``task``."""
        ...

    async def recover(self, idempotency_key: str, timeout: float) -> Task | None:
        """The task of a submit whose answer was lost, once its first callback arrives."""
        ...


class TaskAPI(Protocol[RequestT_contra]):
    """What the watching layer needs from a protocol. Every method raises ``EvolinkError``s."""

    async def submit(self, request: RequestT_contra, *, idempotency_key: str) -> Task:
        """Create the task; the same ``idempotency_key`` is reused on every retry of this submit."""
        ...

    async def fetch(self, task_id: str) -> Task:
        """One query of the task's current state."""
        ...

    @property
    def fetch_many(self) -> FetchMany | None:
        """Batch fetch when the server has it (``None`` otherwise)."""
        ...

    @property
    def fetch_many_limit(self) -> int:
        """The most ids one ``fetch_many`` call may carry."""
        ...

    @property
    def cancel(self) -> Cancel | None:
        """Ask the server to cancel a task, when it can (``None`` otherwise)."""
        ...

    @property
    def recover(self) -> Recover | None:
        """Settle a submit whose answer was lost without submitting again (``None``: cannot)."""
        ...

    @property
    def release_uploads(self) -> ReleaseUploads | None:
        """Let go of a task's uploaded files once it ended (``None``: the protocol uploads none)."""
        ...


@runtime_checkable
class QueryingTaskAPI(Protocol):
    """A ``TaskAPI`` with a cheaper query for the tracker (optional): ``fetch`` that may answer
    ``last`` itself when the server's answer repeats the one ``last`` was read from."""

    async def query(self, task_id: str, last: Task | None) -> Task: ...


class TaskProtocol(Protocol[RequestT_contra]):
    """How a client connects one wire protocol: the one thing a new protocol gives ``Client``.

    ``connect`` is called once per client (and once per ``with_options`` view, with that view's
    transport); the rest describe the protocol to the layers above, so none of them names a vendor.
    """

    #: The provider name telemetry records (``gen_ai.provider.name``) and the tracker task carries.
    name: str
    #: Whether submits answer with their cost (``usage.credits_reserved``): without it, a credit
    #: budget needs the caller's ``credits_per_task``.
    reports_cost: bool
    #: Whether local images are uploaded as files (and can be normalized first); a protocol that
    #: sends them inline has nothing to normalize or delete.
    uploads_images: bool
    #: How many submits a fan-out keeps unfinished unless told otherwise.
    default_max_in_flight: int

    def connect(self, transport: Transport, callbacks: CallbackURLs | None) -> TaskAPI[RequestT_contra]:
        """The protocol's API over ``transport``, asking the server for callbacks at ``callbacks``."""
        ...

    def parse_task(self, body: object) -> Task:
        """A task from a callback's body (raises ``ResponseFormatError`` for anything else)."""
        ...

    def callback_marker(self, task: Task) -> str | None:
        """What a task carries of the submit that made it (``None``: nothing), so a callback
        URL refuses bodies about any other submit's task."""
        ...

    def model_of(self, request: RequestT_contra) -> str:
        """The model a request asks for, as logs and spans name it."""
        ...
