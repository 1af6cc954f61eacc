"""``CallbackReceiver``: one URL per submit, callbacks checked, ordered and pushed to the tracker.

Framework-free: :meth:`CallbackReceiver.handle` takes a token and a body and returns the status
to answer; ``aiohttp_app()`` and ``asgi`` only move bytes. What a callback may do:

- an unknown or forged token gets 404 and changes nothing (tokens are checked in constant time);
- a token authorizes exactly its own task: once the submit's answer named the task, a body about
  any other task gets 403 and changes nothing; a body naming a task that another submit's URL owns
  gets 403 whenever it comes (and, for Midjourney, one whose ``state`` is not the submit's);
- before the submit's answer named its task (an answer still on its way, or lost), a body is only
  held as a *candidate* (202) and trusted for nothing: the answer picks the candidate with its task
  id, or a lost answer's settling (``settle``) takes one no other submit owns. So a stray first
  callback cannot lock the URL to the wrong task, and the genuine one still counts;
- a body over ``max_body_bytes`` gets 413, one that is not JSON or not a task gets 400;
- a duplicate, or a snapshot older than one already taken (notifyHook posts may arrive out of
  order), is answered 200 and dropped: no repeated, backward or second terminal event;
- with ``verify="fetch"`` the task is fetched once before anything is trusted (for URLs that may
  have leaked); a failed fetch gets 503, so a server that retries tries again later.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, Literal
from urllib.parse import urlsplit

import attrs

from .._core.checks import MAX_COUNT, check_count
from .._core.logging import logger
from .._core.secret import scrub_known
from .._models.task import Task, TaskStatus
from .._models.urls import check_callback_url
from ..errors import EvolinkError, NotFoundError, ResponseFormatError, ValidationError
from .tokens import load_secret, mint_token, token_matches

__all__ = ["CallbackReceiver", "CallbackRoute", "Registration"]

#: Evolink's callback is the task JSON (a few KiB); MJ's notifyHook the task object.
DEFAULT_MAX_BODY_BYTES = 256 * 1024
#: Submits remembered at once; the oldest are forgotten first (their callbacks then get 404).
DEFAULT_MAX_REGISTRATIONS = 200_000
#: Tasks in a row found ended by a query before their callback came: then the receiver is taken
#: to be unreachable (a wrong public URL, a firewall) and its clients poll as usual again.
MISSES_BEFORE_UNREACHABLE = 5
#: Bodies held for a submit whose task is not known yet; more distinct tasks push out the oldest.
#: The genuine one is among few (a notifyHook posts a handful of changes before the answer lands).
MAX_CANDIDATES = 4
#: Status of a callback held as a candidate: taken (so the sender does not retry), not yet trusted.
HELD = 202
#: Status of a callback about a task this URL does not authorize.
REFUSED = 403
_RANK = {TaskStatus.PENDING: 0, TaskStatus.UNKNOWN: 0, TaskStatus.PROCESSING: 1}
_TERMINAL_RANK = 2


@attrs.frozen(kw_only=True)
class CallbackRoute:
    """How one client takes callbacks: its protocol's parser, its tracker, its fetch."""

    parse: Callable[[Any], Task]
    push: Callable[[Task], None]
    fetch: Callable[[str], Awaitable[Task]]
    #: The marker a task carries of the submit that made it (Midjourney's ``state``), if any.
    marker_of: Callable[[Task], str | None] | None = None


class Registration:
    """One submit's callback URL, and what has arrived on it so far."""

    __slots__ = (
        "_arrived", "candidates", "idempotency_key", "latest", "marker", "rank", "route", "task_id", "token", "url",
    )

    def __init__(
        self, *, idempotency_key: str, token: str, url: str, route: CallbackRoute, marker: str | None = None
    ) -> None:
        self.idempotency_key = idempotency_key
        self.token = token
        self.url = url
        self.route = route
        #: The marker the submit sent along (Midjourney's ``state``): its task's callbacks carry it.
        self.marker = marker
        self.latest: Task | None = None
        #: The task this URL authorizes, once the submit's answer (or its settling) named it.
        self.task_id: str | None = None
        self.rank: tuple[int, int] = (-1, -1)
        #: Before ``task_id`` is known: the newest body per task id, none of them trusted yet.
        self.candidates: dict[str, Task] | None = None
        self._arrived: asyncio.Event | None = None

    def _hold(self, task: Task) -> None:
        candidates = self.candidates
        if candidates is None:
            candidates = self.candidates = {}
        held = candidates.get(task.id)
        if held is None or _rank(task) > _rank(held):
            candidates.pop(task.id, None)  # re-inserted: the newest task ids stay
            candidates[task.id] = task
            while len(candidates) > MAX_CANDIDATES:
                del candidates[next(iter(candidates))]
        if self._arrived is not None:
            self._arrived.set()

    def _take(self, task: Task) -> bool:
        """Keep ``task`` if it is newer than what arrived before; False for a duplicate or older one."""
        rank = _rank(task)
        if self.rank[0] == _TERMINAL_RANK or rank <= self.rank:
            return False
        self.rank = rank
        self.latest = task
        return True


