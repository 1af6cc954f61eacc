"""The standalone sandbox tells its user where its ledger is: in ``--help`` and at start-up."""

from __future__ import annotations

import asyncio
import shlex
import sys

import aiohttp

from .conftest import SUBMIT, qwen

LEDGER = "/_sandbox/ledger"


async def _lines_until_ready(*args: str) -> tuple[asyncio.subprocess.Process, list[str]]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "evolink_async", "sandbox", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, stdin=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert process.stdout is not None
    lines: list[str] = []
    async with asyncio.timeout(30):
        while not lines or not lines[-1].startswith("ready"):
            line = (await process.stdout.readline()).decode()
            assert line, f"the sandbox exited before it was ready: {lines}"
            lines.append(line.rstrip("\n"))
    return process, lines


async def test_start_up_output_names_the_ledger_url_in_a_line_a_shell_can_eval() -> None:
    process, lines = await _lines_until_ready("--time-scale", "0.01", "--seed", "2")
    try:
        before_ready = lines[:-1]
        env = dict(shlex.split(line)[1].split("=", 1) for line in before_ready if line.startswith("export "))
        mentions = [line for line in before_ready if LEDGER in line]
        assert len(mentions) == 1, lines
        assert mentions[0].startswith("#"), "a line before `ready` that a shell cannot eval"
        url = mentions[0].split()[-1]
        assert url == env["EVOLINK_BASE_URL"] + LEDGER
        headers = {"Authorization": f"Bearer {env['EVOLINK_API_KEY']}"}
        async with aiohttp.ClientSession(headers=headers) as http:
            async with http.post(env["EVOLINK_BASE_URL"] + SUBMIT, json=qwen()) as response:
                assert response.status == 200
                task_id = (await response.json())["id"]
            async with http.get(url) as response:
                assert response.status == 200
                assert (await response.json())["billed"] == [task_id]
    finally:
        process.terminate()
        async with asyncio.timeout(10):
            await process.communicate()


async def test_help_describes_the_ledger() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "evolink_async", "sandbox", "--help",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    async with asyncio.timeout(30):
        out, _ = await process.communicate()
    assert process.returncode == 0
    shown = " ".join(out.decode().split())  # argparse wraps the epilog
    assert f"GET {{base_url}}{LEDGER}" in shown
    for field in ("billed", "credits_charged", "mj_tasks"):
        assert field in shown
