"""Telemetry overhead: client CPU per task of a fan-out, side by side, with and without OpenTelemetry.

Contestants (the same ``client.fan_out`` of ``n`` tasks on the lifecycle scenario's short-task
schedule: the submit and two queries per task):

- ``no extra``: the client with telemetry off, exactly the path taken without
  ``opentelemetry-api`` installed (``telemetry_for`` answers ``None``: every hook is one ``is None``
  test; forced here, since this process has the package);
- ``otel API, no SDK``: ``opentelemetry-api`` importable, no SDK configured when the client is
  made: the global providers are OpenTelemetry's proxies, so the client installs no hook (one
  ``isinstance`` test per client), which this measures;
- ``otel SDK, in-memory``: an SDK ``TracerProvider`` (``SimpleSpanProcessor`` into an
  ``InMemorySpanExporter``) and ``MeterProvider`` (``InMemoryMetricReader``): every span recorded;
- ``metrics only``: an SDK ``MeterProvider`` given, no tracer provider (what ``--metrics-port``
  does): the client decides once that it makes no spans, and records every metric;
- ``metrics only, no-op spans``: the same client with span-making forced back on, i.e. the path
  before that decision (a no-op span made, made current and ended per request and per task),
  kept as a contestant so the saving reads as a ratio in one run.

Rounds rotate the order; a contestant's ratio is the median over rounds of its CPU divided by the
``no extra`` CPU of the same round (``paired_ratio``). ``python -m benchmarks --only telemetry``.
"""

from __future__ import annotations

import contextlib
import gc
import os
import time
from collections.abc import Iterator
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from evolink_async import EvolinkClient, QwenImageEdit
from evolink_async._clients import client as client_module

from ._common import Scenario, median, paired_ratio, target
from ._server import BenchServer
from .lifecycle import ESTIMATED, IMAGE, MODEL, PROMPT, SHORT_INTERVAL, SHORT_TIME_SCALE, _Run

NO_EXTRA = "no extra"
API_ONLY = "otel API, no SDK"
SDK = "otel SDK, in-memory"
METRICS_ONLY = "metrics only"
NOOP_SPANS = "metrics only, no-op spans"
CONTESTANTS = (NO_EXTRA, API_ONLY, METRICS_ONLY, NOOP_SPANS, SDK)
QUERY_ENDPOINT = "GET /v1/tasks/{task_id}"
SUBMIT_ENDPOINT = "POST /v1/images/generations"


@contextlib.contextmanager
def _telemetry_off() -> Iterator[None]:
    """Clients built inside take the path of an install without the ``[otel]`` extra."""
    original = client_module.telemetry_for
    client_module.telemetry_for = lambda **_: None  # type: ignore[assignment]
    try:
        yield
    finally:
        client_module.telemetry_for = original


def _client(run: _Run, name: str, providers: dict[str, Any]) -> EvolinkClient:
    server = run.server
    options: dict[str, Any] = {
        "api_key": server.api_key, "base_url": server.base_url, "max_connections": run.concurrency,
        "poll_policy": run.fixed_policy(),
    }
    if name == NO_EXTRA:
        with _telemetry_off():
            return EvolinkClient(**options)
    if name == SDK:
        return EvolinkClient(**options, **providers)
    if name in (METRICS_ONLY, NOOP_SPANS):
        client = EvolinkClient(**options, meter_provider=providers["meter_provider"])
        telemetry = client.telemetry
        assert telemetry is not None
        assert not telemetry.tracing  # the global tracer provider is OpenTelemetry's proxy
        if name == NOOP_SPANS:
            telemetry.tracing = True  # the old path: OpenTelemetry's no-op spans, made and ended
        return client
    return EvolinkClient(**options)


async def _fan_out(run: _Run, name: str, n: int, providers: dict[str, Any]) -> int:
    async with _client(run, name, providers) as client:
        requests = (QwenImageEdit(prompt=PROMPT, image_urls=[IMAGE]) for _ in range(n))
        async with client.fan_out(requests, max_in_flight=run.concurrency, buffer_size=256) as events:
            async for event in events:
                run.events.append((str(event.key), event.kind.value, event.progress))
        if events.summary.outcomes.get("completed") != n:
            raise RuntimeError(f"fan_out ended with {events.summary.outcomes}")
    return n


