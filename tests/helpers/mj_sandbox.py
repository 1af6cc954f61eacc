"""Raw aiohttp calls against a sandbox's Midjourney-proxy routes, every await bounded."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from aiohttp import web

from evolink_async.sandbox import Sandbox

LIMIT = 10.0  # seconds any single wait may take
PNG_DATA_URL = "data:image/png;base64,iVBORw0KGgo="
TERMINAL = frozenset({"SUCCESS", "FAILURE", "FAILED"})


class Mj:
    def __init__(self, sandbox: Sandbox, session: aiohttp.ClientSession, headers: dict[str, str] | None = None) -> None:
        self.sandbox = sandbox
        self.session = session
        self.url = sandbox.mj_base_url + "/mj" if sandbox.config.midjourney.prefix.endswith("/mj") else sandbox.mj_url
        self.headers = {"mj-api-secret": sandbox.mj_api_key} if headers is None else headers

    async def call(self, method: str, path: str, body: Any = None, **kwargs: Any) -> tuple[int, Any, bytes]:
        """(HTTP status, parsed JSON or None, raw body)."""
        headers = kwargs.pop("headers", self.headers)
        async with asyncio.timeout(LIMIT):
            async with self.session.request(method, self.url + path, json=body, headers=headers, **kwargs) as response:
                raw = await response.read()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        return response.status, parsed, raw

    async def submit(self, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        status, parsed, _ = await self.call("POST", f"/submit/{endpoint}", body)
        assert status == 200, (status, parsed)
        assert isinstance(parsed, dict)
        return parsed

    async def imagine(self, prompt: str = "a red fox in snow", **extra: Any) -> str:
        result = await self.submit("imagine", {"prompt": prompt, **extra})
        assert result["code"] in (1, 22), result
        return str(result["result"])

    async def fetch(self, task_id: str) -> dict[str, Any]:
        status, parsed, _ = await self.call("GET", f"/task/{task_id}/fetch")
        assert status == 200, (status, parsed)
        assert isinstance(parsed, dict), parsed
        return parsed

    async def wait(self, task_id: str, statuses: frozenset[str] = TERMINAL, *, limit: float = LIMIT) -> dict[str, Any]:
        async with asyncio.timeout(limit):
            while True:
                task = await self.fetch(task_id)
                if task["status"] in statuses:
                    return task
                await asyncio.sleep(0.01)

    async def download(self, url: str) -> tuple[int, bytes]:
        async with asyncio.timeout(LIMIT), self.session.get(url) as response:
            return response.status, await response.read()


class Receiver:
    """A notifyHook receiver on 127.0.0.1 that records every POSTed JSON body."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.url = ""
        self.changed = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        self.bodies.append(await request.json())
        self.changed.set()
        return web.Response(text="")

    async def until(self, predicate: Any, limit: float = LIMIT) -> None:
        async with asyncio.timeout(limit):
            while not predicate(self.bodies):
                self.changed.clear()
                await self.changed.wait()


@asynccontextmanager
async def receiver() -> AsyncIterator[Receiver]:
    hook = Receiver()
    app = web.Application()
    app.router.add_post("/hook", hook.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    hook.url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    try:
        yield hook
    finally:
        await runner.cleanup()
