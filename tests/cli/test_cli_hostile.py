"""The CLI and the batch against hostile inputs: names that are not text, links, a dry run that must agree."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

import evolink_async as evolink
from evolink_async.batch import Batch, BatchSpec
from evolink_async.cli import main
from evolink_async.cli._text import json_line, printable
from evolink_async.sandbox import Sandbox
from tests.helpers.images import write_png


def _connect(sandbox: Sandbox) -> list[str]:
    return ["--base-url", sandbox.base_url, "--files-base-url", sandbox.files_base_url,
            "--api-key", sandbox.api_key, "--poll-scale", "0.01"]  # fmt: skip


def _json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_printable_and_json_line_escape_every_control() -> None:
    hostile = "a\nb\rc\x1b[2Kd\x7fe\x85f\u202eg\udcff"
    shown = printable(hostile)
    assert shown.isprintable()
    assert "\\n" in shown
    assert "\\x1b" in shown
    assert "\\x7f" in shown
    assert "\\u202e" in shown
    line = json_line({"key": hostile})
    assert line.isascii() or line.isprintable()
    assert all(ch not in line for ch in "\n\r\x1b\x7f\x85\u202e")
    line.encode("utf-8")  # a lone surrogate would raise here
    assert json.loads(line)["key"] == hostile
    assert printable("été.png") == "été.png"


@pytest.mark.skipif(sys.platform != "linux", reason="needs a file system that takes any bytes in names")
async def test_an_undecodable_file_name_fails_alone(
    evolink_sandbox: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_png(tmp_path / "in" / "good.png")
    write_png(Path(os.fsdecode(os.fsencode(tmp_path / "in") + b"/bad\xff.png")))
    argv = ["edit", str(tmp_path / "in"), "--prompt", "autumn", "--out", str(tmp_path / "out"), "--json",
            *_connect(evolink_sandbox)]  # fmt: skip
    with anyio.fail_after(30):
        code = await anyio.to_thread.run_sync(main, argv)
    out = capsys.readouterr().out
    summary = _json_lines(out)[-1]
    assert code == 1
    assert summary["downloaded"] == 1
    (failed,) = summary["failed"]  # type: ignore[misc]
    assert "UTF-8" in failed["message"]
    assert len(evolink_sandbox.ledger.billed) == 1


async def test_the_dry_run_refuses_what_the_run_refuses(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_png(tmp_path / "in" / "good.png")
    write_png(tmp_path / "in" / "n\nsaved x -> FAKE.png")
    write_png(tmp_path / "elsewhere" / "secret.png")
    (tmp_path / "in" / "link.png").symlink_to(tmp_path / "elsewhere" / "secret.png")
    argv = ["edit", str(tmp_path / "in"), "--prompt", "autumn", "--out", str(tmp_path / "out"), "--dry-run",
            "--json", "--api-key", "sk-evo-unused-0123456789"]  # fmt: skip
    code = await anyio.to_thread.run_sync(main, argv)
    (plan,) = [e for e in _json_lines(capsys.readouterr().out) if e["kind"] == "plan"]
    assert code == 1
    assert plan["to_submit"] == 1
    reasons = {i["key"]: i["message"] for i in plan["invalid"]}  # type: ignore[attr-defined]
    assert "symbolic link" in reasons["link.png"]
    assert "control characters" in reasons["n\nsaved x -> FAKE.png"]


async def test_a_wrong_key_is_an_error_of_the_run_not_an_interruption(evolink_sandbox: Sandbox, tmp_path: Path) -> None:
    write_png(tmp_path / "in" / "a.png")
    spec = BatchSpec(model="qwen-image-edit", prompt="x", input_dir=tmp_path / "in", output_dir=tmp_path / "out")
    client = evolink.EvolinkClient("sk-evo-wrong-key-000000000", base_url=evolink_sandbox.base_url,
                                   files_base_url=evolink_sandbox.files_base_url)  # fmt: skip
    runner = Batch(client, spec)
    with anyio.fail_after(30), pytest.raises(evolink.AuthenticationError):
        async with client:
            await runner.run()
    assert runner.summary.interrupted is False
    assert runner.summary.error is not None
    assert "AuthenticationError" in runner.summary.error
    assert not runner.summary.ok


async def test_an_upload_name_is_made_safe_for_the_multipart_header(evolink_sandbox: Sandbox, tmp_path: Path) -> None:
    image = write_png(tmp_path / "cat.png")
    async with evolink.EvolinkClient(evolink_sandbox.api_key, base_url=evolink_sandbox.base_url,
                                     files_base_url=evolink_sandbox.files_base_url) as client:  # fmt: skip
        with anyio.fail_after(30):
            uploaded = await client.files.upload(image, file_name='e\x1b[2K\r"x\n.png')
    assert uploaded.file_name is not None
    assert not any(ch in uploaded.file_name for ch in '\x1b\r\n"')


def test_ctrl_c_during_the_demo_exits_130_once(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVOLINK_")} | {"PYTHONUNBUFFERED": "1"}
    argv = [sys.executable, "-m", "evolink_async", "demo", "--dir", str(tmp_path / "d"), "--count", "4",
            "--time-scale", "0.5", "--json"]  # fmt: skip
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                               env=env, start_new_session=True)  # fmt: skip
    try:
        assert process.stdout is not None
        for _ in range(200):  # the first submit: the batch is under way
            line = process.stdout.readline()
            if not line or b'"submitted"' in line:
                break
        os.killpg(process.pid, signal.SIGINT)
        _, stderr = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    assert process.returncode == 130, stderr.decode()[-2000:]
    assert stderr.decode().count("interrupted") == 1, stderr.decode()[-2000:]
    assert "starts afresh" in stderr.decode()  # the demo says it will not resume
    assert b"Traceback" not in stderr
