"""A Midjourney-proxy fan-out, traced: task spans of provider ``midjourney_proxy``, bulk queries counted."""

from __future__ import annotations

from evolink_async import EventKind, Imagine, MidjourneyClient, PollPolicy, RetryPolicy
from evolink_async.sandbox import MidjourneyOptions, Sandbox

from .conftest import Otel

KEY = "mj-otel-secret-0123456789abcdef"


async def test_mj_fan_out_spans_and_query_counts(otel: Otel) -> None:
    async with Sandbox(time_scale=0.005, seed=5, midjourney=MidjourneyOptions(api_key=KEY)) as box:
        async with MidjourneyClient(
            KEY, base_url=box.mj_base_url, auth="mj-api-secret", poll_policy=PollPolicy().scaled(0.005),
            retry=RetryPolicy(max_retries=4, initial_delay=0.001, max_delay=0.01),
            tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider,
        ) as mj:
            kinds = []
            async with mj.fan_out([Imagine(prompt=f"a fox {i}") for i in range(6)], max_in_flight=6) as events:
                async for event in events:
                    if event.is_terminal:
                        kinds.append(event.kind)
        ledger = box.ledger
    assert kinds == [EventKind.COMPLETED] * 6
    task_spans = [s for s in otel.spans() if s.name == "generate_content midjourney"]
    assert len(task_spans) == 6
    assert {s.attributes["gen_ai.provider.name"] for s in task_spans} == {"midjourney_proxy"}
    assert {s.attributes["evolink.task.status"] for s in task_spans} == {"completed"}
    assert sorted(s.attributes["evolink.task.id"] for s in task_spans) == sorted(ledger.billed)
    query_requests = sum(n for endpoint, n in ledger.requests.items()
                         if endpoint.endswith(("/task/{task_id}/fetch", "/task/list-by-condition")))
    assert query_requests > 0
    assert otel.total("evolink.queries") == query_requests
    assert otel.total("evolink.tasks.in_flight") == 0
    assert KEY not in otel.everything_as_text()


async def test_bulk_queries_hang_under_each_task_span(otel: Otel) -> None:
    """One ``list-by-condition`` request answers for many tasks: each task gets a ``query_many``
    span under its own span, and the request's HTTP span links to every one of them."""
    async with Sandbox(time_scale=0.005, seed=8, midjourney=MidjourneyOptions(api_key=KEY)) as box:
        async with MidjourneyClient(
            KEY, base_url=box.mj_base_url, auth="mj-api-secret", poll_policy=PollPolicy().scaled(0.005),
            tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider,
        ) as mj:
            async with mj.fan_out([Imagine(prompt=f"a heron {i}") for i in range(8)], max_in_flight=8) as events:
                async for _ in events:
                    pass
        bulk_requests = sum(n for endpoint, n in box.ledger.requests.items() if endpoint.endswith("/list-by-condition"))
    assert bulk_requests > 0  # the scenario polls in bulk, or it tests nothing
    spans = otel.spans()
    by_id = {s.context.span_id: s for s in spans}
    task_spans = {s.attributes["evolink.task.id"]: s for s in spans if s.name == "generate_content midjourney"}
    queries = [s for s in spans if s.name == "query_many"]
    bulk_http = [s for s in spans if s.name.endswith("/task/list-by-condition")]
    assert len(task_spans) == 8
    assert len(bulk_http) == bulk_requests
    # Every bulk query span is the child of the task span it is about, in that task's trace.
    for query in queries:
        task_span = task_spans[query.attributes["evolink.task.id"]]
        assert query.parent is not None
        assert query.parent.span_id == task_span.context.span_id
        assert query.context.trace_id == task_span.context.trace_id
        assert query.attributes["evolink.query.batch_size"] >= 1
    # Each task was polled in bulk at least once, and saw its end that way or by a single fetch.
    assert {q.attributes["evolink.task.id"] for q in queries} == set(task_spans)
    # The shared HTTP span is no task's child; it links to the query spans it answered.
    linked: set[int] = set()
    for http in bulk_http:
        assert http.parent is None or by_id[http.parent.span_id].name != "generate_content midjourney"
        assert http.links, http.name
        for link in http.links:
            assert by_id[link.context.span_id].name == "query_many"
            linked.add(link.context.span_id)
    assert linked == {q.context.span_id for q in queries}
    assert KEY not in otel.everything_as_text()
