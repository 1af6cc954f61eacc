"""An API key echoed back by the server never leaks; bad keys are refused early."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

import pytest
from aiohttp import web

import evolink_async as evolink
from tests.helpers.hostile import SUBMIT, client_for, edit, hostile_server, json_answer, task_body

#: A key that is NOT ``sk-evo-`` shaped: the key-shape regex cannot catch it, only the key itself.
KEY = "K3y-not-evo-shaped-12345"


def _assert_no_leak(exc: BaseException, caplog: pytest.LogCaptureFixture) -> None:
    assert KEY not in str(exc)
    assert KEY not in repr(exc)
    for record in caplog.records:
        assert KEY not in record.getMessage(), record.getMessage()
    assert KEY not in caplog.text


async def test_key_echoed_in_an_error_answer_never_leaks(caplog: pytest.LogCaptureFixture) -> None:
    """Item 15: a 400 whose ``error.code``, ``error.param``, ``error.message`` and ``x-request-id``
    header echo the key: the key is in neither ``str(exc)``, ``repr(exc)`` nor a DEBUG log record."""
    caplog.set_level(logging.DEBUG, logger="evolink_async")

    async def handler(request: web.Request) -> web.StreamResponse:
        body = {"error": {"code": KEY, "param": f"key={KEY}", "message": f"bad key {KEY}", "type": KEY}}
        return json_answer(body, status=400, headers={"x-request-id": f"req-{KEY}"})

    async with hostile_server(handler) as server, client_for(server, api_key=KEY) as client:
        async with asyncio.timeout(10):
            with pytest.raises(evolink.BadRequestError) as exc:
                await client.images.submit(edit())
    _assert_no_leak(exc.value, caplog)


async def test_key_echoed_in_a_request_id_of_a_successful_answer_never_reaches_the_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Item 15: the key echoed in the ``x-request-id`` of 2xx answers appears in no DEBUG record."""
    caplog.set_level(logging.DEBUG, logger="evolink_async")

    async def handler(request: web.Request) -> web.StreamResponse:
        return json_answer(task_body("task-unified-1-leak", status="completed"), headers={"x-request-id": KEY})

    async with hostile_server(handler) as server, client_for(server, api_key=KEY) as client:
        async with asyncio.timeout(10):
            task = await client.images.submit(edit())
            await client.tasks.wait(task)
    assert KEY not in caplog.text


async def test_key_echoed_in_a_failed_task_message_never_leaks(caplog: pytest.LogCaptureFixture) -> None:
    """Item 15: a failed task whose ``error.message`` echoes the key: TaskFailedError's str/repr
    and the DEBUG logs do not show it."""
    caplog.set_level(logging.DEBUG, logger="evolink_async")

    async def handler(request: web.Request) -> web.StreamResponse:
        if request.method == "POST" and request.path == SUBMIT:
            return json_answer(task_body("task-unified-1-failed"))
        error = {"code": "service_error", "message": f"upstream refused key {KEY}"}
        return json_answer(task_body("task-unified-1-failed", status="failed", error=error))

    async with hostile_server(handler) as server, client_for(server, api_key=KEY) as client:
        async with asyncio.timeout(10):
            task = await client.images.submit(edit())
            with pytest.raises(evolink.TaskFailedError) as exc:
                await client.tasks.wait(task)
    _assert_no_leak(exc.value, caplog)
    assert KEY not in exc.value.message


def _escaped(text: str) -> str:
    """``text`` with every character as a JSON ``\\uXXXX`` escape (what some servers send)."""
    return "".join(f"\\u{ord(ch):04x}" for ch in text)


