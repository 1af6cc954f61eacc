"""A fan-out under faults, traced: task spans, query spans, retries, and metrics equal to the ledger."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from evolink_async import EventKind, EvolinkClient, PollPolicy, QwenImageEdit, RetryPolicy
from evolink_async.sandbox import Faults, Sandbox

from .conftest import Otel

Build = Callable[..., EvolinkClient]
QUERY = "GET /v1/tasks/{task_id}"
SUBMIT = "POST /v1/images/generations"


def requests(count: int) -> Iterator[tuple[str, QwenImageEdit]]:
    for i in range(count):
        yield f"input-{i}", QwenImageEdit(prompt=f"edit {i}", image_urls=[f"https://example.com/{i}.png"])


def parent_id(span: ReadableSpan) -> int | None:
    return None if span.parent is None else span.parent.span_id


async def test_fan_out_of_twenty_under_faults(evolink_sandbox_factory, scaled_client: Build, otel: Otel) -> None:
    sandbox: Sandbox = await evolink_sandbox_factory(
        time_scale=0.005, seed=11, faults=Faults(server_error_rate=0.12, rate_limit_rate=0.06, task_failure_rate=0.2)
    )
    retry = RetryPolicy(max_retries=12, initial_delay=0.001, max_delay=0.01, max_retry_after=5)
    caller = otel.tracer_provider.get_tracer("the-app")
    kinds: dict[str, EventKind] = {}
    async with scaled_client(
        sandbox, poll_policy=PollPolicy().scaled(0.005), retry=retry,
        tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider,
    ) as client:
        with caller.start_as_current_span("handle-request") as app_span:
            async with client.fan_out(requests(20), max_in_flight=8) as events:
                async for event in events:
                    if event.is_terminal:
                        kinds[str(event.key)] = event.kind

    ledger = sandbox.ledger
    spans = otel.spans()
    task_spans = [s for s in spans if s.name == "generate_content qwen-image-edit"]
    fan_out_spans = [s for s in spans if s.name == "fan_out"]
    http_spans = [s for s in spans if s.kind is SpanKind.CLIENT]

    # Exactly one task span per input, all children of the one fan-out span, itself the app's child.
    assert len(task_spans) == 20 == len(ledger.billed)
    assert len(fan_out_spans) == 1
    fan_out = fan_out_spans[0]
    assert parent_id(fan_out) == app_span.get_span_context().span_id
    assert {s.context.trace_id for s in spans} == {app_span.get_span_context().trace_id}
    assert all(parent_id(s) == fan_out.context.span_id for s in task_spans)

    failed = [k for k, kind in kinds.items() if kind is EventKind.FAILED]
    assert failed, "the seed must fail at least one task"
    assert sorted(s.attributes["evolink.task.id"] for s in task_spans) == sorted(ledger.billed)
    for span in task_spans:
        attributes = span.attributes
        assert attributes["gen_ai.operation.name"] == "generate_content"
        assert attributes["gen_ai.provider.name"] == "evolink"
        assert attributes["gen_ai.request.model"] == "qwen-image-edit"
        assert attributes["gen_ai.output.type"] == "image"
        assert attributes["evolink.credits.reserved"] == ledger.charges[attributes["evolink.task.id"]]
        key = attributes["evolink.fan_out.key"]
        assert attributes["evolink.task.status"] == ("failed" if key in failed else "completed")
        assert attributes["evolink.updates.by_callback"] == 0
        # Every successful query of this task is one update by query.
        queries = [s for s in http_spans if parent_id(s) == span.context.span_id and s.attributes["url.template"] == "/v1/tasks/{task_id}"]
        assert queries, "each task was queried under its span"
        answered = [s for s in queries if s.attributes.get("http.response.status_code") == 200]
        assert attributes["evolink.updates.by_query"] == len(answered)
        if key in failed:
            assert span.status.status_code is StatusCode.ERROR
            assert attributes["error.type"]
        else:
            assert "error.type" not in attributes
        event_names = [e.name for e in span.events]
        assert event_names[0] == "evolink.task.status"
        assert event_names.count("evolink.task.status") >= 2  # the submit's, then the final status

    # Progress the queries saw is on the spans, as events with the percentage.
    progress = [e for s in task_spans for e in s.events if e.name == "evolink.task.progress"]
    assert progress, "some queries saw a task running"
    assert all(0 <= e.attributes["evolink.task.progress_percent"] < 100 for e in progress)

    # One client span per HTTP exchange: as many as the sandbox counted, each a task span's child.
    assert len(http_spans) == ledger.requests[QUERY] + ledger.requests[SUBMIT]
    task_ids = {s.context.span_id for s in task_spans}
    assert all(parent_id(s) in task_ids for s in http_spans)
    for span in http_spans:
        assert span.attributes["server.address"] == "127.0.0.1"
        assert span.attributes["http.request.method"] in ("GET", "POST")
        assert span.attributes["evolink.request_id"].startswith("req-")
    # Retries are spans of their own: one per injected fault, each after a failed attempt.
    retries = [s for s in http_spans if s.attributes["evolink.retry.attempt"] >= 1]
    faults = sum(ledger.faults.values())
    assert faults > 0
    assert len(retries) == faults
    assert sum(1 for s in http_spans if s.status.status_code is StatusCode.ERROR) == faults

    # Metrics equal the ledger's counts.
    assert otel.total("evolink.queries") == ledger.requests[QUERY]
    assert otel.total("evolink.http.retries") == faults
    assert otel.total("evolink.credits.reserved") == ledger.credits_charged
    assert otel.total("evolink.tasks.in_flight") == 0
    assert otel.total("evolink.task.duration") == 20
    assert otel.total("evolink.task.duration", outcome="failed") == len(failed)
    assert otel.total("gen_ai.client.operation.duration") == 20
    assert sandbox.api_key not in otel.everything_as_text()


async def test_submit_inside_the_callers_span_continues_its_trace(
    evolink_sandbox: Sandbox, scaled_client: Build, otel: Otel
) -> None:
    caller = otel.tracer_provider.get_tracer("the-app")
    async with scaled_client(
        evolink_sandbox, tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider
    ) as client:
        with caller.start_as_current_span("handle-request") as app_span:
            task = await client.images.submit(QwenImageEdit(prompt="x", image_urls=["https://example.com/a.png"]))
        await client.tasks.wait(task, timeout=30)
    spans = otel.spans()
    (task_span,) = [s for s in spans if s.name.startswith("generate_content")]
    assert parent_id(task_span) == app_span.get_span_context().span_id
    assert task_span.context.trace_id == app_span.get_span_context().trace_id
    assert task_span.attributes["evolink.task.status"] == "completed"
    assert "evolink.fan_out.key" not in task_span.attributes
    assert otel.total("evolink.tasks.in_flight") == 0


async def test_a_task_nobody_watches_ends_its_span_at_close(
    evolink_sandbox: Sandbox, scaled_client: Build, otel: Otel
) -> None:
    async with scaled_client(
        evolink_sandbox, tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider
    ) as client:
        await client.images.submit(QwenImageEdit(prompt="x", image_urls=["https://example.com/a.png"]))
        assert not [s for s in otel.spans() if s.name.startswith("generate_content")]  # still open
    (task_span,) = [s for s in otel.spans() if s.name.startswith("generate_content")]
    assert task_span.attributes["evolink.task.status"] == "unknown"
    assert otel.total("evolink.tasks.in_flight") == 0
