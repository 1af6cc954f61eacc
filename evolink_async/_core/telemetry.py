"""OpenTelemetry spans and metrics, as a soft dependency (the ``[otel]`` extra).

The only module that imports ``opentelemetry``. Whether it can be imported is decided once, here;
without it :func:`telemetry_for` returns ``None`` and every caller skips its hook with one
``is None`` test, so an SDK without the extra does exactly what it did before. The same holds with
the API installed but no SDK configured when the client is made (the global providers are still
OpenTelemetry's proxies, whose spans and instruments are no-ops): configure OpenTelemetry (or run
under ``opentelemetry-instrument``) before creating clients, or pass the providers explicitly.
Spans are decided apart from metrics, once per client (:attr:`Telemetry.tracing`): with a meter
provider and no tracer provider (the CLI's ``--metrics-port``) the metrics are recorded and no
span object is ever made (no-op spans cost about a fifth of a query's CPU, benchmarks/query_path).

Every hook catches its own failures: telemetry must never raise into the caller's code. No hook
records a header, a body, or a message: attributes are names, ids, counts and codes, and the
strings among them are scrubbed of the key (it never leaves in an attribute).
"""

from __future__ import annotations

import contextvars
import functools
import re
from collections.abc import Callable, Mapping
from typing import Any, ParamSpec, TypeVar

import yarl

from .._version import __version__
from .logging import logger
from .secret import Secret, scrub_known

try:  # One guarded import for the whole package: decided once, never per call.
    from opentelemetry import context as otel_context
    from opentelemetry import metrics as otel_metrics
    from opentelemetry import trace as otel_trace
    from opentelemetry.trace import Link, NoOpTracerProvider, ProxyTracerProvider, SpanKind, Status, StatusCode
except ImportError:  # the extra is not installed: every hook stays off
    OTEL_AVAILABLE = False
else:
    OTEL_AVAILABLE = True

__all__ = [
    "FAN_OUT_KEY",
    "HTTP_LINKS",
    "OTEL_AVAILABLE",
    "QUERY_TEMPLATES",
    "HttpAttempt",
    "SpanHandle",
    "Telemetry",
    "telemetry_for",
    "url_template",
]

#: The instrumentation scope of the tracer and the meter.
SCOPE = "evolink_async"

#: The key of the fan-out input whose submit runs in this context (set by the fan-out, read by
#: the task span it opens). A context variable: the seam between them stays one ``submit`` call.
FAN_OUT_KEY: contextvars.ContextVar[str | None] = contextvars.ContextVar("evolink_fan_out_key", default=None)

#: Spans the HTTP spans started in this context link to: a bulk query (one request about many
#: tasks, a child of none of them) links to the query span it opened under each task's span.
HTTP_LINKS: contextvars.ContextVar[tuple[SpanHandle, ...]] = contextvars.ContextVar("evolink_http_links", default=())

#: The ``url.template``s of requests that query tasks: ``evolink.queries`` counts these.
QUERY_TEMPLATES = frozenset(
    {"/v1/tasks/{task_id}", "/task/{task_id}/fetch", "/task/list-by-condition", "/task/list-by-ids"}
)

_FILES_ROUTE = "/api/v1/files/"
_UPLOADS_ROUTE = "/api/v1/files/upload/"
_FILE_ROUTE = "/api/v1/files/{file_id}"

# Path segments that are ids, for ``url.template`` (the routes of API.md, Evolink and MJ proxies).
_TEMPLATES = (
    (re.compile(r"/tasks/[^/]+$"), "/tasks/{task_id}"),
    (re.compile(r"/task/(?!list)[^/]+/(fetch|cancel|image-seed)$"), r"/task/{task_id}/\1"),
    (re.compile(r"/files/download/[^/]+$"), "/files/download/{file_id}"),
    (re.compile(r"/files/(?!upload/|list$|quota$|download/)[^/]+$"), "/files/{file_id}"),
)
# Where an MJ proxy's path prefix ends (``/mj``, ``/v1/mj``, ``/mj-fast/mj``): the template keeps the route.
_MJ_ROUTE = re.compile(r"/(submit/[^/]+|task/.+)$")

_NO_TOKEN: object = None
P = ParamSpec("P")
R = TypeVar("R")


