"""A submit sent again after its answer was lost is said in the command's summary, not only in --json.

Against a server that ignores ``Idempotency-Key`` such a retry can bill twice (README, "What 'never
pays twice' rests on"); the batch counted it (``retried_uncertain_submits``) but the text summary
of ``evolink edit`` never showed it, so a user without ``--json`` could not see the exposure.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from aiohttp import web

from evolink_async.cli import main
from tests.helpers.hostile import API_KEY, SUBMIT, drop_connection, hostile_server, json_answer, task_body
from tests.helpers.images import png_bytes, write_png

pytestmark = pytest.mark.asyncio

TASK = "task-unified-1757165031-retried"


async def test_a_retried_submit_is_in_the_text_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    image = png_bytes()
    submits = 0

    async def handler(request: web.Request) -> web.StreamResponse:
        nonlocal submits
        path = request.path
        if path.endswith("/files/list"):
            return json_answer({"code": 200, "success": True, "data": {"files": [], "total": 0, "page": 1,
                                                                       "page_size": 100}})  # fmt: skip
        if path.endswith("/files/quota"):
            return json_answer({"code": 200, "success": True, "data": {"used_files": 0, "max_files": 100}})
        if "/files/upload" in path:
            await request.read()
            return json_answer({"code": 200, "success": True, "data": {
                "file_id": "file-1", "file_url": f"{server.url}/stored/in.png", "file_name": "in.png",
                "mime_type": "image/png", "file_size": len(image)}})  # fmt: skip
        if request.method == "DELETE":
            return json_answer({"code": 200, "success": True})
        if path.startswith("/results/"):
            return web.Response(body=image, content_type="image/png")
        if request.method == "POST" and path == SUBMIT:
            submits += 1
            if submits == 1:  # the server took it (as far as the client can tell): the answer is lost
                return await drop_connection(request)
            return json_answer(task_body(TASK))
        return json_answer(task_body(TASK, status="completed", results=[f"{server.url}/results/0.png"]))

    write_png(tmp_path / "in" / "a.png")
    async with hostile_server(handler) as server:
        argv = ["edit", str(tmp_path / "in"), "--prompt", "autumn", "--out", str(tmp_path / "out"),
                "--api-key", API_KEY, "--base-url", server.url, "--files-base-url", server.url,
                "--poll-scale", "0.01"]  # fmt: skip
        with anyio.fail_after(60):
            code = await anyio.to_thread.run_sync(main, argv)
    out = capsys.readouterr().out
    assert code == 0, out
    assert submits == 2
    assert "1 submit(s) were sent again after their answer was lost" in out
    assert "billed them twice" in out
