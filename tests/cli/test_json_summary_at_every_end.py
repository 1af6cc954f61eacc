"""``--json``: a script reading the lines gets exactly one ``summary`` object, last, at every end of
a run, also when an error stopped it early (its ``error`` says which; stderr and the exit code say
it too). A reader that goes away (``| head``) still ends the command with 141 and no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio.to_thread
import pytest

from evolink_async.cli import main
from evolink_async.sandbox import Sandbox
from tests.helpers.cli import json_lines
from tests.helpers.dead_host import dead_host
from tests.helpers.images import write_png


def _argv(tmp_path: Path, sandbox: Sandbox, *extra: str, base_url: str | None = None) -> list[str]:
    for index in range(6):
        write_png(tmp_path / "in" / f"{index}.png", shade=index * 30)
    return ["edit", str(tmp_path / "in"), "--prompt", "autumn", "--out", str(tmp_path / "out"), "--json",
            "--max-in-flight", "2", "--base-url", base_url or sandbox.base_url,
            "--files-base-url", sandbox.files_base_url, "--api-key", sandbox.api_key, "--poll-scale", "0.01",
            *extra]  # fmt: skip


def _last_summary(out: str) -> dict[str, Any]:
    lines = json_lines(out)
    assert [line["kind"] for line in lines].count("summary") == 1, out
    assert lines[-1]["kind"] == "summary", out
    return lines[-1]


async def test_a_run_stopped_by_a_refused_model_ends_with_its_summary(
    evolink_sandbox: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = _argv(tmp_path, evolink_sandbox, "--model", "qwen-image-editt")
    assert await anyio.to_thread.run_sync(main, argv) == 2
    out, err = capsys.readouterr()
    summary = _last_summary(out)
    assert summary["error"].startswith("ModelUnavailableError: ")
    assert summary["ok"] is False
    assert summary["submitted"] == 0
    assert err.count("evolink: ") == 1  # the error itself once, on stderr
    assert evolink_sandbox.api_key not in out + err


async def test_a_run_that_cannot_reach_the_server_ends_with_its_summary(
    evolink_sandbox: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with dead_host(refuse=True) as host:
        argv = _argv(tmp_path, evolink_sandbox, base_url=host.url)
        code = await anyio.to_thread.run_sync(main, argv)
    out, err = capsys.readouterr()
    assert code == 2, err
    summary = _last_summary(out)
    assert summary["error"].startswith("APIUnreachableError: ")
    assert summary["ok"] is False


@pytest.mark.evolink_sandbox(credits=2.0)
async def test_a_run_out_of_credits_ends_with_its_summary(
    evolink_sandbox: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await anyio.to_thread.run_sync(main, _argv(tmp_path, evolink_sandbox)) == 1
    summary = _last_summary(capsys.readouterr().out)
    assert "not_submitted" in {failed["code"] for failed in summary["failed"]}


async def test_a_stopped_run_into_a_closed_pipe_exits_141_without_a_traceback(
    evolink_sandbox: Sandbox, tmp_path: Path
) -> None:
    # `evolink edit ... --model typo --json | head -1`, made certain: the reader is gone before the first line.
    argv = [sys.executable, "-m", "evolink_async", *_argv(tmp_path, evolink_sandbox, "--model", "qwen-image-editt")]
    reader, writer = os.pipe()
    os.close(reader)
    try:  # in a thread: this loop serves the sandbox meanwhile
        done = await anyio.to_thread.run_sync(lambda: subprocess.run(
            argv, stdout=writer, stderr=subprocess.PIPE, text=True, timeout=60, stdin=subprocess.DEVNULL))  # fmt: skip
    finally:
        os.close(writer)
    assert done.returncode == 141, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
