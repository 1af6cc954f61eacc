"""A server that answers every submit of a fleet batch with one task id (a confused idempotency
cache, a hostile gateway): the input that has the task keeps it, every other input fails alone
(``DuplicateTaskError`` naming the owner), and the worker ends normally. Before, the journal's
unique task id made the worker exit 2 saying the journal "cannot be used", an input left in flight."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from aiohttp import web

from tests.helpers.fleet_cli import evolink, export, manifest, plan, run_workers, status
from tests.helpers.hostile import SUBMIT, hostile_server, json_answer, task_body
from tests.helpers.images import png_bytes

SHARED = "task-unified-1757165031-shared"


async def test_inputs_answered_with_one_task_fail_alone_and_the_worker_ends(journal_url: str, tmp_path: Path) -> None:
    image = png_bytes(8, 8)

    async def handler(request: web.Request) -> web.StreamResponse:
        if request.path.endswith("/files/quota"):
            return json_answer({"code": 200, "success": True,
                                "data": {"used_files": 0, "max_files": 100, "remain_files": 100}})  # fmt: skip
        if request.path.startswith("/results/"):
            return web.Response(body=image, content_type="image/png")
        status = "pending" if request.method == "POST" else "completed"
        return json_answer(task_body(SHARED, status=status, results=[f"{server.url}/results/{SHARED}.png"]))

    assert (await plan(journal_url, manifest(tmp_path / "m.jsonl", 3))).returncode == 0
    async with hostile_server(handler) as server:
        argv = evolink("batch", "work", "--journal", journal_url, "--lease", "2", "--poll-interval", "0.05",
                       "--json", "--wal", str(tmp_path / "fleet.wal"), "--base-url", server.url,
                       "--files-base-url", server.url, "--api-key", "sk-test-key-0123456789", "--poll-scale", "0.01",
                       "--max-in-flight", "1", "--out", str(tmp_path / "out"))  # fmt: skip
        ((code, _, stderr),) = await run_workers([argv], timeout=60)
        submits = server.count("POST", SUBMIT)
    assert code == 1, stderr  # inputs failed: not a usage error, not a journal "that cannot be used"
    assert "Traceback" not in stderr
    assert "cannot be used" not in stderr
    rows = await export(journal_url)
    assert Counter(row["outcome"] for row in rows) == {"downloaded": 1, "submit_failed": 2}
    (owner,) = [row["key"] for row in rows if row["outcome"] == "downloaded"]
    for row in rows:
        if row["outcome"] == "submit_failed":
            assert SHARED in row["error"]["message"]
            assert owner in row["error"]["message"]
    assert submits == 3  # each input sent once: a failed one is not sent again by this run
    state = await status(journal_url)
    assert state["in_flight"] == 0, state
