"""The exception tree. Every error the SDK raises derives from :class:`EvolinkError`.

Catch the narrowest class you can act on::

    try:
        task = await client.tasks.wait(task_id)
    except evolink.TaskFailedError as err:
        if err.retryable:
            ...  # the server failed: submit again later
    except evolink.RateLimitError as err:
        await anyio.sleep(err.retry_after or 10)

Why one module of ~580 lines: every error class, and the four questions about what an error
means (``may_have_been_billed``, ``is_fatal_to_batch``, ``was_refused_for_now``,
``means_endpoint_missing``), live in one place so that no layer keeps its own copy; each class
is a few lines and a docstring that says when it is raised.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._models.task import Task

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "APIUnreachableError",
    "AuthenticationError",
    "BadRequestError",
    "BannedPromptError",
    "BatchLockedError",
    "ClientClosedError",
    "DownloadError",
    "DuplicateTaskError",
    "EndpointMissingError",
    "EvolinkError",
    "FilesAPIError",
    "InsufficientCreditsError",
    "JournalCorruptError",
    "JournalError",
    "JournalLostError",
    "JournalMismatchError",
    "JournalStateError",
    "MidjourneyError",
    "MissingAPIKeyError",
    "ModelUnavailableError",
    "NotFoundError",
    "NotJSONAnswerError",
    "NotSubmittedError",
    "PermissionDeniedError",
    "QueueFullError",
    "RateLimitError",
    "RedirectRefusedError",
    "Remedy",
    "RequestTooLargeError",
    "ResponseFormatError",
    "ServerError",
    "SubmitOutcomeUnknownError",
    "TaskCancelledError",
    "TaskFailedError",
    "TaskNeedsModalError",
    "TaskRequiresActionError",
    "TaskTimeoutError",
    "UnsupportedOperationError",
    "ValidationError",
    "ends_submitting",
    "is_fatal_to_batch",
    "may_have_been_billed",
    "means_endpoint_missing",
    "proves_nothing_taken",
    "was_refused_for_now",
]


class Remedy(enum.StrEnum):
    """The option that gets past an error (or a failed input), as the library's message names it.

    A message names the library's own parameter (``"... (retry_failed=True starts it again)"``)
    and the error, ``FailedInput`` or ``BatchEvent`` carries the member in ``remedy``, so that an
    application with options of its own names them its way: the ``evolink`` command line says
    ``--retry-failed``. The value is the text the message holds; it is the last thing a message
    names (outside text, such as keys, paths and server messages, comes before it).
    """

    RETRY_FAILED = "retry_failed=True"
    NEW_JOURNAL = "new_journal=True"
    FOLLOW_SYMLINKS = "follow_symlinks=True"
    RESUBMIT_UNCERTAIN = "resubmit_uncertain=True"
    NORMALIZE = "normalize=True"
    MAX_CREDITS = "max_credits"
    OUTPUT_DIR = "output_dir"
    #: Where a manifest's relative paths live (``WorkerOptions(root=...)``, the plan's ``root``).
    ROOT = "root"
    #: Followed by the value in effect (``journal_outage=30``).
    JOURNAL_OUTAGE = "journal_outage="
    #: A fleet batch of Midjourney prompt lines, run by a worker of image requests.
    PROMPT_SOURCE = "source=ImagineSource() and a Midjourney client"
    #: A fleet batch of image request lines, run by a worker of Midjourney prompts.
    REQUEST_SOURCE = "the default source (ManifestSource) and an Evolink client"


class EvolinkError(Exception):
    """Root of every error raised by evolink_async.

    ``remedy``: the option that gets past it, when one does (see :class:`Remedy`).
    """

    remedy: Remedy | None = None


def _clip(text: str, limit: int = 1000) -> str:
    """Server text in a message, bounded: a hostile answer must not make a megabyte-long line."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text) - limit} more characters)"


class ValidationError(EvolinkError, ValueError):
    """Raised before any network call when a request breaks a documented rule.

    ``field`` names the offending field (``"image_urls[1]"``), ``rule`` says what it must satisfy.
    """

    def __init__(self, field: str, rule: str, *, remedy: Remedy | None = None) -> None:
        self.field = field
        self.rule = rule
        self.remedy = remedy
        super().__init__(f"{field}: {rule}")


