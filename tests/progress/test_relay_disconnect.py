"""A page that closes its EventSource leaves quietly: its slot is freed and nothing is logged.

Before, the relay's aiohttp handler let the failed write out, and aiohttp logged an ERROR
"Error handling request" with a traceback for every closed tab.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from evolink_async import ProgressRelay, QwenImageEdit
from evolink_async.sandbox import Sandbox

from .conftest import client_for

SECRET = "relay-secret-0123456789abcdef"


@pytest.mark.evolink_sandbox(time_scale=1.0)  # the task runs far longer than the test
async def test_closed_pages_free_their_slots_without_an_error_in_the_log(
    evolink_sandbox: Sandbox, serve_aiohttp: Callable[[ProgressRelay], Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="aiohttp")
    async with client_for(evolink_sandbox) as client, ProgressRelay(
        client, secret=SECRET, heartbeat=0.05, max_viewers=2
    ) as relay:
        base = await serve_aiohttp(relay)
        task = await client.images.submit(QwenImageEdit(prompt="p", image_urls=["https://example.com/a.png"]))
        url = f"{base}/{task.id}?token={relay.token_for(task)}"
        for _ in range(3):  # more pages than slots, one after the other
            async with aiohttp.ClientSession() as http, http.get(url) as response:
                assert response.status == 200
                await response.content.readuntil(b"\n\n")  # the first frame, then the tab closes
            async with asyncio.timeout(10):  # the next heartbeat finds the page gone
                while relay.full or "viewers=0" not in repr(relay):
                    await asyncio.sleep(0.01)
    errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert errors == []
