"""Callbacks, traced: each pushed callback's processing is a span linked to its task's span."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

import evolink_async as evolink
from evolink_async.sandbox import Sandbox

from .conftest import Otel


@contextlib.asynccontextmanager
async def served_receiver() -> AsyncIterator[evolink.CallbackReceiver]:
    """A receiver at /hooks of an aiohttp server on loopback (bound first: its URL names the port)."""
    probe = web.AppRunner(web.Application())
    await probe.setup()
    site = web.TCPSite(probe, "127.0.0.1", 0)
    await site.start()
    port = probe.addresses[0][1]
    await probe.cleanup()
    receiver = evolink.CallbackReceiver(f"http://127.0.0.1:{port}/hooks", allow_local=True)
    app = web.Application()
    app.add_subapp("/hooks", receiver.aiohttp_app())
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield receiver
    finally:
        await runner.cleanup()


async def test_callbacks_are_linked_to_their_task_spans(evolink_sandbox_factory, otel: Otel) -> None:
    # callback_timeout: 10 s real per POST (the default 10 API s is 0.1 s here, missed on a loaded machine).
    sandbox: Sandbox = await evolink_sandbox_factory(time_scale=0.01, duration_spread=(0.5, 1.0), callback_timeout=1000.0)
    async with served_receiver() as receiver, evolink.EvolinkClient(
        sandbox.api_key, base_url=sandbox.base_url, files_base_url=sandbox.files_base_url, callbacks=receiver,
        poll_policy=evolink.PollPolicy(first_query=6.0).scaled(0.01),
        tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider,
    ) as client:
        requests = [(i, evolink.RemoveBackground(image_urls=["https://example.com/in.png"])) for i in range(4)]
        async with client.fan_out(requests, max_in_flight=4) as events:
            async for _ in events:
                pass
    spans = otel.spans()
    task_spans = {s.context.span_id: s for s in spans if s.name.startswith("generate_content")}
    callbacks = [s for s in spans if s.name == "process evolink.callback"]
    assert len(task_spans) == 4
    by_callback = sum(s.attributes["evolink.updates.by_callback"] for s in task_spans.values())
    assert by_callback >= 4  # every task ended by its callback at least
    assert len(callbacks) == by_callback
    for span in callbacks:
        (link,) = span.links
        task_span = task_spans[link.context.span_id]
        assert span.attributes["evolink.task.id"] == task_span.attributes["evolink.task.id"]
