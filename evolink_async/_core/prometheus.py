"""``--metrics-port``: the SDK's metrics in Prometheus text format, served on loopback.

Why not ``prometheus_client`` or OpenTelemetry's Prometheus exporter (which wraps it): both are one
more dependency, register into ``prometheus_client``'s process-wide registry, and serve from a
thread of their own. Here an OpenTelemetry SDK ``MeterProvider`` is read on each scrape (a pull
reader, ``InMemoryMetricReader``) and written out in the text format (version 0.0.4) by an aiohttp
handler on the event loop the CLI already runs: only ``opentelemetry-sdk`` is needed, and nothing
outside this server sees the metrics.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from aiohttp import web

from ..errors import ValidationError

__all__ = ["MetricsServer", "render"]

_NAME_CHARS = re.compile(r"[^a-zA-Z0-9_:]")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _name(name: str) -> str:
    return _NAME_CHARS.sub("_", name)


def _escape(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(attributes: Mapping[str, Any], extra: str = "") -> str:
    parts = [f'{_name(key)}="{_escape(value)}"' for key, value in sorted(attributes.items())]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if isinstance(value, float) else str(value)


def render(metrics_data: Any) -> str:
    """``MetricsData`` of an OpenTelemetry SDK reader as Prometheus text."""
    from opentelemetry.sdk.metrics.export import Gauge, Histogram, Sum

    lines: list[str] = []
    for metric in _metrics(metrics_data):
        name, data = _name(metric.name), metric.data
        if isinstance(data, Sum) and data.is_monotonic:
            name = f"{name}_total"
            kind = "counter"
        elif isinstance(data, Sum | Gauge):
            kind = "gauge"
        elif isinstance(data, Histogram):
            kind = "histogram"
        else:
            continue
        if metric.description:
            lines.append(f"# HELP {name} {metric.description.replace(chr(10), ' ')}")
        lines.append(f"# TYPE {name} {kind}")
        for point in data.data_points:
            attributes = dict(point.attributes or {})
            if kind != "histogram":
                lines.append(f"{name}{_labels(attributes)} {_number(point.value)}")
                continue
            cumulative = 0
            for bound, count in zip([*point.explicit_bounds, math.inf], point.bucket_counts, strict=True):
                cumulative += count
                le = 'le="' + _number(float(bound)) + '"'
                lines.append(f"{name}_bucket{_labels(attributes, le)} {cumulative}")
            lines.append(f"{name}_sum{_labels(attributes)} {_number(point.sum)}")
            lines.append(f"{name}_count{_labels(attributes)} {point.count}")
    return "\n".join(lines) + "\n"


def _metrics(metrics_data: Any) -> Iterable[Any]:
    if metrics_data is None:
        return
    for resource_metrics in metrics_data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            yield from scope_metrics.metrics


class MetricsServer:
    """``GET /metrics`` on ``host:port`` for the metrics of :attr:`meter_provider` (give it to the client).

    >>> server = await MetricsServer.start(9464)
    >>> client = EvolinkClient(meter_provider=server.meter_provider)
    """

    def __init__(self, meter_provider: Any, runner: web.AppRunner, port: int) -> None:
        self.meter_provider = meter_provider
        self.port = port
        self._runner = runner

    @classmethod
    async def start(
        cls, port: int, *, host: str = "127.0.0.1", metric_readers: Sequence[Any] = (), resource: Any = None
    ) -> MetricsServer:
        """Listening on ``port`` (0: a free one, see :attr:`port`). Needs ``opentelemetry-sdk``
        (``ValidationError`` naming ``port`` otherwise). ``metric_readers`` (exporters the
        ``OTEL_*`` variables asked for) read the same meter provider, of ``resource``."""
        try:
            from opentelemetry.sdk.metrics import MeterProvider
            from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        except ImportError:
            raise ValidationError(
                "port", "needs OpenTelemetry's SDK: pip install 'evolink-async[otel]' opentelemetry-sdk"
            ) from None
        reader = InMemoryMetricReader()
        options = {} if resource is None else {"resource": resource}
        provider = MeterProvider(metric_readers=[reader, *metric_readers], **options)

        async def metrics(_request: web.Request) -> web.Response:
            text = render(reader.get_metrics_data())
            return web.Response(body=text.encode(), headers={"Content-Type": CONTENT_TYPE})

        app = web.Application()
        app.router.add_get("/metrics", metrics)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, port)
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            provider.shutdown()  # and the readers given with it
            raise ValidationError("port", f"cannot listen on {host}:{port}: {exc.strerror}") from None
        bound = port
        for address in runner.addresses:
            bound = address[1]
        return cls(provider, runner, bound)

    async def stop(self) -> None:
        await self.stop_serving()
        self.meter_provider.shutdown()

    async def stop_serving(self) -> None:
        """Close the port, leaving the meter provider to its owner (whose shutdown may flush exporters)."""
        await self._runner.cleanup()
