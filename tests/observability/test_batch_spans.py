"""A batch run, traced: one ``batch`` span, the parent of the run's fan-out (and through it of every
input's task span) and of its uploads; everything in the caller's trace."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

from evolink_async import EvolinkClient, MidjourneyClient, PollPolicy
from evolink_async.batch import Batch, BatchSpec, PromptBatch, PromptSource, PromptSpec
from evolink_async.sandbox import MidjourneyOptions, Sandbox
from tests.helpers.images import write_png

from .conftest import Otel

MJ_KEY = "mj-batch-otel-0123456789abcdef"


def parent_id(span: ReadableSpan) -> int | None:
    return None if span.parent is None else span.parent.span_id


def one(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, [s.name for s in spans]
    return found[0]


async def test_a_batch_run_is_one_span_over_its_inputs(
    evolink_sandbox: Sandbox, scaled_client: Callable[..., EvolinkClient], otel: Otel, tmp_path: Path
) -> None:
    for index in range(3):
        write_png(tmp_path / "in" / f"{index}.png", shade=index * 40)
    (tmp_path / "in" / "broken.png").write_text("not an image")
    spec = BatchSpec(model="qwen-image-edit", prompt="autumn", input_dir=tmp_path / "in", output_dir=tmp_path / "out")
    caller = otel.tracer_provider.get_tracer("the-app")
    async with scaled_client(
        evolink_sandbox, tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider
    ) as client:
        with caller.start_as_current_span("nightly-job") as job:
            summary = await Batch(client, spec).run()
    assert summary.submitted == 3
    spans = otel.spans()
    batch = one(spans, "batch")
    fan_out = one(spans, "fan_out")
    task_spans = [s for s in spans if s.name == "generate_content qwen-image-edit"]
    uploads = [s for s in spans if s.kind is SpanKind.CLIENT and "/files/upload/" in s.name]

    assert parent_id(batch) == job.get_span_context().span_id
    assert {s.context.trace_id for s in spans} == {job.get_span_context().trace_id}
    assert parent_id(fan_out) == batch.context.span_id
    assert len(task_spans) == 3 == len(evolink_sandbox.ledger.billed)
    assert all(parent_id(s) == fan_out.context.span_id for s in task_spans)
    assert len(uploads) == evolink_sandbox.ledger.files_stored > 0
    assert all(parent_id(s) == batch.context.span_id for s in uploads)
    # Every span of the run is the batch span or one of its descendants.
    by_id = {s.context.span_id: s for s in spans}

    def under_batch(span: ReadableSpan) -> bool:
        while span.parent is not None and span is not batch:
            span = by_id[span.parent.span_id]
        return span is batch

    assert all(under_batch(s) for s in spans if s is not by_id[job.get_span_context().span_id])
    assert batch.attributes["gen_ai.request.model"] == "qwen-image-edit"
    assert batch.attributes["evolink.batch.inputs"] == 4
    assert batch.attributes["evolink.batch.submitted"] == 3
    assert batch.attributes["evolink.batch.failed"] == 1
    assert batch.attributes["evolink.batch.downloaded"] == 3
    assert not any(str(tmp_path) in str(value) for value in batch.attributes.values())  # counts, not paths


async def test_a_prompt_batch_is_one_span_too(otel: Otel, tmp_path: Path) -> None:
    spec = PromptSpec(prompts=PromptSource.repeat("a red fox", 3), output_dir=tmp_path / "foxes")
    async with Sandbox(time_scale=0.005, seed=6, midjourney=MidjourneyOptions(api_key=MJ_KEY)) as box:
        async with MidjourneyClient(
            MJ_KEY, base_url=box.mj_base_url, auth="mj-api-secret", poll_policy=PollPolicy().scaled(0.005),
            tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider,
        ) as mj:
            summary = await PromptBatch(mj, spec).run()
    assert summary.submitted == 3
    spans = otel.spans()
    batch = one(spans, "batch")
    fan_out = one(spans, "fan_out")
    assert batch.parent is None
    assert parent_id(fan_out) == batch.context.span_id
    task_spans = [s for s in spans if s.name == "generate_content midjourney"]
    assert len(task_spans) == 3
    assert all(parent_id(s) == fan_out.context.span_id for s in task_spans)
    # In the batch's trace all but the bulk queries' HTTP requests: each served several tasks, so it
    # is a root of its own, linked to the query span it opened under each of those tasks' spans.
    elsewhere = [s for s in spans if s.context.trace_id != batch.context.trace_id]
    assert all(s.name.endswith("/task/list-by-condition") and s.parent is None for s in elsewhere)
    assert all(link.context.trace_id == batch.context.trace_id for s in elsewhere for link in s.links)
    assert batch.attributes["evolink.batch.submitted"] == 3
