"""Helpers for the sandbox's own tests: plain aiohttp requests, a controllable clock."""

from __future__ import annotations

import asyncio
import base64
import json
import sys
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from evolink_async.sandbox import Sandbox
from evolink_async.sandbox._png import Image, encode

SUBMIT = "/v1/images/generations"
FILES = "/api/v1/files"
REMOTE_IMAGE = "https://example.com/input.png"  # never fetched: the sandbox contacts no other host


class FakeClock:
    """A monotonic clock the test moves by hand, for timelines and expiries without waiting."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


class Api:
    """Thin calls against one sandbox, returning (status, headers, parsed JSON or None)."""

    def __init__(self, sandbox: Sandbox, session: aiohttp.ClientSession, key: str | None = None) -> None:
        self.sandbox = sandbox
        self.session = session
        self.key = sandbox.api_key if key is None else key

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}", **(extra or {})}

    async def _call(self, method: str, url: str, **kwargs: Any) -> tuple[int, Any, Any]:
        headers = self.headers(kwargs.pop("headers", None))
        async with self.session.request(method, url, headers=headers, **kwargs) as response:
            raw = await response.read()
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
            return response.status, response.headers, body

    async def submit(self, body: dict[str, Any], *, idempotency_key: str | None = None) -> tuple[int, Any, Any]:
        extra = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return await self._call("POST", self.sandbox.base_url + SUBMIT, json=body, headers=extra)

    async def task(self, task_id: str) -> tuple[int, Any, Any]:
        return await self._call("GET", f"{self.sandbox.base_url}/v1/tasks/{task_id}")

    async def files(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any, Any]:
        return await self._call(method, f"{self.sandbox.files_base_url}{FILES}{path}", **kwargs)

    async def upload(self, data: bytes, **fields: str) -> tuple[int, Any, Any]:
        payload = {"base64_data": base64.b64encode(data).decode(), **fields}
        return await self.files("POST", "/upload/base64", json=payload)

    async def download(self, url: str) -> tuple[int, bytes]:
        async with self.session.get(url) as response:
            return response.status, await response.read()


@pytest.fixture
def api_for(http: aiohttp.ClientSession) -> Any:
    def make(sandbox: Sandbox, key: str | None = None) -> Api:
        return Api(sandbox, http, key)

    return make


def retexture(**extra: Any) -> dict[str, Any]:
    return {"model": "mj-v7-retexture", "prompt": "cyberpunk neon", "image_urls": [REMOTE_IMAGE], **extra}


def qwen(**extra: Any) -> dict[str, Any]:
    return {"model": "qwen-image-edit", "prompt": "make it blue", "image_urls": [REMOTE_IMAGE], **extra}


def checker_png(width: int = 8, height: int = 6) -> bytes:
    """A small RGB-ish test image: red/white checks on RGBA."""
    pixels = bytearray()
    for y in range(height):
        for x in range(width):
            pixels += b"\xff\x00\x00\xff" if (x + y) % 2 else b"\xff\xff\xff\xff"
    return encode(Image(width, height, bytes(pixels)))


@pytest.fixture
def mj_for(http: aiohttp.ClientSession) -> Any:
    """``mj_for(sandbox)``: raw calls to a sandbox's Midjourney-proxy routes (tests/sandbox/mj_helpers.py)."""
    from tests.helpers.mj_sandbox import Mj

    def make(sandbox: Sandbox, headers: dict[str, str] | None = None) -> Mj:
        return Mj(sandbox, http, headers)

    return make


async def start_standalone(*args: str) -> tuple[asyncio.subprocess.Process, dict[str, str]]:
    """``python -m evolink_async.sandbox *args`` until it prints ``ready``: the process and its ``NAME=value`` lines."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "evolink_async.sandbox", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    values: dict[str, str] = {}
    async with asyncio.timeout(20):
        while True:
            line = (await process.stdout.readline()).decode()
            assert line, "the sandbox exited before it was ready"
            if line.startswith("ready"):
                return process, values
            name, _, value = line.strip().partition("=")
            values[name] = value