class MissingAPIKeyError(EvolinkError, ValueError):
    """Raised at a client's construction when no API key was given and ``EVOLINK_API_KEY`` is not set."""


class APIConnectionError(EvolinkError):
    """Raised when the server could not be reached or the connection broke (after retries)."""

    def __init__(self, message: str, *, request_id: str | None = None) -> None:
        self.message = message
        self.request_id = request_id
        super().__init__(message)


class APIUnreachableError(APIConnectionError):
    """Raised when no connection to the server could be made (refused, no such host, a failed TLS
    handshake), after retries: the request was never sent, so nothing was billed and sending it
    again is safe. A wrong host, or the network down."""


class APITimeoutError(APIConnectionError):
    """Raised when a request took longer than the configured timeout (after retries)."""


class ResponseFormatError(EvolinkError):
    """Raised when a response body is not what the protocol says it must be."""

    def __init__(self, message: str, *, request_id: str | None = None) -> None:
        self.message = message
        self.request_id = request_id
        super().__init__(message if request_id is None else f"{message} (request {request_id})")


class NotJSONAnswerError(ResponseFormatError):
    """Raised when a call is answered 2xx with a body that is neither JSON nor labelled as JSON (an
    HTML page): a web server, a captive portal or a proxy at the base URL, not the API.

    A submit (any call but a query) so answered is not sent again: a retry would only meet the same
    page, or pay twice should the page hide an acceptance. A fan-out or batch whose first answer is
    one stops (``url`` names the call); the input keeps its idempotency key, and may have been
    billed like any garbled answer (``may_have_been_billed``), so a re-run sends it again under it.
    """

    def __init__(self, message: str, *, url: str, status_code: int, request_id: str | None = None) -> None:
        self.url = url
        self.status_code = status_code
        super().__init__(message, request_id=request_id)


class DuplicateTaskError(ResponseFormatError):
    """A submit answered with a task that another input of the same fan-out or batch already has (a
    confused idempotency cache, a hostile gateway): this input fails alone, and the other input's
    results are never given as its own. Whether its own submit was billed is unknown; a batch does
    not send it again on its own (``retry_failed`` does). ``task_id``; ``owner``: that input's key."""

    def __init__(self, task_id: str, owner: object) -> None:
        self.task_id = task_id
        self.owner = owner
        super().__init__(
            f"the server answered this input's submit with task {task_id}, which is input {owner!r}'s; "
            "whether this submit was billed is unknown"
        )


class APIStatusError(EvolinkError):
    """Raised for a non-2xx HTTP answer; the subclasses name the common statuses.

    ``suggestion`` is the server's hint for the person, when it sent one
    (``error.fallback_suggestion``, or ``error.suggestion``; API.md A6), e.g. another model to use.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        code: str | None = None,
        type: str | None = None,
        param: str | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
        body: Any = None,
        url: str | None = None,
        suggestion: str | None = None,
    ) -> None:
        self.message = message
        self.status_code = status_code
        #: The call that was answered (``POST https://...``, secrets scrubbed), when the transport knows it.
        self.url = url
        self.code = code
        self.type = type
        self.param = param
        self.request_id = request_id
        self.retry_after = retry_after
        self.body = body
        self.suggestion = suggestion
        super().__init__(self._line())

    def _line(self) -> str:
        # A 2xx that means an error (a proxy's empty answer for an unknown task) is not named by
        # its status: "HTTP 200: task 123 not found" reads as a contradiction.
        parts = [f"HTTP {self.status_code}"] if not 200 <= self.status_code < 300 else []
        if self.code:
            parts.append(_clip(self.code, 100))
        head = " ".join(parts)
        if not head:
            return f"{_clip(self.message)}{self._suffix()}"
        return f"{head}: {_clip(self.message)}{self._suffix()}"

    def _suffix(self) -> str:
        tail = []
        if self.param:
            tail.append(f"param={_clip(self.param, 200)}")
        if self.request_id:
            tail.append(f"request_id={self.request_id}")
        return f" ({', '.join(tail)})" if tail else ""


class BadRequestError(APIStatusError):
    """HTTP 400: the server rejected the request's content."""


