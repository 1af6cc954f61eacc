"""The plain API key is in no frame's locals on any traceback the client raises (issue 19, item 6).

Error reporters that record frame locals (Sentry's default) would otherwise store it. Each test
raises an error through the client and walks every frame of the traceback (and of the chained
exceptions): every local, into dicts, lists, tuples, sets and mappings, and the ``repr`` of
anything else, as such a reporter would serialize it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Mapping
from types import TracebackType
from typing import Any

import pytest
from aiohttp import web

import evolink_async as evolink
from tests.helpers.dead_host import dead_host
from tests.helpers.origins import Origin, recording_origin

KEY = "sk-evo-FRAMEKEY0123456789abcdefXYZ"
MJ_KEY = "mj-FRAMEKEY-0123456789abcdefXYZ"


def values_in(value: Any, depth: int = 0) -> Iterator[str]:
    """Every string a reporter could record of ``value``: strings themselves, container contents,
    and the ``repr`` of other objects."""
    if depth > 6:
        return
    if isinstance(value, str):
        yield value
    elif isinstance(value, bytes | bytearray):
        yield bytes(value).decode("latin-1")
    elif isinstance(value, Mapping):
        for key, item in list(value.items()):
            yield from values_in(key, depth + 1)
            yield from values_in(item, depth + 1)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in list(value):
            yield from values_in(item, depth + 1)
    else:
        try:
            yield repr(value)
        except Exception:  # a repr that fails records nothing
            return


def frames_of(error: BaseException) -> Iterator[tuple[str, dict[str, Any]]]:
    """(function name, locals) of every frame on the traceback of ``error`` and of its causes."""
    seen: set[int] = set()
    pending: list[BaseException] = [error]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        tb: TracebackType | None = current.__traceback__
        while tb is not None:
            yield tb.tb_frame.f_code.co_name, dict(tb.tb_frame.f_locals)
            tb = tb.tb_next
        pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)


def assert_key_in_no_frame(error: BaseException, *keys: str) -> None:
    frames = list(frames_of(error))
    assert frames, "the error carries no traceback"
    for name, local_vars in frames:
        for variable, value in local_vars.items():
            for text in values_in(value):
                for key in keys:
                    assert key not in text, f"the key is in local {variable!r} of {name}()"


@pytest.fixture
async def home() -> AsyncIterator[Origin]:
    async with recording_origin() as origin:
        yield origin


def fast(**options: Any) -> dict[str, Any]:
    return {"retry": evolink.RetryPolicy(max_retries=1, initial_delay=0.0, max_delay=0.0), **options}


async def test_connection_refused(home: Origin) -> None:
    async with dead_host(refuse=True) as host:
        async with evolink.EvolinkClient(KEY, base_url=host.url, **fast()) as client:
            with pytest.raises(evolink.APIConnectionError) as info:
                await client.tasks.get("task-unified-1-abc")
    assert_key_in_no_frame(info.value, KEY)


async def test_connection_reset_after_the_request_was_read() -> None:
    async with dead_host() as host:
        async with evolink.EvolinkClient(KEY, base_url=host.url, **fast()) as client:
            with pytest.raises(evolink.APIConnectionError) as info:
                await client.images.submit(evolink.RemoveBackground(image_urls=["https://example.com/in.png"]))
    assert_key_in_no_frame(info.value, KEY)


async def test_a_500_that_echoes_the_key(home: Origin) -> None:
    home.answers["/v1/tasks/task-unified-1-abc"] = lambda request: web.json_response(
        {"error": {"message": f"bad key {request.headers.get('Authorization')}", "code": "x"}}, status=500
    )
    async with evolink.EvolinkClient(KEY, base_url=home.url, **fast()) as client:
        with pytest.raises(evolink.ServerError) as info:
            await client.tasks.get("task-unified-1-abc")
    assert_key_in_no_frame(info.value, KEY)


async def test_the_clients_own_timeout(home: Origin) -> None:
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.StreamResponse:
        await release.wait()
        return web.json_response({})

    home.answers["/v1/tasks/task-unified-1-abc"] = slow
    async with evolink.EvolinkClient(KEY, base_url=home.url, timeout=0.2, **fast()) as client:
        with pytest.raises(evolink.APITimeoutError) as info:
            await client.tasks.get("task-unified-1-abc")
    release.set()
    assert_key_in_no_frame(info.value, KEY)


async def test_a_callers_deadline_that_cancels_the_request_in_flight(home: Origin) -> None:
    """Cancellation passes through aiohttp's own frames, which a reporter records too."""
    release = asyncio.Event()

    async def never_in_time(_: web.Request) -> web.StreamResponse:
        await release.wait()
        return web.json_response({})

    home.answers["/v1/tasks/task-unified-1-abc"] = never_in_time
    async with evolink.EvolinkClient(KEY, base_url=home.url, **fast()) as client:
        with pytest.raises(TimeoutError) as info:
            async with asyncio.timeout(0.3):
                await client.tasks.get("task-unified-1-abc")
    release.set()
    assert isinstance(info.value.__cause__, asyncio.CancelledError)  # the chain a reporter walks
    assert_key_in_no_frame(info.value, KEY)


@pytest.mark.parametrize("auth", ["bearer", "mj-api-secret"])
async def test_midjourney_errors(home: Origin, auth: Any) -> None:
    home.answers["/mj/task/1/fetch"] = lambda _: web.json_response({"error": "down"}, status=503)
    async with evolink.MidjourneyClient(MJ_KEY, base_url=home.url, auth=auth, **fast()) as mj:
        with pytest.raises(evolink.EvolinkError) as info:
            await mj.tasks.get("1")
    assert_key_in_no_frame(info.value, MJ_KEY)


def test_a_constructor_that_refuses_its_other_arguments() -> None:
    with pytest.raises(evolink.ValidationError) as info:
        evolink.EvolinkClient(KEY, base_url="ftp://nowhere")
    assert_key_in_no_frame(info.value, KEY)
    with pytest.raises(evolink.ValidationError) as info:
        evolink.EvolinkClient(KEY, timeout=float("nan"))
    assert_key_in_no_frame(info.value, KEY)
    with pytest.raises(evolink.ValidationError) as info:
        evolink.MidjourneyClient(MJ_KEY, base_url="https://mj.example", auth="basic")  # type: ignore[arg-type]
    assert_key_in_no_frame(info.value, MJ_KEY)
