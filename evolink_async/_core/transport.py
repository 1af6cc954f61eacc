"""The only place that touches ``aiohttp.ClientSession`` for API calls.

Owns auth, JSON, timeouts, the retry loop, the mapping of answers to error classes, request ids
and logging with the key redacted.

Why one module of ~410 lines: one request's whole life (send, read within bounds, map to an error,
retry, wait its turn after a 429) is one loop in ``exchange``, written out because it runs once per
query of every watched task. What an answer's bytes mean (JSON decoded and cleaned, a status and
body made an error) is ``answers.py``.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Awaitable, Mapping, Sequence
from contextvars import ContextVar
from typing import Any, Required, TypedDict, Unpack

import aiohttp
import anyio
import attrs
from multidict import CIMultiDict

from .._version import __version__
from ..errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    APIUnreachableError,
    EvolinkError,
    NotJSONAnswerError,
    NotSubmittedError,
    RateLimitError,
    RedirectRefusedError,
    ResponseFormatError,
    ValidationError,
    may_have_been_billed,
)
from .answers import call_name, decode_json, not_json, request_id_of, status_error, too_large
from .config import ClientConfig
from .credentials import ForeignRedirect, SameOrigin, foreign_hop_strip, session_middlewares
from .logging import logger
from .rate_gate import RateGate
from .retry import is_retryable_status, parse_retry_after
from .secret import redact
from .telemetry import Telemetry

__all__ = ["RETRY_TALLY", "SEND_STOP", "Response", "RetryTally", "SendStop", "Transport", "decode_json"]

_USER_AGENT = f"evolink-async/{__version__}"


@attrs.frozen
class Response:
    """A decoded 2xx answer."""

    status: int
    body: Any
    request_id: str | None
    headers: Mapping[str, str] = attrs.field(repr=False)

    @property
    def replayed(self) -> bool:
        """True when the server answered an idempotent replay of an earlier submit."""
        return self.headers.get("idempotency-replayed", "").lower() == "true"


class RequestOptions(TypedDict, total=False):
    """The keyword options of :meth:`Transport.exchange`, which :meth:`Transport.request` passes on."""

    json_body: Any
    headers: Mapping[str, str] | None
    retry_safe: Required[bool]
    retry_uncertain: bool
    data: Any
    spends: bool


class RetryTally:
    """How many retries of one call followed a failure after which the server may have acted."""

    __slots__ = ("uncertain",)

    def __init__(self) -> None:
        self.uncertain = 0


class SendStop:
    """A caller's word to its calls under way that it has stopped (see :data:`SEND_STOP`)."""

    __slots__ = ("stopped",)

    def __init__(self) -> None:
        self.stopped = False


#: Set by a caller that owns many calls (the fan-out, around each submit) so that it can stop
#: them spending without cutting them off: once ``stopped``, a request that ``spends`` (a submit,
#: an upload) not yet sent raises ``NotSubmittedError`` instead of going out, and one sent whose
#: answer was lost is not sent again; one sent still gets its answer, so the task it made is known.
SEND_STOP: ContextVar[SendStop | None] = ContextVar("evolink_send_stop", default=None)

#: Set by a caller that wants to know whether its call was retried after an uncertain failure
#: (the fan-out, around each submit): on a server that ignores ``Idempotency-Key`` such a retry
#: may have created a second task. A context variable, so the seam between the fan-out and the
#: protocol stays one ``submit`` call.
RETRY_TALLY: ContextVar[RetryTally | None] = ContextVar("evolink_retry_tally", default=None)


