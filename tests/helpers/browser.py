"""Debian's headless Chromium driven over the DevTools protocol (a WebSocket, through aiohttp).

Only what the tests need: open a page, evaluate JavaScript in it. Chromium starts with a fresh
profile, no background networking (this machine's network is closed to everything but
loopback) and ``--remote-debugging-port=0``; the port it picked is read from its stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import shutil
import tempfile
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",  # the CI runs as root, where Chromium's own sandbox refuses to start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-port=0",
)


def chromium_path() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise RuntimeError("the browser tests need Chromium: apt-get install chromium (.ci/run installs it)")


class Page:
    """One tab, attached through a flattened DevTools session."""

    def __init__(self, socket: aiohttp.ClientWebSocketResponse, session_id: str, ids: itertools.count[int]) -> None:
        self._socket, self._session, self._ids = socket, session_id, ids

    async def navigate(self, url: str) -> None:
        await _call(self._socket, self._ids, "Page.navigate", {"url": url}, session=self._session)

    async def evaluate(self, expression: str) -> Any:
        answer = await _call(self._socket, self._ids, "Runtime.evaluate",
                             {"expression": expression, "returnByValue": True}, session=self._session)  # fmt: skip
        result = answer["result"]
        if "exceptionDetails" in answer:
            raise RuntimeError(f"page script failed: {answer['exceptionDetails']}")
        return result.get("value")


async def _call(
    socket: aiohttp.ClientWebSocketResponse,
    ids: itertools.count[int],
    method: str,
    params: dict[str, Any],
    *,
    session: str | None = None,
) -> dict[str, Any]:
    call_id = next(ids)
    message: dict[str, Any] = {"id": call_id, "method": method, "params": params}
    if session is not None:
        message["sessionId"] = session
    await socket.send_str(json.dumps(message))
    async with asyncio.timeout(30):
        while True:
            reply = json.loads((await socket.receive()).data)
            if reply.get("id") == call_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply["result"]
                return result


@contextlib.asynccontextmanager
async def browser_page(url: str) -> AsyncIterator[Page]:
    """Chromium showing ``url``; stopped (and its profile removed) on exit."""
    with tempfile.TemporaryDirectory(prefix="evolink-chromium-") as profile:
        process = await asyncio.create_subprocess_exec(
            chromium_path(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            assert process.stderr is not None
            endpoint = None
            async with asyncio.timeout(60):
                while endpoint is None:
                    line = (await process.stderr.readline()).decode(errors="replace")
                    if not line:
                        raise RuntimeError("Chromium exited before it listened for DevTools")
                    if "DevTools listening on " in line:
                        endpoint = line.split("DevTools listening on ", 1)[1].strip()
            # Keep reading stderr so that a chatty browser never blocks on a full pipe.
            drain = asyncio.create_task(_drain(process.stderr))
            ids = itertools.count(1)
            async with aiohttp.ClientSession() as http, http.ws_connect(endpoint, max_msg_size=0) as socket:
                target = await _call(socket, ids, "Target.createTarget", {"url": url})
                attached = await _call(socket, ids, "Target.attachToTarget",
                                       {"targetId": target["targetId"], "flatten": True})  # fmt: skip
                yield Page(socket, attached["sessionId"], ids)
            drain.cancel()
        finally:
            if process.returncode is None:
                process.kill()
            await process.wait()


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.readline():
        pass
