"""OpenTelemetry SDK providers whose spans and metrics stay in memory (no global provider is set)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import attrs
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


@attrs.define
class Otel:
    """A tracer provider and a meter provider whose spans and metrics stay in memory."""

    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    exporter: InMemorySpanExporter
    reader: InMemoryMetricReader

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def metric_points(self) -> dict[str, list[Any]]:
        """Data points by instrument name (cumulative since the provider was made)."""
        points: dict[str, list[Any]] = {}
        data = self.reader.get_metrics_data()
        if data is None:
            return points
        for resource_metrics in data.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    points.setdefault(metric.name, []).extend(metric.data.data_points)
        return points

    def total(self, name: str, **attributes: Any) -> float:
        """The sum of a counter's points (or of a histogram's counts) matching ``attributes``."""
        total = 0.0
        for point in self.metric_points().get(name, []):
            if all(point.attributes.get(k) == v for k, v in attributes.items()):
                total += point.value if hasattr(point, "value") else point.count
        return total

    def everything_as_text(self) -> str:
        """Every span (name, attributes, events, links) and every metric point as one JSON text."""
        spans = [span.to_json() for span in self.spans()]
        data = self.reader.get_metrics_data()
        return json.dumps(spans) + (data.to_json() if data is not None else "")


@contextlib.contextmanager
def in_memory_otel() -> Iterator[Otel]:
    """A fresh pair of providers, shut down on leaving."""
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    yield Otel(tracer_provider, meter_provider, exporter, reader)
    tracer_provider.shutdown()
    meter_provider.shutdown()
