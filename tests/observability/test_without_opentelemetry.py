"""The SDK with ``opentelemetry`` not importable: no hook runs, a fan-out works as before."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    sys.modules["opentelemetry"] = None  # `import opentelemetry` now raises ImportError

    import evolink_async as evolink
    from evolink_async._core import telemetry
    from evolink_async.sandbox import Sandbox

    async def main():
        assert not telemetry.OTEL_AVAILABLE
        async with Sandbox(time_scale=0.005, seed=3) as sandbox:
            async with evolink.EvolinkClient(
                sandbox.api_key, base_url=sandbox.base_url, files_base_url=sandbox.files_base_url,
                poll_policy=evolink.PollPolicy().scaled(0.005),
            ) as client:
                assert client._transport.telemetry is None
                requests = [evolink.QwenImageEdit(prompt=f"p{i}", image_urls=["https://example.com/a.png"])
                            for i in range(5)]
                done = 0
                async with client.fan_out(requests, max_in_flight=3) as events:
                    async for event in events:
                        done += event.kind is evolink.EventKind.COMPLETED
        assert not any(name == "opentelemetry" or name.startswith("opentelemetry.")
                       for name, module in sys.modules.items() if module is not None)
        print("completed", done, "billed", len(sandbox.ledger.billed))

    asyncio.run(main())
    """
)


def test_core_works_without_opentelemetry() -> None:
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["completed", "5", "billed", "5"]
