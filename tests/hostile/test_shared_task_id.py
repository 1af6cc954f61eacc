"""A server that answers two inputs' submits with one task id: the later one fails alone.

Before, a folder or manifest batch stopped at the journal's refusal (``JournalStateError: task ...
already belongs to 'A', not 'B'``), the inputs after it unsent and A's results unsaved.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from evolink_async import DuplicateTaskError, EventKind
from evolink_async.batch import Batch, BatchSpec, ManifestSource
from tests.helpers.hostile import SUBMIT, client_for, edit, hostile_server, json_answer, task_body
from tests.helpers.images import png_bytes

pytestmark = pytest.mark.asyncio

SHARED = "task-unified-1757165031-shared"


def _files_api(path: str) -> web.Response | None:
    if path.endswith("/files/quota"):
        return json_answer({"code": 200, "success": True,
                            "data": {"used_files": 0, "max_files": 100, "remain_files": 100}})  # fmt: skip
    if path.endswith("/files/list"):
        return json_answer({"code": 200, "success": True, "data": {"files": [], "total": 0, "page": 1, "page_size": 100}})
    return None


def _confused_api(task_for: Callable[[web.Request, dict[str, Any]], str]) -> Callable[..., Any]:
    """A task API whose submits (pending) and queries (completed) answer ``task_for``'s task, one
    result image each, beside an empty Files API."""
    image = png_bytes(512, 512)

    async def handler(request: web.Request) -> web.StreamResponse:
        if (files := _files_api(request.path)) is not None:
            return files
        if request.path.startswith("/results/"):
            return web.Response(body=image, content_type="image/png")
        body = await request.json() if request.method == "POST" else {}
        task_id = task_for(request, body)
        status = "pending" if request.method == "POST" else "completed"
        origin = f"{request.scheme}://{request.host}"
        return json_answer(task_body(task_id, status=status, results=[f"{origin}/results/{task_id}.png"]))

    return handler


def _manifest(tmp_path: Path, keys: str) -> Path:
    manifest = tmp_path / "edits.jsonl"
    manifest.write_text("".join(
        json.dumps({"key": key, "model": "qwen-image-edit", "prompt": key, "image_urls": [f"https://e.com/{key}.png"]})
        + "\n" for key in keys
    ))  # fmt: skip
    return manifest


async def test_an_input_answered_with_another_inputs_task_fails_alone(tmp_path: Path) -> None:
    def task_for(request: web.Request, body: dict[str, Any]) -> str:  # inputs A and B get the same task; C its own
        return f"{SHARED}-c" if body.get("prompt") == "C" or request.path.endswith("-c") else SHARED

    handler = _confused_api(task_for)
    manifest = _manifest(tmp_path, "ABC")
    spec = BatchSpec(model="qwen-image-edit", prompt="unused", input_dir=tmp_path, output_dir=tmp_path / "out",
                     max_in_flight=1)  # fmt: skip
    async with hostile_server(handler) as server, client_for(server) as client:
        summary = await Batch(client, spec, source=ManifestSource(manifest)).run()
        again = await Batch(client, spec, source=ManifestSource(manifest)).run()
        submits = server.count("POST", SUBMIT)

    # Which of A and B is submitted first is the fan-out's choice: that one owns the task.
    assert summary.error is None
    assert len(summary.failed) == 1
    loser = summary.failed[0]
    winner = "B" if loser.key == "A" else "A"
    assert loser.key in ("A", "B")
    assert loser.code == "DuplicateTaskError"  # one name whether the owner is running or has ended
    assert f"input {winner!r}" in loser.message
    saved = sorted(path.name for path in (tmp_path / "out").iterdir() if ".result-" in path.name)
    assert saved == sorted([f"{winner}.result-0.png", "C.result-0.png"])  # nothing saved under the loser's name
    # A re-run sends nothing again: the loser stays failed (its submit may have been billed).
    assert submits == 3
    assert [failed.key for failed in again.failed] == [loser.key]
    assert again.error is None


async def test_an_input_answered_with_the_task_of_an_earlier_runs_input_fails_alone(tmp_path: Path) -> None:
    """A runs and finishes; a later run adds B, and the server answers B's submit with A's task: the
    journal knows whose task it is (the fan-out of this run never saw it), and names it the same way."""
    handler = _confused_api(lambda request, body: SHARED)
    spec = BatchSpec(model="qwen-image-edit", prompt="unused", input_dir=tmp_path, output_dir=tmp_path / "out",
                     max_in_flight=1)  # fmt: skip
    async with hostile_server(handler) as server, client_for(server) as client:
        first = await Batch(client, spec, source=ManifestSource(_manifest(tmp_path, "A"))).run()
        second = await Batch(client, spec, source=ManifestSource(_manifest(tmp_path, "AB"))).run()
    assert first.ok
    (loser,) = second.failed
    assert loser.key == "B"
    assert loser.code == "DuplicateTaskError"
    assert "input 'A'" in loser.message
    assert second.error is None


async def test_a_fan_out_never_gives_one_inputs_results_to_another() -> None:
    """Two inputs in flight at once, both answered with one task: the later one fails alone
    (``DuplicateTaskError`` naming the owner); it does not complete with the other one's results."""

    async def handler(request: web.Request) -> web.StreamResponse:
        status = "pending" if request.method == "POST" else "completed"
        return json_answer(task_body(SHARED, status=status))

    async with hostile_server(handler) as server, client_for(server) as client:
        requests = [(key, edit(n)) for n, key in enumerate("AB")]
        async with client.fan_out(requests, max_in_flight=2) as stream:
            events = [event async for event in stream]
        assert server.count("POST", SUBMIT) == 2
    ends = {event.key: event for event in events if event.is_terminal}
    assert sorted(ends) == ["A", "B"]
    kinds = sorted(event.kind for event in ends.values())
    assert kinds == sorted([EventKind.COMPLETED, EventKind.SUBMIT_FAILED])
    (failed,) = [event for event in ends.values() if event.kind is EventKind.SUBMIT_FAILED]
    (done,) = [event for event in ends.values() if event.kind is EventKind.COMPLETED]
    assert isinstance(failed.error, DuplicateTaskError)
    assert failed.error.task_id == SHARED
    assert failed.error.owner == done.key


async def test_a_fan_out_one_at_a_time_never_gives_an_ended_tasks_results_to_another_input() -> None:
    """The same, one input at a time: the first input's task has ended when the second submit is
    answered with it. Every later input fails alone; only the first completes."""

    async def handler(request: web.Request) -> web.StreamResponse:
        status = "pending" if request.method == "POST" else "completed"
        return json_answer(task_body(SHARED, status=status))

    async with hostile_server(handler) as server, client_for(server) as client:
        requests = [(f"k{n}", edit(n)) for n in range(4)]
        async with client.fan_out(requests, max_in_flight=1) as stream:
            ends = {event.key: event async for event in stream if event.is_terminal}
    assert ends["k0"].kind is EventKind.COMPLETED
    for key in ("k1", "k2", "k3"):
        assert ends[key].kind is EventKind.SUBMIT_FAILED
        assert isinstance(ends[key].error, DuplicateTaskError)
        assert ends[key].error.owner == "k0"
    assert stream.summary.submitted == 1
