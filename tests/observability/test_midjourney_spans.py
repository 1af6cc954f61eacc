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