def _guarded(default: R) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """A hook that logs (at debug) instead of raising: telemetry never breaks the caller."""

    def wrap(function: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(function)
        def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return function(*args, **kwargs)
            except Exception as exc:
                logger.debug("telemetry hook %s failed: %s", function.__name__, type(exc).__name__)
                return default

        return guarded

    return wrap


def url_template(url: str, *, base_url: str = "") -> str:
    """The route of ``url`` with its ids as placeholders: ``/v1/tasks/{task_id}``.

    >>> url_template("https://api.evolink.ai/v1/tasks/task-1?x=1")
    '/v1/tasks/{task_id}'
    """
    path = yarl.URL(url).path
    for pattern, replacement in _TEMPLATES:
        path = pattern.sub(replacement, path)
    base_path = yarl.URL(base_url).path.rstrip("/") if base_url else ""
    if base_path and path.startswith(base_path + "/"):
        path = path[len(base_path) :]  # a proxy's own prefix says nothing about the route
    elif (match := _MJ_ROUTE.search(path)) is not None and "/v1/" not in path:
        path = "/" + match.group(1)
    return path


def _scrub(text: str, secret: Secret) -> str:
    """``text`` without ``secret`` nor any key this process holds (no pattern: once per request)."""
    return scrub_known(secret.scrub(text))


def _tracing_configured(tracer_provider: Any) -> bool:
    """True if spans would be recorded: a provider given, or a global one an SDK (or
    ``opentelemetry-instrument``) set. OpenTelemetry's proxy and no-op providers only make no-op spans."""
    provider = tracer_provider if tracer_provider is not None else otel_trace.get_tracer_provider()
    return not isinstance(provider, ProxyTracerProvider | NoOpTracerProvider)


def _globals_configured() -> bool:
    """True once an SDK (or ``opentelemetry-instrument``) set a global tracer or meter provider."""
    if _tracing_configured(None):
        return True
    try:
        from opentelemetry.metrics._internal import _ProxyMeterProvider
    except ImportError:  # a layout this code does not know: assume configured (correct, if slower)
        return True
    return not isinstance(otel_metrics.get_meter_provider(), _ProxyMeterProvider)


def outcome_of(status: int | None, error: BaseException | None) -> str:
    """``ok``, or what went wrong in a word: the error's type, else the HTTP status."""
    if status is not None and status >= 400:
        return str(status)
    if error is not None:
        return type(error).__name__
    return "ok"


class SpanHandle:
    """One span the SDK opened: make it current around awaits, add to it, end it once."""

    __slots__ = ("_ended", "span")

    def __init__(self, span: Any) -> None:
        self.span = span
        self._ended = False

    @_guarded(_NO_TOKEN)
    def attach(self) -> object:
        """Make this span the current one in this context; pass the token to :meth:`detach`."""
        return otel_context.attach(otel_trace.set_span_in_context(self.span))

    @_guarded(None)
    def detach(self, token: object) -> None:
        if token is not None:
            otel_context.detach(token)  # type: ignore[arg-type]

    @_guarded(None)
    def set(self, attributes: Mapping[str, str | int | float | bool]) -> None:
        self.span.set_attributes(dict(attributes))

    @_guarded(None)
    def event(self, name: str, attributes: Mapping[str, str | int | float | bool]) -> None:
        self.span.add_event(name, dict(attributes))

    @_guarded(None)
    def end(self, *, error_type: str | None = None) -> None:
        if self._ended:
            return
        self._ended = True
        if error_type is not None:
            self.span.set_attribute("error.type", error_type)
            self.span.set_status(Status(StatusCode.ERROR))
        self.span.end()


class HttpAttempt:
    """The client span of one HTTP exchange (one attempt: a retry is a span of its own), and its
    metrics; with tracing off (``handle`` None) the metrics only."""

    __slots__ = ("_handle", "_method", "_telemetry", "_template", "_token")

    def __init__(self, telemetry: Telemetry, handle: SpanHandle | None, method: str, template: str) -> None:
        self._telemetry = telemetry
        self._handle = handle
        self._method = method
        self._template = template
        # Current while the request runs: aiohttp's own instrumentation nests under it.
        self._token = None if handle is None else handle.attach()

    @_guarded(None)
    def end(self, *, status: int | None, request_id: str | None, error: BaseException | None, secret: Secret) -> None:
        failed = error is not None or (status is not None and status >= 400)
        outcome = outcome_of(status, error)
        handle = self._handle
        if handle is not None:
            handle.detach(self._token)
            self._token = None
            attributes: dict[str, str | int] = {}
            if status is not None:
                attributes["http.response.status_code"] = status
            if request_id:
                attributes["evolink.request_id"] = _scrub(request_id, secret)
            if attributes:
                handle.set(attributes)
            handle.end(error_type=outcome if failed else None)
        template = self._template
        if template in QUERY_TEMPLATES:
            self._telemetry.queries.add(1, {"endpoint": template, "outcome": outcome})
        elif not failed and template.startswith(_FILES_ROUTE):
            # Files alive on the Files API: stored by an upload, gone by a delete (a 404 on
            # delete is a file already gone, counted once when its deletion succeeded).
            if template.startswith(_UPLOADS_ROUTE):
                self._telemetry.uploads_alive.add(1)
            elif self._method == "DELETE" and template == _FILE_ROUTE:
                self._telemetry.uploads_alive.add(-1)


class Telemetry:
    """The tracer, the meter and the instruments of one client family (and its fan-outs)."""

    def __init__(self, *, tracer_provider: Any = None, meter_provider: Any = None) -> None:
        #: Whether spans are made at all, decided once: with metrics configured and tracing not
        #: (the CLI's ``--metrics-port``), every span would be a no-op object made and ended per
        #: request for nothing. Off, :meth:`span` answers ``None`` and no span object exists.
        self.tracing = _tracing_configured(tracer_provider)
        self.tracer = otel_trace.get_tracer(SCOPE, __version__, tracer_provider=tracer_provider)
        meter = otel_metrics.get_meter(SCOPE, __version__, meter_provider=meter_provider)
        self.tasks_in_flight = meter.create_up_down_counter(
            "evolink.tasks.in_flight", unit="{task}", description="Tasks submitted and not yet seen ended"
        )
        self.task_duration = meter.create_histogram(
            "evolink.task.duration", unit="s", description="From submit to the end of a task, by model and outcome"
        )
        self.operation_duration = meter.create_histogram(
            "gen_ai.client.operation.duration", unit="s", description="GenAI operation duration (submit to end)"
        )
        self.queries = meter.create_counter(
            "evolink.queries", unit="{request}", description="Task queries sent, by endpoint and outcome"
        )
        self.retries = meter.create_counter(
            "evolink.http.retries", unit="{retry}", description="HTTP requests sent again, by reason"
        )
        self.credits_reserved = meter.create_counter(
            "evolink.credits.reserved", unit="{credit}", description="Credits the submits reserved, by model"
        )
        self.cooldown = meter.create_counter(
            "evolink.rate_limit.cooldown", unit="s", description="Seconds requests waited after HTTP 429s"
        )
        self.events_dropped = meter.create_counter(
            "evolink.events.dropped", unit="{event}", description="Progress events replaced by fresher ones"
        )
        self.uploads_alive = meter.create_up_down_counter(
            "evolink.uploads.alive", unit="{file}", description="Files uploaded for tasks and not yet deleted"
        )

    # --- spans ------------------------------------------------------------------------------

    @_guarded(None)
    def span(
        self,
        name: str,
        attributes: Mapping[str, str | int | float | bool],
        *,
        client: bool = False,
        parent: SpanHandle | None = None,
        links: tuple[SpanHandle, ...] = (),
    ) -> Any:
        """A new span, child of ``parent`` or else of the current context's span (``None`` with
        tracing off, or if that failed)."""
        if not self.tracing:
            return None
        kind = SpanKind.CLIENT if client else SpanKind.INTERNAL
        context = None if parent is None else otel_trace.set_span_in_context(parent.span)
        span_links = [Link(handle.span.get_span_context()) for handle in links] if links else None
        return SpanHandle(
            self.tracer.start_span(name, context, kind=kind, attributes=dict(attributes), links=span_links)
        )

    @_guarded(None)
    def http_attempt(self, method: str, url: str, attempt: int, *, base_url: str, secret: Secret) -> Any:
        """The span of one HTTP attempt, current until :meth:`HttpAttempt.end`."""
        template = _scrub(url_template(url, base_url=base_url), secret)
        if not self.tracing:  # the metrics only (queries, uploads): no span, no attributes
            return HttpAttempt(self, None, method, template)
        parsed = yarl.URL(url)
        attributes: dict[str, str | int | float | bool] = {
            "http.request.method": method,
            "url.template": template,
            "server.address": parsed.host or "",
            "evolink.retry.attempt": attempt,
        }
        if parsed.port is not None:
            attributes["server.port"] = parsed.port
        if attempt:
            attributes["http.request.resend_count"] = attempt
        handle = self.span(f"{method} {template}", attributes, client=True, links=HTTP_LINKS.get())
        return None if handle is None else HttpAttempt(self, handle, method, template)

    @_guarded(None)
    def callback_received(self, task_span: SpanHandle, attributes: Mapping[str, str | int | float | bool]) -> None:
        """A span for the processing of one pushed callback: a child of the current span (the
        receiver's request, when the web framework is instrumented), linked to its task's span."""
        if not self.tracing:
            return
        link = Link(task_span.span.get_span_context())
        span = self.tracer.start_span(
            "process evolink.callback", kind=SpanKind.CONSUMER, attributes=dict(attributes), links=[link]
        )
        span.end()

    # --- metrics ----------------------------------------------------------------------------

    @_guarded(None)
    def retried(self, error: BaseException) -> None:
        status = getattr(error, "status_code", None)
        self.retries.add(1, {"reason": str(status) if status is not None else type(error).__name__})

    @_guarded(None)
    def cooled_down(self, seconds: float) -> None:
        self.cooldown.add(seconds)

    @_guarded(None)
    def event_dropped(self) -> None:
        self.events_dropped.add(1)


def telemetry_for(*, tracer_provider: Any = None, meter_provider: Any = None) -> Telemetry | None:
    """A client's telemetry: ``None`` without ``opentelemetry-api`` (every hook then stays off).

    The providers default to the global ones OpenTelemetry's SDK (or ``opentelemetry-instrument``)
    installs; without an SDK configured, spans and instruments are OpenTelemetry's no-ops.
    """
    if not OTEL_AVAILABLE:
        if tracer_provider is not None or meter_provider is not None:
            logger.warning("tracer_provider/meter_provider given but opentelemetry-api is not installed")
        return None
    if tracer_provider is None and meter_provider is None and not _globals_configured():
        return None  # every span and instrument would be a no-op: no hook at all, as without the extra
    try:
        return Telemetry(tracer_provider=tracer_provider, meter_provider=meter_provider)
    except Exception as exc:  # a broken provider must not stop the client
        logger.warning("telemetry is off: %s", type(exc).__name__)
        return None
