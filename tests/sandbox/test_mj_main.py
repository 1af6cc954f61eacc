"""The MJ side of ``python -m evolink_async.sandbox`` and of the pytest plugin."""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

import aiohttp
import pytest

from evolink_async._protocols.midjourney.api import normalize_prefix
from evolink_async.sandbox import MidjourneyOptions, Sandbox
from evolink_async.sandbox.__main__ import _parser
from evolink_async.sandbox.midjourney._cli import mj_options

from .conftest import start_standalone


async def test_standalone_prints_mj_lines_and_serves_them() -> None:
    process, env = await start_standalone("--time-scale", "0.01", "--mj-api-key", "mj-k", "--mj-failure-status", "FAILED")
    try:
        assert env["MJ_PROXY_API_KEY"] == "mj-k"
        assert env["MJ_PROXY_BASE_URL"] == env["EVOLINK_BASE_URL"]
        async with aiohttp.ClientSession(headers={"mj-api-secret": "mj-k"}) as http, asyncio.timeout(10):
            async with http.post(env["MJ_PROXY_BASE_URL"] + "/mj/submit/imagine", json={"prompt": "x"}) as response:
                assert (await response.json())["code"] == 1
            async with http.get(env["EVOLINK_BASE_URL"] + "/_sandbox/ledger") as response:
                assert len((await response.json())["mj_tasks"]) == 1
    finally:
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10):
            await process.communicate()
    assert process.returncode == 0


async def test_standalone_without_mj() -> None:
    process, env = await start_standalone("--no-mj")
    try:
        assert "MJ_PROXY_BASE_URL" not in env
    finally:
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10):
            await process.communicate()


def test_flags_build_the_options() -> None:
    args = _parser().parse_args([
        "--mj-prefix", "/v1/mj", "--mj-auth", "bearer", "--mj-unknown-fetch", "no_content",
        "--mj-failure-progress-100", "--mj-no-list-by-condition", "--mj-no-cancel", "--mj-banned-word", "Foo",
        "--mj-banned-word", "bar", "--mj-hook-delay", "1", "2", "--mj-queue-full-code", "9", "--mj-blank-status-for", "15",
    ])  # fmt: skip
    options = mj_options(args)
    assert options == MidjourneyOptions(
        prefix="/v1/mj", auth="bearer", unknown_fetch="no_content", failure_progress="100%",
        list_by_condition=False, cancel=False, banned_words=("foo", "bar"), hook_delay=(1.0, 2.0),
        queue_full_code=9, blank_status_for=15.0,
    )  # fmt: skip


@pytest.mark.parametrize(("given", "served"), [("mj", "/mj"), ("/v1/mj/", "/v1/mj"), ("/", ""), ("", "")])
def test_the_prefix_is_read_as_the_client_reads_its_path_prefix(given: str, served: str) -> None:
    assert MidjourneyOptions(prefix=given).prefix == served == normalize_prefix(given)


def test_options_are_validated() -> None:
    with pytest.raises(ValueError, match="prefix"):
        MidjourneyOptions(prefix="m j")
    with pytest.raises(ValueError, match="prefix"):
        MidjourneyOptions(prefix=None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown_fetch"):
        MidjourneyOptions(unknown_fetch="nope")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="hook_drop_rate"):
        MidjourneyOptions(hook_drop_rate=0.8, hook_duplicate_rate=0.5)
    with pytest.raises(ValueError, match="concurrency"):
        MidjourneyOptions(concurrency=0)


@pytest.mark.evolink_sandbox(midjourney=MidjourneyOptions(failure_status="FAILED"))
async def test_plugin_fixtures(mj_sandbox_env: Sandbox, evolink_sandbox: Sandbox) -> None:
    assert mj_sandbox_env is evolink_sandbox
    assert os.environ["MJ_PROXY_BASE_URL"] == mj_sandbox_env.mj_base_url
    assert os.environ["MJ_PROXY_API_KEY"] == mj_sandbox_env.mj_api_key
    assert mj_sandbox_env.config.midjourney.failure_status == "FAILED"
    assert mj_sandbox_env.config.time_scale == 0.01


async def test_mj_sandbox_fixture(mj_sandbox: Sandbox, mj_for: Any) -> None:
    task_id = await mj_for(mj_sandbox).imagine()
    assert mj_sandbox.ledger.billed == [task_id]
