"""Metrics configured, tracing not (the CLI's ``--metrics-port``): the metrics are whole, and no
span is made on any request (every one would be a no-op, made and ended for nothing)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry import trace

from evolink_async import EvolinkClient, PollPolicy, QwenImageEdit
from evolink_async._core import telemetry
from evolink_async.sandbox import Sandbox

from .conftest import Otel

QUERY = "GET /v1/tasks/{task_id}"


@pytest.fixture
def span_counts(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """How many SDK span handles and OpenTelemetry spans were started (the global tracer provider
    is OpenTelemetry's proxy in this process: no test sets a global one)."""
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    counts = {"handles": 0, "started": 0}
    handle_init = telemetry.SpanHandle.__init__
    start_span = trace.ProxyTracer.start_span

    def counted_handle(self: telemetry.SpanHandle, span: Any) -> None:
        counts["handles"] += 1
        handle_init(self, span)

    def counted_start(self: trace.ProxyTracer, *args: Any, **kwargs: Any) -> Any:
        counts["started"] += 1
        return start_span(self, *args, **kwargs)

    monkeypatch.setattr(telemetry.SpanHandle, "__init__", counted_handle)
    monkeypatch.setattr(trace.ProxyTracer, "start_span", counted_start)
    return counts


async def test_metrics_only_makes_no_span(
    evolink_sandbox_factory: Callable[..., Any], scaled_client: Callable[..., EvolinkClient], otel: Otel,
    span_counts: dict[str, int],
) -> None:
    sandbox: Sandbox = await evolink_sandbox_factory(time_scale=0.005, seed=4)
    async with scaled_client(sandbox, poll_policy=PollPolicy().scaled(0.005), meter_provider=otel.meter_provider) as client:
        assert client._transport.telemetry is not None  # the metrics' hooks are on
        requests = [QwenImageEdit(prompt=f"p {i}", image_urls=[f"https://example.com/{i}.png"]) for i in range(5)]
        async with client.fan_out(requests, max_in_flight=5) as events:
            async for _ in events:
                pass
    ledger = sandbox.ledger
    assert ledger.requests[QUERY] > 0
    assert span_counts == {"handles": 0, "started": 0}
    # The metrics are those a traced client records.
    assert otel.total("evolink.queries") == ledger.requests[QUERY]
    assert otel.total("evolink.task.duration") == 5 == len(ledger.billed)
    assert otel.total("evolink.credits.reserved") == pytest.approx(ledger.credits_charged)
    assert otel.total("evolink.tasks.in_flight") == 0
    assert otel.spans() == []


async def test_a_tracer_provider_given_still_traces(
    evolink_sandbox: Sandbox, scaled_client: Callable[..., EvolinkClient], otel: Otel, span_counts: dict[str, int]
) -> None:
    async with scaled_client(
        evolink_sandbox, tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider
    ) as client:
        task = await client.images.submit(QwenImageEdit(prompt="p", image_urls=["https://example.com/a.png"]))
        await client.tasks.wait(task, timeout=30)
    names = [s.name for s in otel.spans()]
    assert names.count("generate_content qwen-image-edit") == 1
    assert span_counts["handles"] == len(names)
