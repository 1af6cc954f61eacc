"""The fleet commands against journals and outputs that are not what they should be: one line and
exit 2 (never a traceback), a budget that is no number refused, outside text never raw on a terminal.

Every command is a real ``python -m evolink_async batch ...`` process; the sandbox runs in the
test's process so that its ledger shows that nothing was billed.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import anyio
import asyncpg
import pytest

from evolink_async.sandbox import Sandbox

pytestmark = pytest.mark.evolink_sandbox(time_scale=0.01)

ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}
# C0 (ESC, BEL), DEL, C1 (CSI), bidi override and isolate: none may reach a terminal raw.
HOSTILE_KEY = "k\x1b[2J\x07\x7f\x9b31m\u202eevil\u2066x.png"
RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _evolink(*args: str) -> list[str]:
    return [sys.executable, "-m", "evolink_async", *args]


async def _run(*args: str, timeout: float = 60) -> tuple[int, str, str]:
    with anyio.fail_after(timeout):
        done = await anyio.run_process(_evolink(*args), env=ENV, check=False)
    return done.returncode, done.stdout.decode("utf-8", "replace"), done.stderr.decode("utf-8", "replace")


def _manifest(path: Path, keys: list[str]) -> Path:
    lines = [json.dumps({"key": key, "model": "qwen-image-edit", "prompt": "autumn",
                         "image_urls": [f"https://images.example.com/{i}.png"]}) for i, key in enumerate(keys)]  # fmt: skip
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _connect(sandbox: Sandbox) -> list[str]:
    return ["--base-url", sandbox.base_url, "--files-base-url", sandbox.files_base_url,
            "--api-key", sandbox.api_key, "--poll-scale", "0.01"]  # fmt: skip


def _one_usage_line(code: int, stderr: str) -> str:
    assert code == 2, stderr
    assert "Traceback" not in stderr, stderr
    # A worker's JSON summary line comes first (it always reports what it did); then the one error line.
    lines = [line for line in stderr.splitlines() if not line.startswith('{"')]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("evolink: "), stderr
    return lines[0]


async def test_a_nan_budget_stored_by_an_older_version_is_refused_not_ignored(
    evolink_sandbox: Sandbox, journal_url: str, tmp_path: Path
) -> None:
    code, _, err = await _run("batch", "plan", str(_manifest(tmp_path / "m.jsonl", ["a", "b"])), "--journal",
                              journal_url)  # fmt: skip
    assert code == 0, err
    conn = await asyncpg.connect(journal_url)
    try:
        await conn.execute("UPDATE evolink_fleet SET max_credits = 'NaN'")
    finally:
        await conn.close()
    code, _, err = await _run("batch", "work", "--journal", journal_url, "--poll-interval", "0.05",
                              *_connect(evolink_sandbox))  # fmt: skip
    line = _one_usage_line(code, err)
    assert "max_credits" in line, line
    assert "nan" in line.lower(), line
    assert evolink_sandbox.ledger.billed == []


async def test_a_database_with_another_programs_evolink_entries_table_is_exit_2(journal_url: str) -> None:
    conn = await asyncpg.connect(journal_url)
    try:
        await conn.execute("CREATE TABLE evolink_entries (id integer, name text)")
    finally:
        await conn.close()
    for operation in ("status", "export"):
        code, _, err = await _run("batch", operation, "--journal", journal_url)
        line = _one_usage_line(code, err)
        assert "evolink_entries" in line, line


async def test_export_into_a_missing_folder_is_exit_2_naming_it(journal_url: str, tmp_path: Path) -> None:
    code, _, err = await _run("batch", "plan", str(_manifest(tmp_path / "m.jsonl", ["a"])), "--journal", journal_url)
    assert code == 0, err
    target = tmp_path / "missing" / "out.jsonl"
    code, _, err = await _run("batch", "export", "--journal", journal_url, "-o", str(target))
    line = _one_usage_line(code, err)
    assert str(target) in line, line


def test_export_into_a_closed_pipe_exits_141_quietly(journal_url: str, tmp_path: Path) -> None:
    keys = [f"key-{i:05d}-{'x' * 200}" for i in range(2000)]  # more than a pipe's buffer
    planned = subprocess.run(_evolink("batch", "plan", str(_manifest(tmp_path / "m.jsonl", keys)), "--journal",
                                      journal_url), capture_output=True, text=True, timeout=120, env=ENV)  # fmt: skip
    assert planned.returncode == 0, planned.stderr
    export = subprocess.Popen(_evolink("batch", "export", "--journal", journal_url), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=ENV)  # fmt: skip
    assert export.stdout is not None
    assert export.stderr is not None
    export.stdout.readline()  # `| head -1`: one line, then the reader goes away
    export.stdout.close()
    try:
        export.wait(60)
    finally:
        if export.poll() is None:
            export.kill()
            export.wait(10)
    err = export.stderr.read().decode()
    assert export.returncode == 141, err
    assert "Traceback" not in err, err
    assert "BrokenPipe" not in err, err


async def test_hostile_keys_and_messages_never_reach_the_terminal_raw(
    evolink_sandbox: Sandbox, journal_url: str, tmp_path: Path
) -> None:
    code, _, err = await _run("batch", "plan", str(_manifest(tmp_path / "m.jsonl", [HOSTILE_KEY, "plain.png"])),
                              "--journal", journal_url)  # fmt: skip
    assert code == 0, err
    code, out, err = await _run("batch", "work", "--journal", journal_url, "--poll-interval", "0.05",
                                *_connect(evolink_sandbox))  # fmt: skip
    assert code == 0, err
    assert "submitted" in out, out
    assert "completed" in out, out
    assert not RAW.search(out + err), ascii(out + err)
    code, out, err = await _run("batch", "status", "--journal", journal_url)
    assert code == 0, err
    assert not RAW.search(out + err), ascii(out + err)
    code, out, err = await _run("batch", "export", "--journal", journal_url)
    assert code == 0, err
    assert not RAW.search(out), ascii(out)
    # Escaped, not lost: the JSON still decodes to the key as planned.
    assert {json.loads(line)["key"] for line in out.splitlines()} == {HOSTILE_KEY, "plain.png"}
