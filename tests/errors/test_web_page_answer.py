"""A web page (HTML, status 200) where the API should be: a wrong base URL, not a garbled answer.

A host that answers every path with a page (an nginx welcome page, a single-page site, a captive
portal) used to get each submit four times (a garbled answer may be an acceptance: retried under
its key) and a summary warning of double billing. Now the first such answer of a run ends it with
one error naming the URL; the inputs sent there stay pending under their idempotency keys (a page
may hide an acceptance: never pay twice), and a run with the right URL takes every input once.
A body labelled JSON that does not parse is still the garbled answer it was: retried under its key.
"""

from __future__ import annotations

import collections
import subprocess
from collections.abc import Callable
from pathlib import Path

import anyio.to_thread
import pytest
from aiohttp import web

import evolink_async as evolink
from evolink_async.errors import may_have_been_billed
from evolink_async.sandbox import Sandbox
from tests.helpers.cli import run_cli
from tests.helpers.hostile import API_KEY, SUBMIT, client_for, edit, hostile_server
from tests.helpers.images import write_png

Build = Callable[..., evolink.EvolinkClient]
WELCOME = "<!DOCTYPE html><html><head><title>Welcome to nginx!</title></head><body>Welcome</body></html>"


async def _welcome_page(request: web.Request) -> web.StreamResponse:
    return web.Response(text=WELCOME, content_type="text/html")


async def test_a_page_ends_the_fan_out_after_one_send_of_each_submit() -> None:
    keys: collections.Counter[str] = collections.Counter()

    async def handler(request: web.Request) -> web.StreamResponse:
        keys[request.headers.get("Idempotency-Key", "")] += 1
        return await _welcome_page(request)

    async with hostile_server(handler) as server, client_for(server) as client:
        events: list[evolink.TaskEvent] = []
        fan_out = client.fan_out((edit(n) for n in range(100)), max_in_flight=3)
        with pytest.raises(evolink.NotJSONAnswerError) as stopped:
            async with fan_out as stream:
                events.extend([event async for event in stream])
    message = str(stopped.value)
    assert f"POST {server.url}{SUBMIT} answered 200 with text/html" in message
    assert stopped.value.url == f"POST {server.url}{SUBMIT}"
    assert API_KEY not in message
    assert events == []
    assert 1 <= server.count("POST", SUBMIT) <= 3  # the submits in flight, not 100
    assert set(keys.values()) == {1}  # none sent again
    assert fan_out.summary.retried_uncertain_submits == 0
    # Whether the page hid an acceptance is unknown: those inputs are reported with their keys.
    assert len(fan_out.summary.interrupted_submits) == server.count("POST", SUBMIT)
    assert {key for key, _ in fan_out.summary.interrupted_submits}.isdisjoint(fan_out.summary.unsent)


async def test_a_single_submit_answered_by_a_page_is_sent_once() -> None:
    async with hostile_server(_welcome_page) as server, client_for(server) as client:
        with pytest.raises(evolink.NotJSONAnswerError):
            await client.images.submit(edit())
    assert server.count("POST", SUBMIT) == 1
    assert may_have_been_billed(evolink.NotJSONAnswerError("x", url="POST u", status_code=200))


async def test_invalid_json_labelled_json_is_still_retried_under_its_key() -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(text='{"id": "task-unified-1-a", "status": ', content_type="application/json")

    async with hostile_server(handler) as server, client_for(server) as client:
        with pytest.raises(evolink.ResponseFormatError) as failed:
            await client.images.submit(edit())
    assert not isinstance(failed.value, evolink.NotJSONAnswerError)
    assert server.count("POST", SUBMIT) > 1


async def test_the_command_line_stops_with_exit_2_and_the_right_url_takes_every_input(
    evolink_sandbox: Sandbox, tmp_path: Path
) -> None:
    for index in range(5):
        write_png(tmp_path / "in" / f"{index}.png", shade=index * 40)
    keys: collections.Counter[str] = collections.Counter()

    async def handler(request: web.Request) -> web.StreamResponse:
        keys[request.headers.get("Idempotency-Key", "")] += 1
        return await _welcome_page(request)

    common = ["edit", str(tmp_path / "in"), "--prompt", "autumn", "--out", str(tmp_path / "out"), "--json",
              "--max-in-flight", "2", "--files-base-url", evolink_sandbox.files_base_url,
              "--api-key", evolink_sandbox.api_key, "--poll-scale", "0.01"]  # fmt: skip
    async with hostile_server(handler) as server:
        stopped = await _run_in_thread([*common, "--base-url", server.url])
    assert stopped.returncode == 2, stopped.stderr
    assert f"POST {server.url}{SUBMIT}" in stopped.stderr
    assert "check --base-url" in stopped.stderr
    assert "billed twice" not in stopped.stdout + stopped.stderr
    assert set(keys.values()) == {1}
    assert 1 <= sum(keys.values()) <= 2

    again = await _run_in_thread([*common, "--base-url", evolink_sandbox.base_url])
    assert again.returncode == 0, again.stderr
    billed = evolink_sandbox.ledger.billed
    assert len(billed) == len(set(billed)) == 5


async def _run_in_thread(args: list[str]) -> subprocess.CompletedProcess[str]:
    """The command in a process, while this loop keeps serving the hostile host."""
    return await anyio.to_thread.run_sync(lambda: run_cli(args))