class Transport:
    """HTTP with retries over one ``aiohttp.ClientSession`` (created lazily, or the caller's)."""

    def __init__(
        self,
        config: ClientConfig,
        *,
        session: aiohttp.ClientSession | None = None,
        telemetry: Telemetry | None = None,
        trace_configs: Sequence[aiohttp.TraceConfig] = (),
    ) -> None:
        self._config = config
        self._session = session
        #: Spans and metrics of every exchange; None (the extra absent): no hook runs at all.
        self.telemetry = telemetry
        # Passed to the session this transport creates (a caller's own session has its own).
        if not isinstance(trace_configs, Sequence) or isinstance(trace_configs, str | bytes):
            raise ValidationError("trace_configs", "must be a list of aiohttp.TraceConfig")
        self._trace_configs = list(trace_configs)
        if any(not isinstance(item, aiohttp.TraceConfig) for item in self._trace_configs):
            raise ValidationError("trace_configs", "must be a list of aiohttp.TraceConfig")
        if session is not None and self._trace_configs:
            raise ValidationError(
                "trace_configs", "apply to the session the client creates: give them to your own session instead"
            )
        self._owns_session = session is None
        self._closed = False
        # After a 429 every request of this client waits for a turn and the server's next free slot.
        self._gate = RateGate()
        self._rng = random.Random()
        # Built once: the config is frozen, and these were a visible share of a query's CPU.
        # The key is not among them: it is revealed per request, so no long-lived attribute
        # holds it in clear (debuggers and error reporters show attributes).
        self._timeout = aiohttp.ClientTimeout(total=config.timeout, connect=config.connect_timeout)
        # A plain dict on purpose: a ready ``CIMultiDictProxy`` spares aiohttp a conversion (0.25 us
        # in ``timeit``), but four in-process A/Bs could not tell it from noise (RESULTS.md, session 9).
        self._base_headers = {"Accept": "application/json", "User-Agent": _USER_AGENT}
        # The key and ``default_headers`` are the client's credentials: attached by ``_sign`` to
        # each hop at the request's first origin only (see ``credentials.py``), never passed in.
        self._configured_headers = dict(config.default_headers)
        # Evolink's Bearer header; a Midjourney proxy may want ``mj-api-secret`` or no auth at all.
        self._bearer = config.auth_header.lower() == "authorization" and bool(config.api_key.reveal())
        self._keyed = bool(config.api_key.reveal())
        self._signer = self._sign
        self._hop_middlewares: tuple[Any, ...] = ()
        self._foreign_strip: frozenset[str] = frozenset()
        if session is not None:
            self._guard_session(session)

    @property
    def config(self) -> ClientConfig:
        return self._config

    def derive(self, config: ClientConfig) -> Transport:
        """A transport with other options that shares this one's session (and never closes it)."""
        child = Transport(config, session=self._get_session(), telemetry=self.telemetry)
        child._owns_session = False
        child._gate = self._gate  # one key, one server: one rate limit
        return child

    def _get_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("this client is closed")
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._config.max_connections)
            self._session = aiohttp.ClientSession(connector=connector, trace_configs=self._trace_configs or None)
            self._guard_session(self._session)
        return self._session

    def _guard_session(self, session: aiohttp.ClientSession) -> None:
        self._hop_middlewares = session_middlewares(session)
        self._foreign_strip = foreign_hop_strip(session, (self._config.auth_header, *self._config.default_headers))

    def guard(self) -> tuple[Any, ...]:
        """The ``middlewares=`` of one request through this transport's session: the session's
        own, then the one that signs hops at the request's origin and strips credentials elsewhere."""
        return (*self._hop_middlewares, SameOrigin(self._signer, self._foreign_strip, refuse_foreign=True))

    @property
    def session(self) -> aiohttp.ClientSession:
        """The session this transport sends through (for downloads and uploads)."""
        return self._get_session()

    async def aclose(self) -> None:
        self._closed = True
        if self._owns_session and self._session is not None:
            await self._session.close()
        self._session = None

    def _headers(self, extra: Mapping[str, str] | None) -> Mapping[str, str]:
        # aiohttp copies what it is given: the shared dict goes as it is when there is nothing to add.
        return {**self._base_headers, **extra} if extra else self._base_headers

    def _sign(self, headers: CIMultiDict[str]) -> None:
        """Put the client's credentials on one hop's headers (at the request's origin only).

        The key is revealed inline, into the headers, and bound to no local: this frame is gone
        before anything can raise, and no frame that awaits holds it.
        """
        if self._configured_headers:
            headers.update(self._configured_headers)
        if self._bearer:
            headers["Authorization"] = f"Bearer {self._config.api_key.reveal()}"
        elif self._keyed:
            headers[self._config.auth_header] = self._config.api_key.reveal()

    async def request(self, method: str, url: str, **options: Unpack[RequestOptions]) -> Response:
        """Send with retries and return the decoded 2xx answer, or raise the mapped error (the
        options are :meth:`exchange`'s)."""
        status, body, request_id, resp_headers = await self.exchange(method, url, **options)
        return Response(status=status, body=body, request_id=request_id, headers=resp_headers)

    async def exchange(
        self,
        method: str,
        url: str,
        *,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
        retry_safe: bool,
        retry_uncertain: bool = True,
        data: Any = None,
        spends: bool = False,
    ) -> tuple[int, Any, str | None, Mapping[str, str]]:
        """:meth:`request` as a tuple (status, decoded body, request id, headers).

        ``retry_safe`` says whether sending twice is harmless: true for queries and for submits
        that carry an ``Idempotency-Key``; false otherwise (then nothing is ever retried).
        ``retry_uncertain=False`` also raises at once after a failure the server may have acted on
        (a broken connection, a 5xx): for a submit whose outcome is settled some other way.
        ``spends``: the request may cost money or quota (a submit, an upload); a caller that has
        stopped (``SEND_STOP``) keeps it from going out.

        The task query calls this directly: it runs once per query of every watched task, and
        the ``Response`` object and the coroutine around it were a measurable share of its CPU.
        """
        policy = self._config.retry
        # The ``Secret`` itself, to scrub echoes: the plain key is in no local of this frame.
        secret = self._config.api_key
        telemetry = self.telemetry  # read once: None (no extra) keeps every hook below off
        gate = self._gate
        attempt = 0  # every send of this call (spans and logs number them)
        retries = 0  # the retries that count against ``max_retries`` (a 429 that says when does not)
        #: Whether this call holds one of the rate gate's turns (only after a 429: see rate_gate.py).
        turn = False
        #: Seconds this call waited on 429s whose ``Retry-After`` it honoured (those are no attempts).
        rate_limited = 0.0
        told_later = False  # whether this call got a 429
        # Read once, for the requests that cost something: only a caller that stops sets it.
        stop = SEND_STOP.get() if spends else None
        last_error: EvolinkError | None = None
        try:
            while True:
                # The gate is open until the first 429: one attribute read on the common path.
                if turn:
                    paused = await gate.cool_down()  # this call's retry after its 429: still its turn
                elif gate.closed:
                    before = time.monotonic()
                    await gate.take_turn()
                    turn = True
                    paused = time.monotonic() - before
                else:
                    paused = 0.0
                if paused and telemetry is not None:
                    telemetry.cooled_down(paused)
                if stop is not None and stop.stopped:
                    # The caller stopped while this call waited (its turn, a backoff): nothing more goes out.
                    if last_error is not None:
                        raise last_error  # the failure before stands: the server may have acted on it
                    raise NotSubmittedError(f"{call_name(method, url, secret)} was not sent: the caller stopped")
                # The round trip of a rejected request aims the next one (only once a 429 was seen).
                sent_at = time.monotonic() if gate.until else 0.0
                error: EvolinkError
                retry_after: float | None = None
                # The clock and the debug line only when debug logging is on: this runs once per
                # request, and their arguments were built even when the record was dropped.
                debug = logger.isEnabledFor(logging.DEBUG)
                started = time.monotonic() if debug else 0.0
                traced = (
                    telemetry.http_attempt(method, url, attempt, base_url=self._config.base_url, secret=secret)
                    if telemetry is not None
                    else None
                )
                try:
                    # The exchange is written out here rather than in a helper coroutine: one
                    # coroutine fewer on every request.
                    async with self._get_session().request(
                        method,
                        url,
                        json=json_body,
                        data=data,
                        headers=self._headers(headers),
                        timeout=self._timeout,
                        middlewares=self.guard(),
                    ) as resp:
                        status = resp.status
                        # aiohttp's header view is case-insensitive, which the lookups below rely on.
                        resp_headers = resp.headers
                        raw = await self._read_body(resp, resp_headers)
                    # A server that echoes the key back (in an error code, a param, a failed task's
                    # message) must not carry it into exceptions, tasks, logs or journals.
                    raw = secret.scrub_bytes(raw)
                except TimeoutError:
                    error = APITimeoutError(f"{method} {url} timed out after {self._config.timeout:g} s")
                except ForeignRedirect as exc:  # answered with a redirect elsewhere: not followed
                    error = RedirectRefusedError(
                        redact(f"{method} {url} was redirected to another origin, {exc.target}: not followed "
                               "(point the base URL there if that server is the one meant)", secret),
                        status_code=exc.status or 0, url=call_name(method, url, secret),
                    )  # fmt: skip
                except aiohttp.ClientConnectorError as exc:  # no connection made: nothing was sent
                    error = APIUnreachableError(redact(f"{method} {url} failed: {type(exc).__name__}: {exc}", secret))
                except aiohttp.ClientError as exc:
                    # Every aiohttp failure, not only connection and payload errors: a malformed answer
                    # (a lying Content-Length) raises ClientResponseError, whose repr and request_info
                    # carry the request's headers, the key among them. Only the redacted text goes on.
                    error = APIConnectionError(
                        redact(f"{method} {url} failed: {type(exc).__name__}: {exc}", secret)
                    )
                except BaseException as exc:  # cancelled, or an answer over the size limit: its span ends too
                    if traced is not None:
                        traced.end(status=None, request_id=None, error=exc, secret=secret)
                    raise
                else:
                    request_id = request_id_of(resp_headers)
                    if debug:
                        logger.debug(
                            "%s %s -> %s in %.3f s (attempt %d, request %s)",
                            method, url, status, time.monotonic() - started, attempt + 1, request_id,
                            extra={"attempt": attempt + 1, "request_id": request_id},
                        )
                    if turn and status != 429:
                        gate.accepted(first_try=not told_later)  # room without waiting: one more turn
                    if 200 <= status < 300:
                        try:
                            body = decode_json(raw, secret=secret) if raw else None
                        except (ValueError, RecursionError) as exc:  # nested too deep counts as invalid
                            error = not_json(method, url, status, resp_headers, exc, secret=secret,
                                             request_id=request_id)  # fmt: skip
                        else:
                            if traced is not None:
                                traced.end(status=status, request_id=request_id, error=None, secret=secret)
                            return status, body, request_id, resp_headers
                    else:
                        retry_after = parse_retry_after(resp_headers.get("retry-after"))
                        error = status_error(
                            status, raw, resp_headers, secret=secret, retry_after=retry_after,
                            url=call_name(method, url, secret),
                        )
                if traced is not None:
                    traced.end(
                        status=getattr(error, "status_code", None), request_id=error.request_id, error=error,
                        secret=secret,
                    )
                if isinstance(error, NotJSONAnswerError) and method != "GET":
                    raise error  # a page, not the API: sent again it meets the page again (or pays twice)
                # A 429 that says when to come back is the server's schedule, not a failure of this
                # call: it uses no attempt. Its waits are bounded by ``max_retry_after`` in all.
                scheduled = retry_after if isinstance(error, RateLimitError) and policy.max_retries else None
                if scheduled is not None:
                    rate_limited += scheduled
                    over = rate_limited > policy.max_retry_after
                else:
                    over = retry_after is not None and retry_after > policy.max_retry_after
                allowed = scheduled is not None or retries < policy.max_retries
                # A 429 created nothing: sending again is safe even for a call that may not be repeated
                # otherwise (a proxy's submit without an idempotency key), and it goes through the gate.
                safe = retry_safe or isinstance(error, RateLimitError)
                if not (safe and allowed and self._should_retry(error)):
                    raise error
                if not retry_uncertain and may_have_been_billed(error):
                    raise error
                if over:
                    # Waiting that long inside one call would look like a hang; the error carries
                    # ``retry_after`` and the caller decides.
                    raise error
                if scheduled is not None:
                    delay = scheduled
                else:
                    delay = max(retry_after or 0.0, policy.backoff(retries, rng=self._rng))
                logger.info(
                    "retrying %s %s in %.2f s after: %s", method, url, delay, error,
                    extra={"attempt": attempt + 1, "request_id": error.request_id},
                )
                if telemetry is not None:
                    telemetry.retried(error)
                if may_have_been_billed(error) and (tally := RETRY_TALLY.get()) is not None:
                    tally.uncertain += 1
                if isinstance(error, RateLimitError):
                    told_later = True
                    # Every request of this client waits for the gate now; this one keeps its turn
                    # (or queues for one) and goes at the end of the cooldown.
                    gate.rejected(delay, time.monotonic() - sent_at if sent_at else 0.0)
                else:
                    if turn:  # a backoff is this call's own: others go meanwhile
                        turn = False
                        gate.give_back()
                    await anyio.sleep(delay)
                if scheduled is None:
                    retries += 1
                attempt += 1
                last_error = error
        finally:
            if turn:
                gate.give_back()

    @staticmethod
    def _should_retry(error: EvolinkError) -> bool:
        if isinstance(error, APIStatusError):
            return is_retryable_status(error.status_code, error.code)
        # Connection errors, timeouts and garbled bodies are transient by nature.
        return isinstance(error, (APIConnectionError, ResponseFormatError))

    def _read_body(self, resp: aiohttp.ClientResponse, headers: Mapping[str, str]) -> Awaitable[bytes]:
        """The answer's body within ``max_response_bytes`` (an awaitable, so that the common case
        awaits aiohttp's ``read`` directly instead of a coroutine of ours around it)."""
        limit = self._config.max_response_bytes
        length = resp.content_length  # parsed from the header on every access: read it once
        if length is not None:
            if length > limit:
                raise too_large(resp, f"answer of {length} bytes exceeds the {limit}-byte limit")
            if headers.get("content-encoding", "identity").lower() == "identity":
                # A declared length within the limit, uncompressed: aiohttp reads no more than
                # that. (A compressed body's length says nothing of what it inflates to.)
                return resp.read()
        return self._read_bounded(resp, limit)

    @staticmethod
    async def _read_bounded(resp: aiohttp.ClientResponse, limit: int) -> bytes:
        """The body of an answer with no declared length, or a compressed one, within ``limit``."""
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.content.iter_chunked(64 * 1024):
            size += len(chunk)
            if size > limit:
                raise too_large(resp, f"answer exceeds the {limit}-byte limit")
            chunks.append(chunk)
        return b"".join(chunks)