@pytest.mark.parametrize("encoding", ["escaped", "utf-16", "utf-32"])
async def test_key_echoed_in_an_escaped_or_wide_answer_never_leaks(
    encoding: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A failed task (and a 400) echoing the key where its bytes never appear literally: as JSON
    escapes, or in UTF-16/32. Neither the task (``raw`` included), its error, nor the 400 shows it."""
    caplog.set_level(logging.DEBUG, logger="evolink_async")
    task_id = "task-unified-1-wide"

    def encode(body: dict[str, object]) -> bytes:
        text = json.dumps(body)
        if encoding == "escaped":
            return text.replace(KEY, _escaped(KEY)).encode()
        return text.encode(encoding)

    async def handler(request: web.Request) -> web.StreamResponse:
        if request.method == "POST" and request.path == SUBMIT:
            if request.headers.get("Idempotency-Key", "").endswith("-refuse"):
                body = {"error": {"code": KEY, "param": KEY, "message": f"bad key {KEY}", "type": KEY}}
                return web.Response(status=400, body=encode(body), content_type="application/json")
            return json_answer(task_body(task_id))
        error = {"code": "service_error", "message": f"upstream refused key {KEY}", KEY: [KEY, {"k": KEY}]}
        failed = task_body(task_id, status="failed", error=error, echo={KEY: KEY})
        return web.Response(body=encode(failed), content_type="application/json")

    async with hostile_server(handler) as server, client_for(server, api_key=KEY) as client:
        async with asyncio.timeout(10):
            task = await client.images.submit(edit())
            with pytest.raises(evolink.TaskFailedError) as failed:
                await client.tasks.wait(task)
            with pytest.raises(evolink.BadRequestError) as refused:
                await client.images.submit(edit(), idempotency_key="key-0123456789-refuse")
    _assert_no_leak(failed.value, caplog)
    _assert_no_leak(refused.value, caplog)
    assert KEY not in json.dumps(failed.value.task.raw)
    assert "upstream refused key ***" in failed.value.message  # scrubbed, not dropped
    assert KEY not in repr(refused.value.body)
    for field in (refused.value.code, refused.value.param, refused.value.type):
        assert field is not None
        assert KEY not in field


@pytest.mark.parametrize("length", ["12abc", "-5", "10"])
async def test_a_malformed_answer_is_a_typed_error_without_the_key(length: str) -> None:
    """A Content-Length that is no number, or shorter than the body, makes aiohttp raise
    ClientResponseError, whose repr and request_info carry the request's headers (the key): it
    must come out as an APIConnectionError that does not. aiohttp's own server refuses to send
    such an answer, so this one is written by hand on a plain socket."""
    body = json.dumps(task_body("task-unified-1-bad")).encode()

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while (await reader.readline()).strip():  # the request line and headers
                pass
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {length}\r\n\r\n".encode()
                + body
            )
            await writer.drain()
            writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        client = evolink.EvolinkClient(KEY, base_url=f"http://127.0.0.1:{port}", max_retries=0)
        async with client, asyncio.timeout(10):
            with pytest.raises(evolink.EvolinkError) as exc:
                await client.tasks.get("task-unified-1-bad")
    finally:
        server.close()
        await server.wait_closed()
    assert isinstance(exc.value, evolink.APIConnectionError | evolink.ResponseFormatError), repr(exc.value)
    assert KEY not in str(exc.value)
    assert KEY not in repr(exc.value)
    assert exc.value.__cause__ is None
    assert exc.value.__context__ is None


async def test_key_echoed_in_a_files_api_msg_never_leaks(caplog: pytest.LogCaptureFixture) -> None:
    """Item 15: a Files API refusal whose ``msg`` (and request id) echo the key: FilesAPIError's
    str/repr and the DEBUG logs do not show it."""
    caplog.set_level(logging.DEBUG, logger="evolink_async")

    async def handler(request: web.Request) -> web.StreamResponse:
        await request.read()
        body = {"success": False, "code": 40002, "msg": f"key {KEY} may not upload"}
        return json_answer(body, status=400, headers={"x-request-id": KEY})

    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
    async with hostile_server(handler) as server, client_for(server, api_key=KEY) as client:
        async with asyncio.timeout(10):
            with pytest.raises(evolink.EvolinkError) as exc:
                await client.files.upload(png, check_format=False)
    _assert_no_leak(exc.value, caplog)


@pytest.mark.parametrize(
    "key",
    ["short", "sk-evo-ab cd1234", "sk-evo-abcd\n1234", "sk-evo-abcd\t1234", "sk-evo-\x00abcd1234", "sk-evo-abcd1234\r"],
    ids=["short", "space", "newline", "tab", "nul", "cr"],
)
def test_malformed_api_key_is_refused_at_construction(key: str) -> None:
    """Item 15: keys shorter than 8 characters, or with whitespace or control characters, raise
    ValidationError naming api_key at ``EvolinkClient(api_key=...)``, without echoing the key."""
    with pytest.raises(evolink.ValidationError) as exc:
        evolink.EvolinkClient(api_key=key, base_url="https://api.example.com")
    assert "api_key" in str(exc.value)
    assert key not in str(exc.value)
