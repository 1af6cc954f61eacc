"""The global providers: unconfigured, no hook runs (as without the extra); configured, they are used."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    import evolink_async as evolink
    from evolink_async.sandbox import Sandbox

    CONFIGURE = sys.argv[1] == "configured"
    if CONFIGURE:
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)

    async def main():
        async with Sandbox(time_scale=0.005, seed=3) as sandbox:
            async with evolink.EvolinkClient(
                sandbox.api_key, base_url=sandbox.base_url, files_base_url=sandbox.files_base_url,
                poll_policy=evolink.PollPolicy().scaled(0.005),
            ) as client:
                print("hooks", client._transport.telemetry is not None)
                task = await client.images.submit(
                    evolink.QwenImageEdit(prompt="p", image_urls=["https://example.com/a.png"]))
                await client.tasks.wait(task, timeout=30)
        if CONFIGURE:
            print("task_spans", sum(s.name.startswith("generate_content") for s in exporter.get_finished_spans()))

    asyncio.run(main())
    """
)


def run(mode: str) -> list[str]:
    result = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_unconfigured_opentelemetry_installs_no_hook() -> None:
    assert run("unconfigured") == ["hooks", "False"]


def test_a_global_sdk_configured_first_is_used() -> None:
    assert run("configured") == ["hooks", "True", "task_spans", "1"]
