"""The SDK reads every documented example body of facts.py as API.md means it.

Each fact's ``example`` is served, exactly as API.md prints it, by a small local server; the SDK's
public client method for that endpoint reads it (so its real parsers run, through the transport),
and what it made of it is compared with the fact's ``parsed`` expectations.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

import evolink_async as evolink

from .facts import FACTS, PNG, Fact

_NO_RETRIES = evolink.RetryPolicy(max_retries=0)


@pytest.fixture
async def replay() -> AsyncIterator[Any]:
    """``await replay(status, body)``: a loopback server answering every request with that body."""
    runners: list[web.AppRunner] = []

    async def start(status: int, body: Any) -> str:
        async def answer(_request: web.Request) -> web.Response:
            return web.json_response(body, status=status)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", answer)
        runner = web.AppRunner(app)
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return f"http://127.0.0.1:{runner.addresses[0][1]}"

    yield start
    for runner in runners:
        await runner.cleanup()


async def _read(fact: Fact, url: str) -> Any:
    """What the SDK's public method for this endpoint returns (or raises) for the served example."""
    if fact.parse in ("mj_submit", "mj_task"):
        async with evolink.MidjourneyClient("sk-evo-contract-000000", base_url=url, retry=_NO_RETRIES) as mj:
            if fact.parse == "mj_submit":
                return await mj.submit(evolink.Imagine(prompt="a red fox"))
            return await mj.tasks.get(fact.example["id"])
    async with evolink.EvolinkClient(
        "sk-evo-contract-000000", base_url=url, files_base_url=url, retry=_NO_RETRIES
    ) as client:
        if fact.parse == "submit":
            request = evolink.Retexture(prompt="cyberpunk neon", image_urls=["https://example.com/in.png"])
            return await client.images.submit(request)
        if fact.parse == "task":
            return await client.tasks.get(fact.example["id"])
        if fact.parse == "http_error":
            with pytest.raises(evolink.APIStatusError) as raised:
                await client.tasks.get("task-unified-1-abcdefgh")
            return raised.value
        if fact.parse == "upload":
            return await client.files.upload(PNG, file_name="avatar.png")
        if fact.parse == "list":
            return await client.files.list()
        if fact.parse == "quota":
            return await client.files.quota()
        if fact.parse == "delete":
            return await client.files.delete("file_abc123")
    raise AssertionError(f"no reader for {fact.parse}")


def _value(result: Any, path: str) -> Any:
    """``a.b[0].c`` of a parsed value; a few names stand for what a caller derives from it."""
    if path == "class":
        return type(result).__name__
    if path == "returned":
        return result
    if path == "file_ids":  # a page of files, or the plain list an older client returned
        return tuple(f.file_id for f in getattr(result, "files", result))
    if path.startswith("failed_error."):
        result, path = evolink.TaskFailedError(result), path.removeprefix("failed_error.")
    for token in re.findall(r"\[\d+\]|[^.\[\]]+", path):
        if token.startswith("["):
            result = result[int(token[1:-1])]
        elif isinstance(result, dict):
            result = result[token]
        else:
            result = getattr(result, token)
    return result


@pytest.mark.parametrize("fact", [pytest.param(f, id=f.id) for f in FACTS if f.parse is not None])
async def test_the_sdk_reads_the_documented_example(fact: Fact, replay: Any) -> None:
    assert fact.parsed, f"{fact.id} gives an example but says nothing of what it must parse to"
    url = await replay(fact.example_status, fact.example)
    result = await _read(fact, url)
    wrong = {}
    for path, expected in fact.parsed.items():
        actual = _value(result, path)
        if actual != expected:
            wrong[path] = (actual, expected)
    assert not wrong, f"{fact.id} ({fact.source}: {fact.says}): parsed (got, documented) {wrong}"
