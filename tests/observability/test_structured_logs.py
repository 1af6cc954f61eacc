"""Every SDK log record carries task_id, request_id, attempt, key and model; EVOLINK_LOG turns logging on."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable

import pytest

from evolink_async import EvolinkClient, PollPolicy, QwenImageEdit, RetryPolicy
from evolink_async._core.logging import LOG_FIELDS
from evolink_async.sandbox import Faults, Sandbox

Build = Callable[..., EvolinkClient]


@pytest.mark.evolink_sandbox(time_scale=0.005, seed=4, faults=Faults(server_error_rate=0.3))
async def test_records_carry_the_fields_they_know(
    evolink_sandbox: Sandbox, scaled_client: Build, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="evolink_async")
    requests = [(f"in-{i}", QwenImageEdit(prompt=f"p{i}", image_urls=["https://example.com/a.png"])) for i in range(8)]
    retry = RetryPolicy(max_retries=12, initial_delay=0.001, max_delay=0.01, max_retry_after=5)
    async with scaled_client(evolink_sandbox, retry=retry, poll_policy=PollPolicy().scaled(0.005)) as client:
        async with client.fan_out(requests, max_in_flight=8) as events:
            async for _ in events:
                pass
    records = [r for r in caplog.records if r.name.startswith("evolink_async")]
    assert all(hasattr(r, name) for r in records for name in LOG_FIELDS)
    retries = [r for r in records if r.getMessage().startswith("retrying")]
    assert retries, "the faults caused retries"
    submits = [r for r in retries if "/v1/images/generations" in r.getMessage()]
    queries = [r for r in retries if "/v1/tasks/" in r.getMessage()]
    assert submits
    assert queries
    for record in retries:
        assert record.attempt >= 1
        assert record.request_id.startswith("req-")  # the 5xx answer's id
    for record in submits:
        assert record.key.startswith("in-")
        assert record.model == "qwen-image-edit"
        assert record.task_id is None  # no task yet
    for record in queries:
        assert record.task_id in record.getMessage()
        assert record.key is None
    assert evolink_sandbox.api_key not in str([vars(r) for r in records])


SCRIPT = textwrap.dedent(
    """
    import asyncio
    import evolink_async as evolink
    from evolink_async.sandbox import Faults, Sandbox

    async def main():
        async with Sandbox(time_scale=0.005, seed=4, faults=Faults(server_error_rate=0.3)) as sandbox:
            print(sandbox.api_key)
            async with evolink.EvolinkClient(
                sandbox.api_key, base_url=sandbox.base_url, files_base_url=sandbox.files_base_url,
                poll_policy=evolink.PollPolicy().scaled(0.005),
                retry=evolink.RetryPolicy(max_retries=12, initial_delay=0.001, max_delay=0.01),
            ) as client:
                requests = [(f"in-{i}", evolink.QwenImageEdit(prompt="p", image_urls=["https://example.com/a.png"]))
                            for i in range(6)]
                async with client.fan_out(requests, max_in_flight=6) as events:
                    async for _ in events:
                        pass

    asyncio.run(main())
    """
)


def run_with(level: str) -> tuple[str, str]:
    env = {**os.environ, "EVOLINK_LOG": level}
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip(), result.stderr


def test_evolink_log_info_turns_logging_on_with_fields() -> None:
    key, stderr = run_with("info")
    retries = [line for line in stderr.splitlines() if "retrying" in line]
    assert retries
    assert all(" INFO evolink_async: " in line and "attempt=" in line for line in retries)
    assert any("key=in-" in line and "model=qwen-image-edit" in line for line in retries)
    assert key not in stderr


def test_evolink_log_warning_leaves_info_out() -> None:
    _, stderr = run_with("warning")
    assert "retrying" not in stderr
