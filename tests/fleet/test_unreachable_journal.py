"""The short fleet commands (``batch plan``, ``status``, ``export``) with a journal nobody answers at:
one line naming the socket or host (never the password), exit 2, without the 60 s a worker waits
for a journal that is restarting, and without naming ``--journal-outage`` (they have none)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from evolink_async.batch import PgJournal
from evolink_async.batch._entries import JournalError
from tests.helpers.cli import run_cli
from tests.helpers.fleet_cli import manifest


@pytest.fixture
def refusing_socket_dir(tmp_path: Path) -> Iterator[Path]:
    """A folder whose PostgreSQL socket file exists but is not listening: every connection is refused."""
    folder = tmp_path / "pg"
    folder.mkdir()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as bound:
        bound.bind(str(folder / ".s.PGSQL.5432"))
        yield folder


def _commands(url: str, tmp_path: Path) -> list[list[str]]:
    return [["batch", "status", "--journal", url], ["batch", "export", "--journal", url],
            ["batch", "plan", str(manifest(tmp_path / "m.jsonl", 1)), "--journal", url]]  # fmt: skip


def _each_command_says(url: str, tmp_path: Path, line: str) -> None:
    """Every short command on ``url`` exits 2 with ``line`` alone on stderr, nothing on stdout."""
    for argv in _commands(url, tmp_path):
        done = run_cli(argv, bound=40)
        assert done.returncode == 2, done.stderr
        assert done.stderr.splitlines() == [line]
        assert done.stdout == ""


def test_a_missing_socket_file_is_said_at_once_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nonexist"
    url = f"postgresql://postgres:s3cret-pw@/e2?host={missing}"
    _each_command_says(url, tmp_path,
                       f"evolink: cannot reach the journal at the socket {missing}/.s.PGSQL.5432: No such file or directory")  # fmt: skip


def test_a_refused_connection_is_said_at_once_naming_the_socket(refusing_socket_dir: Path, tmp_path: Path) -> None:
    url = f"postgresql://postgres:s3cret-pw@/e2?host={refusing_socket_dir}"
    _each_command_says(url, tmp_path,
                       f"evolink: cannot reach the journal at the socket {refusing_socket_dir}/.s.PGSQL.5432: Connection refused")  # fmt: skip


async def test_a_journal_with_a_connect_timeout_refuses_to_wait_for_a_socket_nobody_listens_on(
    refusing_socket_dir: Path,
) -> None:
    journal = PgJournal(f"postgresql://postgres@/e2?host={refusing_socket_dir}", connect_timeout=5)
    with pytest.raises(JournalError, match=r"at the socket .*\.s\.PGSQL\.5432: Connection refused"):
        await journal.__aenter__()
