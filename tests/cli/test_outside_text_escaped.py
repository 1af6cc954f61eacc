"""Outside text (a server's messages, file names) never reaches the terminal raw: C0 controls, DEL,
C1 controls (CSI 0x9b is ESC [ to many terminals), bidi overrides and isolates are written as visible
escapes by the command line's one escaping function, in plain output and in JSON lines alike.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest
from aiohttp import web

from evolink_async.cli._text import printable
from evolink_async.sandbox import Sandbox
from tests.helpers.images import write_png

KEY = "sk-evo-TESTKEY0123456789abcdef"
HOSTILE = "\x1b[2J\x1b]0;owned\x07\x9b31m\x7f\u202eevil\u2066\u2069\u200f\x85 \ud800"
RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
ENV = {k: v for k, v in os.environ.items() if not k.startswith(("EVOLINK_", "MJ_PROXY_"))}


def test_printable_escapes_every_class_and_nothing_else() -> None:
    shown = printable("ok " + HOSTILE + " é 日本")
    assert not RAW.search(shown), ascii(shown)
    assert shown.startswith("ok ")
    assert shown.endswith(" é 日本")  # letters of any script stay as they are
    for escape in ("\\x1b", "\\x07", "\\x9b", "\\x7f", "\\u202e", "\\u2066", "\\u200f", "\\x85", "\\ud800"):
        assert escape in shown, (escape, shown)


async def _evolink(*args: str) -> tuple[int, str, str]:
    with anyio.fail_after(120):
        done = await anyio.run_process([sys.executable, "-m", "evolink_async", *args], env=ENV, check=False)
    return done.returncode, done.stdout.decode("utf-8", "surrogateescape"), done.stderr.decode("utf-8", "replace")


@asynccontextmanager
async def hostile_mj_proxy() -> AsyncIterator[str]:
    """A Midjourney proxy whose every word is hostile: the first imagine fails with a hostile
    ``failReason``; the next submit is refused (code 4) with a hostile ``description``."""
    tasks: dict[str, dict[str, object]] = {}

    def task(task_id: str) -> dict[str, object]:
        return {"id": task_id, "action": "IMAGINE", "status": "FAILURE", "progress": "100%",
                "failReason": "banned: " + HOSTILE, "prompt": "a fox", "submitTime": 1748339029401,
                "properties": {}, "buttons": []}  # fmt: skip

    async def imagine(request: web.Request) -> web.Response:
        if not tasks:
            task_id = "1748339029401828"
            tasks[task_id] = task(task_id)
            return web.json_response({"code": 1, "description": "ok", "result": task_id, "properties": {}})
        return web.json_response({"code": 4, "description": "refused: " + HOSTILE, "result": None, "properties": {}})

    async def fetch(request: web.Request) -> web.Response:
        found = tasks.get(request.match_info["task_id"])
        return web.json_response(found) if found else web.Response(status=404)

    async def list_by_condition(request: web.Request) -> web.Response:
        ids = (await request.json()).get("ids", [])
        return web.json_response([tasks[i] for i in ids if i in tasks])

    app = web.Application()
    app.router.add_post("/mj/submit/imagine", imagine)
    app.router.add_get("/mj/task/{task_id}/fetch", fetch)
    app.router.add_post("/mj/task/list-by-condition", list_by_condition)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("json_output", [False, True], ids=["plain", "json"])
async def test_imagine_never_prints_a_hostile_proxys_words_raw(tmp_path: Path, json_output: bool) -> None:
    async with hostile_mj_proxy() as url:
        code, out, err = await _evolink("imagine", "a fox", "--count", "2", "--out", str(tmp_path / "out"),
                                        "--base-url", url, "--api-key", KEY, "--poll-scale", "0.01",
                                        *(["--json"] if json_output else []))  # fmt: skip
    assert code == 1, out + err
    assert "Traceback" not in err
    assert not RAW.search(out + err), ascii(out + err)
    # Shown (escaped), not dropped: the reason of the failure is readable.
    assert "banned: " in out, out
    assert "refused: " in out, out
    if json_output:  # escaped in the text, exact in the data: a script reading the JSON gets the words
        messages = [json.loads(line).get("message", "") for line in out.splitlines() if '"failed"' in line]
        assert any("\x1b[2J\x1b]0;owned\x07\x9b31m\x7f\u202eevil" in m for m in messages), messages


@pytest.mark.evolink_sandbox(time_scale=0.01)
async def test_edit_never_prints_c1_or_bidi_controls_of_file_names_raw(evolink_sandbox: Sandbox, tmp_path: Path) -> None:
    write_png(tmp_path / "in" / "good.png")
    write_png(tmp_path / "in" / "c1\x9b31m-\x85.png", shade=40)
    write_png(tmp_path / "in" / "bidi\u202egnp.exe\u2066.png", shade=80)
    code, out, err = await _evolink("edit", str(tmp_path / "in"), "--prompt", "autumn", "--out", str(tmp_path / "o"),
                                    "--base-url", evolink_sandbox.base_url, "--files-base-url",
                                    evolink_sandbox.files_base_url, "--api-key", evolink_sandbox.api_key,
                                    "--poll-scale", "0.01")  # fmt: skip
    assert code in (0, 1), out + err  # the odd names may fail (alone): never the run
    assert "Traceback" not in err
    assert not RAW.search(out + err), ascii(out + err)
    assert "good.png" in out, out
