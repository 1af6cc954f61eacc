"""Trust item 15: an API key echoed back by the server never leaks; bad keys are refused early."""

from __future__ import annotations

import asyncio
import logging

import pytest
from aiohttp import web

import evolink_async as evolink

from ._hostile import SUBMIT, client_for, edit, hostile_server, json_answer, task_body

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