class ModelUnavailableError(BadRequestError):
    """A 4xx answer saying the request named a model the service does not offer (a mistyped or
    withdrawn name, or one the service has taken down for now): every request naming it would be
    refused alike, so a fan-out or batch stops at the first one. Nothing was created or billed; the
    inputs not yet submitted stay pending for a run with the right model.

    Known by ``model_unavailable`` in the error's ``code`` or its ``type``: API.md A4 documents
    neither for an unknown model; the sandbox says it in ``code`` (A4's shape), Evolink's own
    client looks for it in ``type``. ``status_code`` is the answer's own; ``model``: the name the
    refused request gave, when the submit knows it.
    """

    model: str | None = None


class AuthenticationError(APIStatusError):
    """HTTP 401: the API key is missing, wrong or revoked."""


class InsufficientCreditsError(APIStatusError):
    """HTTP 402: the balance or the key's quota is exhausted, or the key may not be used."""


class NotSubmittedError(EvolinkError):
    """An input a fan-out never submitted because submitting had stopped (``reason``: e.g. credits exhausted).

    No request was sent for it and nothing was billed: submitting it later is safe.
    """

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"not submitted: {reason}")


class PermissionDeniedError(APIStatusError):
    """HTTP 403: the key may not do this."""


class NotFoundError(APIStatusError):
    """HTTP 404: no such task, file or endpoint."""


class RequestTooLargeError(APIStatusError):
    """HTTP 413: the request body is larger than the server accepts."""


class RateLimitError(APIStatusError):
    """HTTP 429, after retries, or with a ``Retry-After`` longer than the client will wait."""


class RedirectRefusedError(APIStatusError):
    """An API call answered with a redirect to another origin (scheme, host or port), which the
    client does not follow: the request's body (a prompt, image URLs, a callback URL's token) and
    the answer it would take as the task's would belong to a server it was not pointed at. Point
    ``base_url`` at the target if that server is the one meant. ``status_code``: the redirect's.
    (A download of results follows redirects, without credentials.)"""


class ServerError(APIStatusError):
    """HTTP 5xx after retries."""


_STATUS_CLASSES: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    402: InsufficientCreditsError,
    403: PermissionDeniedError,
    404: NotFoundError,
    413: RequestTooLargeError,
    429: RateLimitError,
}


#: Answers known by what they say rather than their status (``error.code`` or ``error.type``):
#: Evolink's own client (API.md A6) reads these names from ``type``, where A4's examples have a
#: code and a ``*_error`` type; either is taken. A refused key (401) and a 429 keep their meaning.
_CLASSES_BY_NAME: dict[str, type[APIStatusError]] = {
    "model_unavailable": ModelUnavailableError,
    "insufficient_quota": InsufficientCreditsError,
}


def status_error_class(status_code: int, *, code: str | None = None, type: str | None = None) -> type[APIStatusError]:
    """The class that stands for an answer of ``status_code`` whose error says ``code`` and ``type``.

    >>> status_error_class(400, code="model_unavailable").__name__
    'ModelUnavailableError'
    """
    if 400 <= status_code < 500 and status_code not in (401, 429):
        for name in (code, type):
            named = _CLASSES_BY_NAME.get(name) if name is not None else None
            if named is not None:
                return named
    if status_code >= 500:
        return ServerError
    return _STATUS_CLASSES.get(status_code, APIStatusError)


class SubmitOutcomeUnknownError(APIConnectionError):
    """Raised when a submit's answer was lost and its task could not be found (no callback came).

    The server may or may not have created (and billed) the task. ``idempotency_key`` is the key
    it was sent with: submitting again with it is safe only on a server that honours the key.
    """

    def __init__(self, idempotency_key: str, cause: BaseException) -> None:
        self.idempotency_key = idempotency_key
        super().__init__(f"outcome unknown: the answer was lost ({cause}) and no callback named the task "
                         f"(idempotency key {idempotency_key})")  # fmt: skip


class ClientClosedError(EvolinkError):
    """Raised to whoever was still waiting on a task when the client's ``async with`` ended."""


