"""The telemetry of one CLI run: ``--metrics-port`` and OpenTelemetry's standard ``OTEL_*`` variables.

What is read, and only when ``opentelemetry-sdk`` is importable (it is not a dependency):

- ``OTEL_TRACES_EXPORTER`` / ``OTEL_METRICS_EXPORTER``: comma-separated exporter names (``console``,
  ``otlp``, ``none``, or any a package registers under OpenTelemetry's entry-point groups
  ``opentelemetry_traces_exporter`` / ``opentelemetry_metrics_exporter``). Unset, they mean ``otlp``
  when an OTLP endpoint is set (``OTEL_EXPORTER_OTLP_ENDPOINT`` or the signal's own), and nothing
  otherwise: a CLI run exports only when asked to, never to a default collector.
- ``OTEL_EXPORTER_OTLP_PROTOCOL`` (or the signal's own) picks ``grpc`` or ``http/protobuf`` for ``otlp``.
- ``OTEL_SERVICE_NAME`` / ``OTEL_RESOURCE_ATTRIBUTES`` name the resource (``service.name`` is
  ``evolink`` otherwise); ``OTEL_SDK_DISABLED=true`` turns it all off.
- The exporters read their own variables (endpoint, headers, timeout), the tracer provider its
  sampler (``OTEL_TRACES_SAMPLER``), the batch processor and the periodic reader their intervals:
  the SDK's own behaviour, nothing re-implemented here.

Asked-for export that cannot happen (no SDK, an exporter whose package is not installed, one that
fails to start) is one ``evolink: ...`` line on standard error and the run goes on without it:
these variables are often set for a whole machine, and a paid batch must not stop over its traces.
The providers are given to the run's client, never installed globally. Endpoints and headers are
never printed (they may carry credentials): a message names the variable and the exporter only.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from importlib import metadata
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

from ..errors import ValidationError
from ._text import printable

if TYPE_CHECKING:
    from ..metrics import MetricsServer

__all__ = ["RunTelemetry", "start_telemetry"]

_TRACES, _METRICS = "traces", "metrics"
_EXPORTER_VARIABLE = {_TRACES: "OTEL_TRACES_EXPORTER", _METRICS: "OTEL_METRICS_EXPORTER"}
_PROTOCOL_ENTRY_POINTS = {"grpc": "otlp_proto_grpc", "http/protobuf": "otlp_proto_http"}
#: Seconds the run's end may wait for the exporters to flush (an unreachable collector must not hang it).
FLUSH_TIMEOUT = 10.0


def _say(message: str) -> None:
    print(f"evolink: {message}", file=sys.stderr, flush=True)


def _install_hint(name: str) -> str:
    if name.startswith("otlp"):
        return "pip install opentelemetry-exporter-otlp"
    return f"install the package that provides the {printable(name)!s} exporter"


def _exporter_names(signal: str, environ: Mapping[str, str]) -> list[str]:
    """The exporters asked for, in order (``none`` and blanks dropped); see the module's docstring."""
    value = environ.get(_EXPORTER_VARIABLE[signal])
    if value is None:
        endpoints = ("OTEL_EXPORTER_OTLP_ENDPOINT", f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT")
        value = "otlp" if any(environ.get(name, "").strip() for name in endpoints) else ""
    return [name for name in (part.strip().lower() for part in value.split(",")) if name and name != "none"]


def _entry_point_name(name: str, signal: str, environ: Mapping[str, str]) -> str:
    if name != "otlp":
        return name
    protocol = environ.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_PROTOCOL") or environ.get(
        "OTEL_EXPORTER_OTLP_PROTOCOL", ""
    )
    return _PROTOCOL_ENTRY_POINTS.get(protocol.strip().lower(), name)


def _exporters(signal: str, environ: Mapping[str, str]) -> list[Any]:
    """An instance of each exporter asked for that is installed and starts (a line for the others)."""
    variable = _EXPORTER_VARIABLE[signal]
    made: list[Any] = []
    for name in _exporter_names(signal, environ):
        group = f"opentelemetry_{signal}_exporter"
        found = list(metadata.entry_points(group=group, name=_entry_point_name(name, signal, environ)))
        if not found:
            _say(f"{variable} asks for the {printable(name)} exporter, which is not installed: "
                 f"no {signal} are exported that way ({_install_hint(name)})")  # fmt: skip
            continue
        try:
            made.append(found[0].load()())
        except Exception as exc:  # an exporter that cannot start costs its signal, not the run
            _say(f"the {printable(name)} {signal} exporter ({variable}) did not start: {type(exc).__name__}")
    return made


