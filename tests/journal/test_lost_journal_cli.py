"""``evolink edit`` and ``evolink imagine`` with a lost journal: exit 2 naming it, ``--new-journal`` to go on."""

from __future__ import annotations

import random
from pathlib import Path

import anyio
import pytest

from evolink_async.cli import main
from evolink_async.sandbox import Sandbox
from tests.helpers.images import write_png

JOURNAL = "evolink-journal.sqlite3"


def _connect(sandbox: Sandbox) -> list[str]:
    return ["--base-url", sandbox.base_url, "--files-base-url", sandbox.files_base_url,
            "--api-key", sandbox.api_key, "--poll-scale", "0.01"]  # fmt: skip


@pytest.mark.parametrize("damage", ["rm", "random bytes"])
async def test_edit_with_a_lost_journal_exits_2_and_new_journal_bills_nothing_again(
    evolink_sandbox: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: str
) -> None:
    for index in range(3):
        write_png(tmp_path / "in" / f"{index}.png", shade=index * 40)
    argv = ["edit", str(tmp_path / "in"), "--prompt", "autumn", "--out", str(tmp_path / "out"),
            *_connect(evolink_sandbox)]  # fmt: skip
    assert await anyio.to_thread.run_sync(main, argv) == 0
    journal = tmp_path / "out" / JOURNAL
    if damage == "rm":
        journal.unlink()
    else:
        journal.write_bytes(random.Random(3).randbytes(journal.stat().st_size))
    capsys.readouterr()

    assert await anyio.to_thread.run_sync(main, argv) == 2
    err = capsys.readouterr().err
    assert str(journal) in err
    assert "--new-journal" in err
    assert "Traceback" not in err
    assert len(evolink_sandbox.ledger.billed) == 3

    assert await anyio.to_thread.run_sync(main, [*argv, "--new-journal"]) == 0
    assert "3/3 input(s) have results" in capsys.readouterr().out
    assert len(evolink_sandbox.ledger.billed) == 3


async def test_imagine_with_a_lost_journal_exits_2(
    evolink_sandbox: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["imagine", "a red fox", "--count", "2", "--out", str(tmp_path / "out"), "--base-url",
            evolink_sandbox.mj_base_url, "--api-key", evolink_sandbox.mj_api_key, "--poll-scale", "0.01"]  # fmt: skip
    assert await anyio.to_thread.run_sync(main, argv) == 0
    billed = len(evolink_sandbox.ledger.billed)
    (tmp_path / "out" / JOURNAL).write_bytes(b"")
    capsys.readouterr()
    assert await anyio.to_thread.run_sync(main, argv) == 2
    assert "is empty (0 bytes)" in capsys.readouterr().err
    assert await anyio.to_thread.run_sync(main, [*argv, "--new-journal"]) == 0
    assert len(evolink_sandbox.ledger.billed) == billed