class TaskFailedError(EvolinkError):
    """Raised by ``wait`` when the task ended in ``failed``.

    ``retryable`` is true for server-side failures (submitting again later may succeed) and
    false for ones the caller must fix (content policy, bad parameters, bad image).
    """

    def __init__(self, task: Task) -> None:
        self.task = task
        error = task.error
        self.code = error.code if error else None
        self.message = error.message if error else "task failed without an error body"
        self.retryable = error.retryable if error else True
        code = f" {self.code}" if self.code else ""
        super().__init__(f"task {task.id} failed{code}: {self.message}")


class TaskCancelledError(EvolinkError):
    """Raised by ``wait`` when the task ended in ``cancelled``."""

    def __init__(self, task: Task) -> None:
        self.task = task
        super().__init__(f"task {task.id} was cancelled")


class TaskTimeoutError(EvolinkError):
    """Raised by ``wait`` when the client's deadline passed before the task was terminal.

    The task may still finish on the server: ``task`` is the last snapshot seen. ``last_error`` is
    why the latest queries failed, when they did (a 503, a timeout): then the deadline passed
    because the server could not be asked, not because the task was slow. It is also the
    exception's ``__cause__``.
    """

    def __init__(
        self, task_id: str, timeout: float, task: Task | None = None, *, last_error: BaseException | None = None
    ) -> None:
        self.task_id = task_id
        self.timeout = timeout
        self.task = task
        self.last_error = last_error
        why = f"; its last query failed: {type(last_error).__name__}: {last_error}" if last_error is not None else ""
        super().__init__(f"task {task_id} was not terminal after {timeout:g} s{why}")


class FilesAPIError(APIStatusError):
    """Raised when the Files API refuses an upload or a file call (``{"success": false, "code": ...}``).

    ``code`` is the Files API's numeric code as a string (``"40001"`` too large, ``"40002"`` type not
    allowed, ``"40003"`` quota exceeded, ``"40004"`` URL download failed, ``"50001"`` storage).
    """


class DownloadError(EvolinkError):
    """Raised when a result could not be saved: bad URL, HTTP error, too large, or a broken connection.

    ``url`` is the result URL (it carries no key), ``reason`` a short machine-readable cause.
    """

    def __init__(self, url: str, reason: str, message: str) -> None:
        self.url = url
        self.reason = reason
        self.message = message
        super().__init__(f"{reason}: {message} ({url})")


class UnsupportedOperationError(EvolinkError):
    """Raised when the server has no endpoint for an operation (HTTP 404/405), e.g. a proxy without cancel."""

    def __init__(self, operation: str, message: str) -> None:
        self.operation = operation
        self.message = message
        super().__init__(f"{operation}: {message}")


class TaskRequiresActionError(EvolinkError):
    """Raised by ``wait`` (and ends a fan-out's input) when a task waits for the caller
    (``TaskStatus.REQUIRES_ACTION``): it will not move on by itself."""

    def __init__(self, task: Task, message: str | None = None) -> None:
        self.task = task
        super().__init__(message or f"task {task.id} waits for an action from the caller")


class TaskNeedsModalError(TaskRequiresActionError):
    """Raised by ``wait`` when a Midjourney task waits in ``MODAL`` for a ``Modal(...)`` submit."""

    def __init__(self, task: Task) -> None:
        super().__init__(
            task, f"task {task.id} waits for a modal confirmation: submit Modal(task=..., prompt=...) to go on"
        )


class MidjourneyError(EvolinkError):
    """Raised when a Midjourney proxy refuses a submit with a result code (3, 4, 9, ...) or ``success: false``.

    ``code`` is the proxy's result code (``-1`` for trueai's ``{"success": false}`` shape),
    ``description`` its text, ``status_code`` the HTTP status (often 200).
    """

    def __init__(
        self,
        description: str,
        *,
        code: int | None,
        properties: Mapping[str, Any] | None = None,
        status_code: int = 200,
        request_id: str | None = None,
    ) -> None:
        self.code = code
        self.description = description
        self.properties = dict(properties or {})
        self.status_code = status_code
        self.request_id = request_id
        suffix = f" (request {request_id})" if request_id else ""
        super().__init__(f"Midjourney proxy code {_clip(str(code), 24)}: {_clip(description)}{suffix}")


