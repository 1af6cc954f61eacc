"""An empty path on ``evolink batch`` (``--out ''``, ``--wal ''``, ``--root ''``, ``--output ''``) is a usage error naming
the flag (exit 2), before anything runs: never the current folder, never silently the default."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from tests.helpers.fleet_cli import ENV, evolink, manifest


@pytest.mark.parametrize(("flag", "rule"), [("--out", "must be a folder path"), ("--wal", "must be a file path")])
async def test_batch_work_refuses_an_empty_path_naming_its_flag(
    journal_url: str, tmp_path: Path, flag: str, rule: str
) -> None:
    argv = evolink("batch", "work", "--journal", journal_url, "--api-key", "sk-test", flag, "")
    with anyio.fail_after(60):
        done = await anyio.run_process(argv, env=ENV, cwd=tmp_path, check=False)
    stderr = done.stderr.decode()
    assert done.returncode == 2, stderr
    assert stderr.splitlines() == [f"evolink: {flag}: {rule}, got ''"]
    assert list(tmp_path.iterdir()) == []  # nothing written where the command ran


async def test_batch_plan_refuses_an_empty_root(journal_url: str, tmp_path: Path) -> None:
    source = manifest(tmp_path / "m.jsonl", 1)
    argv = evolink("batch", "plan", str(source), "--journal", journal_url, "--root", "")
    with anyio.fail_after(60):
        done = await anyio.run_process(argv, env=ENV, check=False)
    assert done.returncode == 2, done.stderr.decode()
    assert done.stderr.decode().splitlines() == ["evolink: --root: must be a folder path, got ''"]



async def test_batch_export_refuses_an_empty_output_file(journal_url: str, tmp_path: Path) -> None:
    with anyio.fail_after(60):
        done = await anyio.run_process(evolink("batch", "export", "--journal", journal_url, "--output", ""),
                                       env=ENV, cwd=tmp_path, check=False)  # fmt: skip
    assert done.returncode == 2, done.stderr.decode()
    assert done.stderr.decode().splitlines() == ["evolink: --output: must be a file path, got ''"]
    assert done.stdout == b""