class RunTelemetry:
    """The providers a run's client is given, and the ``--metrics-port`` server; :meth:`stop` at the end."""

    def __init__(self, *, tracer_provider: Any = None, meter_provider: Any = None,
                 metrics: MetricsServer | None = None) -> None:  # fmt: skip
        self.tracer_provider = tracer_provider
        self.meter_provider = meter_provider
        self.metrics = metrics

    @property
    def client_options(self) -> dict[str, Any]:
        """``tracer_provider=`` and ``meter_provider=`` for the client (``None``: not configured)."""
        return {"tracer_provider": self.tracer_provider, "meter_provider": self.meter_provider}

    async def __aenter__(self) -> RunTelemetry:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def stop(self) -> None:
        """Stop serving metrics, then flush and shut down the exporters, within ``FLUSH_TIMEOUT``."""
        if self.metrics is not None:
            await self.metrics.stop_serving()
        providers = [p for p in (self.tracer_provider, self.meter_provider) if p is not None]
        if not providers:
            return

        def shut_down() -> None:
            for provider in providers:
                provider.shutdown()

        with anyio.CancelScope(shield=True), anyio.move_on_after(FLUSH_TIMEOUT) as waited:
            await anyio.to_thread.run_sync(shut_down, abandon_on_cancel=True)
        if waited.cancelled_caught:
            _say(f"the OpenTelemetry exporters did not finish within {FLUSH_TIMEOUT:g} s: some data was not sent")


async def start_telemetry(metrics_port: int | None, *, environ: Mapping[str, str] | None = None) -> RunTelemetry:
    """The run's telemetry from ``--metrics-port`` and the ``OTEL_*`` variables (see the module)."""
    env = os.environ if environ is None else environ
    disabled = env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"
    asked = not disabled and any(_exporter_names(signal, env) for signal in (_TRACES, _METRICS))
    if not asked:
        # No export: the SDK is not even imported (about 0.1 s of CPU at every start, six times for six
        # fleet workers); ``--metrics-port`` imports what it needs (a usage error without the SDK).
        metrics = await _start_metrics(metrics_port, readers=(), resource=None)
        return RunTelemetry(meter_provider=metrics.meter_provider if metrics else None, metrics=metrics)
    try:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        _say("OTEL_* variables ask for OpenTelemetry export, but opentelemetry-sdk is not installed: nothing "
             "is exported (pip install 'evolink-async[otel]' opentelemetry-sdk)")  # fmt: skip
        metrics = await _start_metrics(metrics_port, readers=(), resource=None)  # a usage error without the SDK
        return RunTelemetry(metrics=metrics)
    resource = Resource.create()  # reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: "evolink"}))
    tracer_provider = None
    span_exporters = _exporters(_TRACES, env)
    if span_exporters:
        tracer_provider = TracerProvider(resource=resource)
        for exporter in span_exporters:
            tracer_provider.add_span_processor(BatchSpanProcessor(exporter))
    readers = [
        exporter if isinstance(exporter, MetricReader) else PeriodicExportingMetricReader(exporter)
        for exporter in _exporters(_METRICS, env)
    ]
    try:
        metrics = await _start_metrics(metrics_port, readers=readers, resource=resource)
    except BaseException:  # a port already taken (the server shut its readers down): a usage error
        if tracer_provider is not None:
            tracer_provider.shutdown()
        raise
    if metrics is not None:
        meter_provider = metrics.meter_provider
    else:
        meter_provider = MeterProvider(metric_readers=readers, resource=resource) if readers else None
    return RunTelemetry(tracer_provider=tracer_provider, meter_provider=meter_provider, metrics=metrics)


async def _start_metrics(port: int | None, *, readers: Any, resource: Any) -> MetricsServer | None:
    """``--metrics-port``: the server, its address on standard error (None without the option)."""
    if port is None:
        return None
    from ..metrics import MetricsServer  # with its HTTP server: only for --metrics-port

    try:
        server = await MetricsServer.start(port, metric_readers=readers, resource=resource)
    except ValidationError as exc:  # the library names its parameter; here, the option
        raise ValidationError("--metrics-port", exc.rule) from None
    _say(f"metrics on http://127.0.0.1:{server.port}/metrics")
    return server
