"""A fleet worker observed: its ``--metrics-port`` scraped over HTTP mid-run, and its run as one span."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import anyio
import anyio.abc
import pytest

from evolink_async import EvolinkClient, PollPolicy, RetryPolicy
from evolink_async.batch._pg_store import PgJournal
from evolink_async.batch._worker import Worker, WorkerOptions
from evolink_async.sandbox import Sandbox
from tests.helpers.fleet_cli import ENV, manifest, plan, work_argv
from tests.helpers.otel import Otel, in_memory_otel
from tests.helpers.prometheus import parse_totals

pytestmark = pytest.mark.evolink_sandbox(time_scale=0.01)

LISTENING = re.compile(rb"metrics on (http://127\.0\.0\.1:\d+/metrics)")
#: What a user graphs for a fleet: tasks in flight, their durations, queries, credits.
FAMILIES = ("evolink_tasks_in_flight", "evolink_queries_total", "evolink_credits_reserved_total",
            "evolink_task_duration_count", "gen_ai_client_operation_duration_count")  # fmt: skip


@pytest.fixture
def otel() -> Iterator[Otel]:
    with in_memory_otel() as providers:
        yield providers


async def test_a_scrape_during_batch_work_shows_the_fleet_metrics(
    evolink_sandbox: Sandbox, journal_url: str, tmp_path: Path
) -> None:
    planned = await plan(journal_url, manifest(tmp_path / "m.jsonl", 40))
    assert planned.returncode == 0, planned.stderr.decode()
    argv = work_argv(tmp_path, journal_url, evolink_sandbox, None, "--max-in-flight", "8", "--metrics-port", "0")
    stderr = bytearray()
    scrapes: list[dict[str, float]] = []
    types: set[tuple[str, str]] = set()
    with anyio.fail_after(120):
        async with await anyio.open_process(argv, env=ENV) as worker:
            assert worker.stdout is not None
            assert worker.stderr is not None
            # The port is the one the worker printed (0: any free one): no race for a fixed port.
            while (found := LISTENING.search(stderr)) is None:
                stderr.extend(await worker.stderr.receive())
            url = found.group(1).decode()

            async def drain(stream: anyio.abc.ByteReceiveStream, into: bytearray | None) -> None:
                async for chunk in stream:
                    if into is not None:
                        into.extend(chunk)

            async with anyio.create_task_group() as group:
                group.start_soon(drain, worker.stdout, None)
                group.start_soon(drain, worker.stderr, stderr)
                async with aiohttp.ClientSession() as session:
                    # Mid-run: tasks in flight while others have already ended (durations recorded).
                    while not scrapes or not (
                        scrapes[-1].get("evolink_tasks_in_flight", 0) > 0
                        and scrapes[-1].get("evolink_task_duration_count", 0) > 0
                    ):
                        try:
                            async with session.get(url) as resp:
                                assert resp.status == 200
                                assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
                                text = await resp.text()
                        except aiohttp.ClientConnectionError:
                            break  # the run ended (its server with it) before a mid-run scrape: fails below
                        scrapes.append(parse_totals(text))
                        types |= {tuple(line.split()[2:4]) for line in text.splitlines() if line.startswith("# TYPE ")}
                        await anyio.sleep(0.02)
                code = await worker.wait()
    assert code == 0, stderr.decode()
    assert scrapes, "no scrape answered"
    mid_run = scrapes[-1]
    assert mid_run.get("evolink_tasks_in_flight", 0) > 0, scrapes[-3:]
    assert all(mid_run.get(name, 0) > 0 for name in FAMILIES), mid_run
    assert 0 < mid_run["evolink_tasks_in_flight"] <= 8
    assert {("evolink_tasks_in_flight", "gauge"), ("evolink_queries_total", "counter"),
            ("evolink_task_duration", "histogram")} <= types  # fmt: skip
    summary = json.loads(stderr.decode().strip().splitlines()[-1])
    assert summary["submitted"] == 40
    ledger = evolink_sandbox.ledger
    # Mid-run counts are below the run's totals, never above (no query or credit counted twice).
    assert mid_run["evolink_task_duration_count"] < 40
    assert mid_run["evolink_queries_total"] <= ledger.requests["GET /v1/tasks/{task_id}"]
    assert mid_run["evolink_credits_reserved_total"] <= ledger.credits_charged


async def test_a_worker_run_is_one_span_over_its_tasks(
    evolink_sandbox: Sandbox, journal_url: str, tmp_path: Path, otel: Otel
) -> None:
    planned = await plan(journal_url, manifest(tmp_path / "m.jsonl", 6))
    assert planned.returncode == 0, planned.stderr.decode()
    async with EvolinkClient(
        evolink_sandbox.api_key, base_url=evolink_sandbox.base_url, files_base_url=evolink_sandbox.files_base_url,
        poll_policy=PollPolicy().scaled(0.01), retry=RetryPolicy(max_retries=8, initial_delay=0.005, max_delay=0.05),
        tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider,
    ) as client, PgJournal(journal_url, connections=2) as journal:
        options = WorkerOptions(worker_id="worker-a", lease=2, poll_interval=0.05, wal=tmp_path / "w.wal")
        summary = await Worker(client, journal, options).run()
    assert summary.submitted == 6
    spans = otel.spans()
    runs = [s for s in spans if s.name == "fleet_worker"]
    assert len(runs) == 1
    run = runs[0]
    assert run.parent is None
    fan_outs = [s for s in spans if s.name == "fan_out"]
    assert len(fan_outs) == 1
    assert fan_outs[0].parent is not None
    assert fan_outs[0].parent.span_id == run.context.span_id
    task_spans = [s for s in spans if s.name == "generate_content qwen-image-edit"]
    assert len(task_spans) == 6 == len(evolink_sandbox.ledger.billed)
    assert all(s.parent is not None and s.parent.span_id == fan_outs[0].context.span_id for s in task_spans)
    assert {s.context.trace_id for s in spans} == {run.context.trace_id}
    assert run.attributes["evolink.worker.id"] == "worker-a"
    assert run.attributes["evolink.worker.submitted"] == 6
    assert run.attributes["evolink.worker.completed"] == 6
