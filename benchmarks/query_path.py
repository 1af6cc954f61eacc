"""The per-query path with and without OpenTelemetry, each contestant in a process of its own.

Every contestant is a fresh ``python -m benchmarks.query_path --child MODE`` process that submits
one task, waits for its end, then sends ``queries`` ``client.tasks.get`` of it from 16 concurrent
callers and reports its own CPU per request over those (after an unmeasured warm-up). Modes:

- ``not installed``: ``opentelemetry`` made unimportable before the SDK is imported (what a user
  without the ``[otel]`` extra runs; the child checks that no ``opentelemetry`` module got loaded);
- ``API, unconfigured``: ``opentelemetry-api`` importable, no SDK configured (the client installs
  no hook);
- ``metrics only``: an SDK ``MeterProvider`` given, no tracer provider (``--metrics-port``): the
  queries are counted, no span is made;
- ``metrics only, no-op spans``: the same with span-making forced on, the path before the client
  decided once that spans are off (OpenTelemetry's no-op span made, made current and ended per
  request).

Rounds rotate the order; a ratio is the median over rounds of a contestant's CPU per request
divided by the same round's ``not installed`` figure. The machine's load average is reported with
them (a shared machine). ``python -m benchmarks --only query_path``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from typing import Any

from ._common import Scenario, median, paired_ratio, target
from ._server import BenchServer

NOT_INSTALLED = "not installed"
API_ONLY = "API, unconfigured"
METRICS_ONLY = "metrics only"
NOOP_SPANS = "metrics only, no-op spans"
CONTESTANTS = (NOT_INSTALLED, API_ONLY, METRICS_ONLY, NOOP_SPANS)
CONCURRENCY = 16
WARM_UP = 300


async def _child(mode: str, base_url: str, files_base_url: str, api_key: str, queries: int) -> dict[str, Any]:
    import evolink_async as evolink

    options: dict[str, Any] = {}
    if mode in (METRICS_ONLY, NOOP_SPANS):
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader

        options["meter_provider"] = MeterProvider(metric_readers=[InMemoryMetricReader()])
    async with evolink.EvolinkClient(
        api_key, base_url=base_url, files_base_url=files_base_url, max_connections=CONCURRENCY,
        poll_policy=evolink.PollPolicy().scaled(0.001), **options,
    ) as client:  # fmt: skip
        telemetry = client.telemetry
        if mode == NOOP_SPANS:
            assert telemetry is not None
            telemetry.tracing = True
        task = await client.images.submit(evolink.QwenImageEdit(prompt="p", image_urls=["https://example.com/a.png"]))
        task = await client.tasks.wait(task, timeout=60)

        async def caller(count: int) -> None:
            for _ in range(count):
                await client.tasks.get(task.id)

        async def send(total: int) -> None:
            async with asyncio.TaskGroup() as group:
                for index in range(CONCURRENCY):
                    group.create_task(caller(total // CONCURRENCY + (index < total % CONCURRENCY)))

        await send(WARM_UP)
        cpu0 = time.process_time()
        await send(queries)
        cpu = time.process_time() - cpu0
    loaded = any(name == "opentelemetry" or name.startswith("opentelemetry.")
                 for name, module in sys.modules.items() if module is not None)  # fmt: skip
    return {"cpu_us_per_request": cpu / queries * 1e6, "hooks": telemetry is not None, "otel_loaded": loaded}


async def _measure(server: BenchServer, mode: str, queries: int) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "benchmarks.query_path", "--child", mode, "--base-url", server.base_url,
        "--files-base-url", server.files_base_url, "--api-key", server.api_key, "--queries", str(queries),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(process.communicate(), 300)
    if process.returncode != 0:
        raise RuntimeError(f"{mode}: the child failed ({process.returncode})")
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    expected_hooks = mode in (METRICS_ONLY, NOOP_SPANS)
    if result["hooks"] != expected_hooks or result["otel_loaded"] == (mode == NOT_INSTALLED):
        raise RuntimeError(f"{mode}: not the path it stands for ({result})")
    return result


async def run(quick: bool) -> Scenario:
    queries, rounds = (1000, 2) if quick else (4000, 7)
    samples: dict[str, list[float]] = {name: [] for name in CONTESTANTS}
    load_before = os.getloadavg()
    async with BenchServer(time_scale=0.001, seed=5) as server:
        for r in range(rounds):
            shift = r % len(CONTESTANTS)
            for mode in CONTESTANTS[shift:] + CONTESTANTS[:shift]:
                samples[mode].append((await _measure(server, mode, queries))["cpu_us_per_request"])
    scenario = Scenario("query_path", "The per-query path: client CPU per tasks.get, with and without OpenTelemetry")
    scenario.params = {"queries": queries, "rounds": rounds, "concurrency": CONCURRENCY,
                       "load_average_before": [round(x, 2) for x in load_before],
                       "load_average_after": [round(x, 2) for x in os.getloadavg()]}  # fmt: skip
    scenario.columns = ["contestant", "client CPU us/request (median)", f"x {NOT_INSTALLED}"]
    base = samples[NOT_INSTALLED]
    for mode in CONTESTANTS:
        scenario.rows.append({
            "contestant": mode,
            "client CPU us/request (median)": round(median(samples[mode]), 1),
            f"x {NOT_INSTALLED}": round(paired_ratio(samples[mode], base), 3),
        })  # fmt: skip
    api_ratio = paired_ratio(samples[API_ONLY], base)
    name = "otel API installed, unconfigured: CPU per query vs not installed"
    scenario.targets.append(target(name, goal="<= 1.02", value=round(api_ratio, 3), passed=api_ratio <= 1.02))
    spans_ratio = paired_ratio(samples[NOOP_SPANS], samples[METRICS_ONLY])
    scenario.notes.append(f"Metrics only: no-op spans (the path before) cost {spans_ratio:.3f}x making none.")
    scenario.extra["samples"] = samples
    return scenario


def _main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", choices=CONTESTANTS, required=True)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--files-base-url", required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--queries", type=int, required=True)
    args = parser.parse_args()
    if args.child == NOT_INSTALLED:
        sys.modules["opentelemetry"] = None  # type: ignore[assignment]  # `import opentelemetry` raises
    result = asyncio.run(_child(args.child, args.base_url, args.files_base_url, args.api_key, args.queries))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    _main()
