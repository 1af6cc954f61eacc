"""``evolink edit ''`` is a usage error naming the folder argument (exit 2), not "no image found in "
(exit 1) after looking in the current folder."""

from __future__ import annotations

from pathlib import Path

from tests.helpers.cli import run_cli


def test_edit_refuses_an_empty_folder_argument(tmp_path: Path) -> None:
    done = run_cli(["edit", "", "--out", str(tmp_path / "out"), "--prompt", "p", "--api-key", "sk-test"], cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == ["evolink: DIR: must be a folder path, got ''"]