class BannedPromptError(MidjourneyError):
    """Raised when a Midjourney proxy refuses a prompt (code 24); ``banned_word`` is the word it named."""

    @property
    def banned_word(self) -> str | None:
        word = self.properties.get("bannedWord")
        return str(word) if word is not None else None


class QueueFullError(MidjourneyError):
    """Raised when a Midjourney proxy's queue stayed full (code 23, or 9 "queue full") through every retry."""


class BatchLockedError(EvolinkError):
    """Raised when another run is already using the same output folder (its journal)."""

    remedy = Remedy.OUTPUT_DIR


class JournalError(EvolinkError):
    """Raised when a batch journal cannot be used (not a journal, newer schema, not open, unknown key)."""


class JournalMismatchError(JournalError):
    """Raised when a resumed run asks for something other than what the journal recorded.

    ``what`` is the entry key or ``meta:<name>``; ``stored`` and ``given`` are the two values.
    """

    def __init__(self, what: str, *, stored: str, given: str, hint: str) -> None:
        self.what = what
        self.stored = stored
        self.given = given
        super().__init__(f"{what}: journal has {stored!r}, this run has {given!r}; {hint}")


class JournalStateError(JournalError):
    """Raised for a transition that would break the journal's promises (e.g. a second task id)."""


class JournalCorruptError(JournalError):
    """Raised when a journal file is damaged: not an SQLite file, malformed pages, unreadable rows.

    ``path`` is the file, ``reason`` what is wrong with it.
    """

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"journal {path} is damaged: {reason}")


class JournalLostError(JournalError):
    """Raised when a batch's journal is missing, empty or damaged while its output folder shows an earlier run.

    Without its journal a run cannot tell which inputs were already submitted, and would pay for
    them again; a batch with ``new_journal=True`` starts another instead. ``path`` is the journal,
    ``problem`` what is wrong with it, ``evidence`` what the folder holds of the earlier run.
    """

    remedy = Remedy.NEW_JOURNAL

    def __init__(self, path: str, *, problem: str, evidence: str) -> None:
        self.path = path
        self.problem = problem
        self.evidence = evidence
        super().__init__(
            f"journal {path} {problem}, but its folder holds {evidence} of an earlier run: without the journal "
            "this run cannot tell which inputs were already submitted, and would pay for them again. Restore "
            f"the journal, or start a new one ({Remedy.NEW_JOURNAL}): inputs "
            "with results in the folder are kept as done, the others are submitted again (a task still "
            "running when the journal was lost is paid for twice)"
        )


# --- what an error means to whoever handles it ---------------------------------------------------
# One function per question, asked by the transport, the tracker, the fan-out, the batch, the fleet
# worker and the protocols alike: a rule written once cannot drift between its copies.

# A broken connection or a timeout after sending, a 5xx, a garbled 2xx: the server may have done
# the work. (``SubmitOutcomeUnknownError`` is an ``APIConnectionError``: the same holds; an
# ``APIUnreachableError`` is one too, but no connection was made: nothing was sent.)
_MAY_HAVE_BEEN_BILLED = (APIConnectionError, ServerError, ResponseFormatError)
# The key is wrong, revoked, or may not do this: every other input would fail the same way.
_FATAL_TO_BATCH = (AuthenticationError, PermissionDeniedError)
# Answered for sure, nothing created, and the same request may be accepted later: slowed down, out
# of credits, a proxy's queue full, a model not offered (now, or by that name), or never sent
# because submitting had stopped.
_REFUSED_FOR_NOW = (
    RateLimitError, InsufficientCreditsError, QueueFullError, NotSubmittedError, ModelUnavailableError,
    APIUnreachableError,
)
# Statuses that say the server has no such endpoint (rather than no such task).
_ENDPOINT_MISSING_STATUSES = frozenset({404, 405, 501})


def may_have_been_billed(error: BaseException) -> bool:
    """True when the server may have acted on a request although the caller saw it fail.

    A submit that failed so may have created (and billed) its task: it may be sent again only
    under the same idempotency key, or once its outcome is settled (a callback, a listed state).

    >>> may_have_been_billed(ServerError("upstream broke", status_code=502))
    True
    """
    return isinstance(error, _MAY_HAVE_BEEN_BILLED) and not isinstance(error, APIUnreachableError)