def _rank(task: Task) -> tuple[int, int]:
    return (_TERMINAL_RANK if task.is_terminal else _RANK.get(task.status, 1), task.progress)


class CallbackReceiver:
    """Receives task callbacks at ``public_url/<token>``, one token per submit.

    >>> receiver = CallbackReceiver("https://hooks.example.com/evolink")
    >>> app.add_subapp("/evolink", receiver.aiohttp_app())        # or mount receiver.asgi
    >>> async with EvolinkClient(callbacks=receiver) as client: ...
    """

    def __init__(
        self,
        public_url: str,
        *,
        secret: str | bytes | None = None,
        allow_local: bool = False,
        verify: Literal["fetch"] | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        max_registrations: int = DEFAULT_MAX_REGISTRATIONS,
    ) -> None:
        if not isinstance(public_url, str):
            raise ValidationError("public_url", f"must be a string, got {type(public_url).__name__}")
        if not isinstance(allow_local, bool):
            raise ValidationError("allow_local", "must be True or False")
        public_url = public_url.rstrip("/")
        check_callback_url("public_url", public_url + "/" + "x" * 32, allow_private=allow_local)
        if urlsplit(public_url).query or urlsplit(public_url).fragment:
            raise ValidationError("public_url", "must not have a query or a fragment")
        if verify not in (None, "fetch"):
            raise ValidationError("verify", f"must be None or 'fetch', got {verify!r}")
        check_count("max_body_bytes", max_body_bytes, maximum=MAX_COUNT)
        check_count("max_registrations", max_registrations, maximum=MAX_COUNT)
        self.public_url = public_url
        self.verify = verify
        self.max_body_bytes = max_body_bytes
        self._secret = load_secret(secret)
        self._max_registrations = max_registrations
        self._registrations: OrderedDict[str, Registration] = OrderedDict()
        self._by_task: dict[str, Registration] = {}
        self._misses = 0
        #: Callbacks taken (after checks), and when the last one came: the receiver's reachability.
        self.accepted = 0
        self.last_accepted_at: float | None = None

    def __repr__(self) -> str:
        return f"CallbackReceiver(public_url={self.public_url!r}, secret='***')"

    def register(self, idempotency_key: str, route: CallbackRoute, *, marker: str | None = None) -> Registration:
        """The callback URL of the submit made under ``idempotency_key`` (the same key, the same URL);
        ``marker`` is what the submit's task will carry of it (Midjourney's ``state``), if anything."""
        token = mint_token(self._secret, idempotency_key)
        registration = self._registrations.get(token)
        if registration is None:
            registration = Registration(
                idempotency_key=idempotency_key, token=token, url=f"{self.public_url}/{token}", route=route,
                marker=marker,
            )
            self._registrations[token] = registration
            while len(self._registrations) > self._max_registrations:
                _, forgotten = self._registrations.popitem(last=False)
                if forgotten.task_id is not None:
                    self._by_task.pop(forgotten.task_id, None)
        return registration

    def registration(self, idempotency_key: str) -> Registration | None:
        return self._registrations.get(mint_token(self._secret, idempotency_key))

    def bind(self, registration: Registration, task_id: str) -> None:
        """The submit's answer named its task: callbacks on this URL belong to ``task_id`` alone.

        A body held for that task before the answer came is taken now; the others are dropped.
        """
        if registration.task_id != task_id:
            if registration.task_id is not None and self._by_task.get(registration.task_id) is registration:
                del self._by_task[registration.task_id]
            registration.task_id = task_id
            registration.latest = None
            registration.rank = (-1, -1)
        self._by_task[task_id] = registration
        candidates, registration.candidates = registration.candidates, None
        held = candidates.get(task_id) if candidates else None
        if held is not None:
            self._apply(registration, held)
        if registration._arrived is not None:
            registration._arrived.set()

    async def settle(self, registration: Registration, timeout: float) -> Task | None:
        """The task of a submit whose answer was lost, or None after ``timeout``.

        It is the first body held on the submit's URL about a task that no other submit owns and
        that the server knows: each candidate is fetched once (a task id the server does not know
        is dropped), and the server's snapshot, not the body, is taken; the URL is then bound to it.
        """
        try:
            async with asyncio.timeout(timeout):
                while True:
                    if registration.task_id is not None and registration.latest is not None:
                        return registration.latest
                    for task in list((registration.candidates or {}).values()):
                        owner = self._by_task.get(task.id)
                        if owner is not None and owner is not registration:
                            continue
                        confirmed = await self._confirmed(registration, task)
                        candidates = registration.candidates
                        if confirmed is None or registration.task_id is not None or candidates is None:
                            if candidates is not None:
                                candidates.pop(task.id, None)
                            break  # look again: the loop's state may have changed while fetching
                        owner = self._by_task.get(task.id)
                        if owner is not None and owner is not registration:
                            continue
                        candidates[task.id] = confirmed
                        self.bind(registration, task.id)
                        return registration.latest
                    else:
                        arrived = registration._arrived
                        if arrived is None or arrived.is_set():
                            arrived = registration._arrived = asyncio.Event()
                        await arrived.wait()
        except TimeoutError:
            return None

    async def _confirmed(self, registration: Registration, task: Task) -> Task | None:
        """``task`` as the server reports it now; None when the server does not know it. A body
        fetched on arrival (``verify="fetch"``) is not fetched again; when the fetch fails for
        another reason the body is taken (its token authenticated it, and no other submit owns it)."""
        if self.verify == "fetch":
            return task
        try:
            fetched = await registration.route.fetch(task.id)
        except NotFoundError:
            logger.warning("callback for %s refused: the server does not know that task", task.id)
            return None
        except EvolinkError as exc:
            logger.info("could not confirm %s (%s): taking its callback", task.id, exc)
            return task
        return fetched if fetched.id == task.id else None

    @property
    def reachable(self) -> bool:
        """False once several tasks in a row ended without their callback (see ``missed``)."""
        return self._misses < MISSES_BEFORE_UNREACHABLE

    def covers(self, task_id: str) -> bool:
        """True when ``task_id`` was submitted with a URL of this receiver, and callbacks arrive."""
        return task_id in self._by_task and self._misses < MISSES_BEFORE_UNREACHABLE

    def latest(self, task_id: str) -> Task | None:
        """The newest snapshot a callback brought for ``task_id``."""
        registration = self._by_task.get(task_id)
        return registration.latest if registration is not None else None

    def missed(self, task_id: str) -> None:
        """A query found ``task_id`` ended and no callback had come for it."""
        registration = self._by_task.get(task_id)
        if registration is not None and registration.rank[0] != _TERMINAL_RANK:
            self._misses += 1
            if self._misses == MISSES_BEFORE_UNREACHABLE:
                logger.warning(
                    "no callbacks arrive at %s (%d tasks ended without one): polling as usual", self.public_url,
                    self._misses,
                )

    async def handle(self, token: str, body: bytes) -> int:
        """Take one callback; returns the HTTP status to answer."""
        registration = self._registrations.get(token)
        if registration is None or not token_matches(self._secret, registration.idempotency_key, token):
            return 404
        if len(body) > self.max_body_bytes:
            return 413
        try:
            task = registration.route.parse(_loads(body))
        except ResponseFormatError as exc:
            logger.warning("callback refused: not a task (%s)", exc.message)
            return 400
        if not self._authorizes(registration, task):
            return REFUSED
        if self.verify == "fetch":
            try:
                task = await registration.route.fetch(task.id)
            except EvolinkError as exc:
                logger.warning("callback for %s not confirmed: %s", task.id, exc)
                return 503
            if not self._authorizes(registration, task):  # the fetch may have taken a while
                return REFUSED
        if registration.task_id is None:
            registration._hold(task)  # the submit's answer (or its settling) decides
            return HELD
        self._apply(registration, task)
        return 200

    def _authorizes(self, registration: Registration, task: Task) -> bool:
        """Whether ``registration``'s URL may speak of ``task``: its own task, or (before that is
        known) a task no other submit owns that carries no other submit's marker."""
        bound = registration.task_id
        if bound is not None:
            if task.id == bound:
                return True
            logger.warning("callback refused: task %s on the URL of task %s", task.id, bound)
            return False
        owner = self._by_task.get(task.id)
        if owner is not None and owner is not registration:
            logger.warning("callback refused: task %s on the URL of another submit", task.id)
            return False
        marker_of = registration.route.marker_of
        if registration.marker is not None and marker_of is not None:
            marker = marker_of(task)
            if marker is not None and marker != registration.marker:
                logger.warning("callback refused: task %s carries another submit's marker", task.id)
                return False
        return True

    def _apply(self, registration: Registration, task: Task) -> None:
        """``task`` (of ``registration``'s own task) arrived: count it, keep it, push it if newer."""
        self.accepted += 1
        self.last_accepted_at = time.monotonic()
        self._misses = 0
        if registration._take(task):
            registration.route.push(task)

    def aiohttp_app(self) -> Any:
        """An ``aiohttp.web.Application`` serving ``POST /<token>``: mount it with ``add_subapp``."""
        from .aiohttp_app import build_app

        return build_app(self)

    @property
    def asgi(self) -> Callable[..., Awaitable[None]]:
        """An ASGI application serving ``POST /<token>``, for any ASGI framework's ``mount``."""
        from .asgi import AsgiCallbacks

        return AsgiCallbacks(self)


def _loads(body: bytes) -> Any:
    try:
        # A body that echoes a key this process holds must not carry it into tasks and events.
        return json.loads(scrub_known(body.decode("utf-8")))
    except (ValueError, RecursionError) as exc:
        raise ResponseFormatError(f"not JSON: {type(exc).__name__}") from None