async def _measure(server: BenchServer, name: str, n: int, interval: float, concurrency: int) -> dict[str, float]:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    providers = {"tracer_provider": tracer_provider, "meter_provider": MeterProvider(metric_readers=[reader])}
    run = _Run(server, interval, concurrency)
    before = await server.stats()
    gc.collect()
    cpu0 = time.process_time()
    await _fan_out(run, name, n, providers)
    cpu = time.process_time() - cpu0
    after = await server.stats()
    queries = after["requests"].get(QUERY_ENDPOINT, 0) - before["requests"].get(QUERY_ENDPOINT, 0)
    submits = after["requests"].get(SUBMIT_ENDPOINT, 0) - before["requests"].get(SUBMIT_ENDPOINT, 0)
    spans = len(exporter.get_finished_spans())
    tracer_provider.shutdown()
    return {
        "cpu_ms_per_task": cpu / n * 1000, "cpu_us_per_request": cpu / max(1, queries + submits) * 1e6,
        "queries_per_task": queries / n, "spans_per_task": spans / n,
    }  # fmt: skip


async def run(quick: bool) -> Scenario:
    # The lifecycle scenario's short-task regime: two queries per task plus the submit, so the
    # per-task costs (where the task span and its metrics sit) weigh most.
    n, rounds, concurrency, time_scale = (300, 2, 100, SHORT_TIME_SCALE) if quick else (1000, 7, 100, SHORT_TIME_SCALE)
    interval = SHORT_INTERVAL * time_scale
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in CONTESTANTS}
    load_before = os.getloadavg()  # a shared machine: the figures are read with its load
    async with BenchServer(
        time_scale=time_scale, seed=11, estimated_times={MODEL: ESTIMATED}, duration_spread=[1.0, 1.0]
    ) as server:
        for name in CONTESTANTS:  # one unmeasured warm-up each
            await _measure(server, name, 50, interval, concurrency)
        for r in range(rounds):
            shift = r % len(CONTESTANTS)
            order = CONTESTANTS[shift:] + CONTESTANTS[:shift]
            for name in order:
                samples[name].append(await _measure(server, name, n, interval, concurrency))
    scenario = Scenario("telemetry", "Telemetry overhead: client CPU per task, with and without OpenTelemetry")
    scenario.params = {"tasks": n, "rounds": rounds, "concurrency": concurrency, "time_scale": time_scale,
                       "query_every_model_s": SHORT_INTERVAL,
                       "load_average_before": [round(x, 2) for x in load_before],
                       "load_average_after": [round(x, 2) for x in os.getloadavg()]}  # fmt: skip
    scenario.columns = [
        "contestant", "client CPU ms/task (median)", f"x {NO_EXTRA}", "client CPU us/request", "x per request",
        "queries/task", "spans/task",
    ]  # fmt: skip
    base = [s["cpu_ms_per_task"] for s in samples[NO_EXTRA]]
    base_request = [s["cpu_us_per_request"] for s in samples[NO_EXTRA]]
    for name in CONTESTANTS:
        cpu = [s["cpu_ms_per_task"] for s in samples[name]]
        scenario.rows.append({
            "contestant": name,
            "client CPU ms/task (median)": round(median(cpu), 3),
            f"x {NO_EXTRA}": round(paired_ratio(cpu, base), 3),
            "client CPU us/request": round(median(s["cpu_us_per_request"] for s in samples[name]), 1),
            "x per request": round(paired_ratio([s["cpu_us_per_request"] for s in samples[name]], base_request), 3),
            "queries/task": round(median(s["queries_per_task"] for s in samples[name]), 2),
            "spans/task": round(median(s["spans_per_task"] for s in samples[name]), 2),
        })  # fmt: skip
    api_ratio = paired_ratio([s["cpu_ms_per_task"] for s in samples[API_ONLY]], base)
    scenario.targets.append(
        target(
            "otel API installed, no SDK: CPU per task vs no extra", goal="<= 1.02", value=round(api_ratio, 3),
            passed=api_ratio <= 1.02,
        )
    )
    spans_ratio = paired_ratio(
        [s["cpu_us_per_request"] for s in samples[NOOP_SPANS]],
        [s["cpu_us_per_request"] for s in samples[METRICS_ONLY]],
    )
    scenario.notes.append(
        f"Metrics only: no-op spans (the old path) cost {spans_ratio:.3f}x the CPU per request of making none."
    )
    scenario.extra["samples"] = samples
    return scenario