def is_fatal_to_batch(error: BaseException) -> bool:
    """True when no other input of a fan-out or batch can succeed either (a wrong or forbidden key):
    stop at once instead of failing every input the same way.

    >>> is_fatal_to_batch(AuthenticationError("invalid key", status_code=401))
    True
    """
    return isinstance(error, _FATAL_TO_BATCH)


def was_refused_for_now(error: BaseException) -> bool:
    """True when the server surely created nothing but may accept the same request later (HTTP
    429, 402, a Midjourney proxy's full queue) or it was never sent: keep the input for a later run.

    >>> was_refused_for_now(QueueFullError("queue full", code=23))
    True
    """
    return isinstance(error, _REFUSED_FOR_NOW)


class EndpointMissingError(APIStatusError):
    """Raised to end a fan-out or batch when its submit (or upload) endpoint answered 404, 405 or 501:
    a wrong base URL, which would fail every input alike.

    That call created nothing; the inputs not yet submitted stay pending, so running again with
    the right base URL takes them all. ``url`` names the call (secrets scrubbed).
    """

    @classmethod
    def of(cls, error: APIStatusError | UnsupportedOperationError) -> EndpointMissingError:
        # A Midjourney submit says UnsupportedOperationError, raised while handling the HTTP answer.
        answer = error if isinstance(error, APIStatusError) else error.__context__
        status = answer.status_code if isinstance(answer, APIStatusError) else 404
        url = answer.url if isinstance(answer, APIStatusError) else None
        detail = answer.message if isinstance(answer, APIStatusError) else error.message
        where = url or (error.operation if isinstance(error, UnsupportedOperationError) else "the endpoint")
        message = (f"no such endpoint: {where} (is the base URL right?); nothing was submitted there, and "
                   f"running again with the right base URL submits every input left: {detail}")  # fmt: skip
        return cls(_clip(message, 1500), status_code=status, url=url,
                   request_id=answer.request_id if isinstance(answer, APIStatusError) else None)  # fmt: skip


def ends_submitting(error: BaseException) -> BaseException | None:
    """The error that ends a whole fan-out or batch because one submit (or upload) raised ``error``,
    or None when only that input fails: a wrong or forbidden key (``is_fatal_to_batch``), a model
    the service does not offer (``ModelUnavailableError``: a fan-out of several models stops too, its
    inputs not yet submitted left pending) and a submit endpoint redirected to another origin
    (``RedirectRefusedError``) as they are, a missing endpoint (``means_endpoint_missing``:
    a wrong base URL) as an ``EndpointMissingError``.

    Ask it only of a submit or an upload (fixed endpoints), never of one task's query.

    >>> isinstance(ends_submitting(NotFoundError("Not Found", status_code=404)), EndpointMissingError)
    True
    """
    if is_fatal_to_batch(error):
        return error
    if isinstance(error, EndpointMissingError | ModelUnavailableError | RedirectRefusedError):
        return error
    if isinstance(error, APIStatusError | UnsupportedOperationError) and means_endpoint_missing(error):
        return EndpointMissingError.of(error)
    return None


def proves_nothing_taken(error: BaseException) -> bool:
    """True when a stop for ``error`` proves that no submit of the run was taken: its submit
    endpoint is missing (a wrong base URL or path prefix: every submit goes there) or its key is
    invalid (every submit carries it). The inputs sent without an answer can go back as pending.

    >>> proves_nothing_taken(AuthenticationError("invalid key", status_code=401))
    True
    """
    return isinstance(error, EndpointMissingError | AuthenticationError)


def means_endpoint_missing(error: BaseException) -> bool:
    """True when an answer says the server has no such endpoint (HTTP 404, 405 or 501, or an
    ``UnsupportedOperationError``): an optional call (fetch many, cancel) is not worth trying again.

    Ask it only of a call to a fixed endpoint: a 404 for one task's own URL means the task is unknown.

    >>> means_endpoint_missing(APIStatusError("Method Not Allowed", status_code=405))
    True
    """
    if isinstance(error, UnsupportedOperationError):
        return True
    return isinstance(error, APIStatusError) and error.status_code in _ENDPOINT_MISSING_STATUSES
