"""``python -m evolink_async.sandbox``: ready lines, a working server, a clean stop."""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import Any

import aiohttp
import pytest

from .conftest import SUBMIT, qwen, start_standalone


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_standalone_serves_until_signalled(signum: int) -> None:
    process, env = await start_standalone("--api-key", "sk-evo-cli", "--time-scale", "0.01", "--seed", "4", "--credits", "10")
    try:
        assert env["EVOLINK_API_KEY"] == "sk-evo-cli"
        assert env["EVOLINK_BASE_URL"].startswith("http://127.0.0.1:")
        assert env["EVOLINK_FILES_BASE_URL"].startswith("http://127.0.0.1:")
        headers = {"Authorization": "Bearer sk-evo-cli"}
        async with aiohttp.ClientSession(headers=headers) as http:
            async with http.post(env["EVOLINK_BASE_URL"] + SUBMIT, json=qwen()) as response:
                assert response.status == 200
                assert (await response.json())["task_info"]["estimated_time"] == pytest.approx(0.3)
            async with http.get(env["EVOLINK_FILES_BASE_URL"] + "/api/v1/files/quota") as response:
                assert response.status == 200
            async with http.get(env["EVOLINK_BASE_URL"] + "/_sandbox/ledger") as response:
                ledger: dict[str, Any] = await response.json()
                assert len(ledger["billed"]) == 1
    finally:
        process.send_signal(signum)
        async with asyncio.timeout(10):
            out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    assert b"stopped" in out
    assert b"Traceback" not in err


async def test_standalone_with_faults() -> None:
    process, env = await start_standalone("--server-error-rate", "1", "--seed", "1")
    try:
        headers = {"Authorization": f"Bearer {env['EVOLINK_API_KEY']}"}
        async with (
            aiohttp.ClientSession(headers=headers) as http,
            http.post(env["EVOLINK_BASE_URL"] + SUBMIT, json=qwen()) as response,
        ):
            assert response.status in (500, 502, 503)
    finally:
        process.terminate()
        await process.communicate()


async def test_bad_options_exit_2() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "evolink_async.sandbox", "--server-error-rate", "3",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await process.communicate()
    assert process.returncode == 2
    assert b"argument --server-error-rate: must be at most 1" in err
