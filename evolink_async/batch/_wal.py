"""A worker's write-ahead file of task ids: what was paid for survives a journal that is away, and a crash.

The moment a submit is answered, its task id is appended here (one JSON line, fsynced) before
anything else is tried: a worker killed, or a journal unreachable past its bound, between the
answer and the journal's record loses nothing that was paid for. The next worker started with the
same file (``--wal``; by default one per journal in the user's state folder) replays it: every
task id not yet in the journal is recorded there and watched, never submitted again.

Several workers on one machine may share the file: each append is one ``write`` on an
``O_APPEND`` descriptor under an exclusive ``flock``, and only the replay rewrites the file
(under the same lock, atomically by rename), dropping the records the journal now holds.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import attrs

__all__ = ["WalRecord", "WriteAheadFile", "default_wal_path"]


@attrs.frozen(kw_only=True)
class WalRecord:
    """A submit's answer: the input (``key`` and its journal-given ``idempotency_key``) and its task."""

    key: str
    idempotency_key: str
    task_id: str

    def line(self) -> bytes:
        data = {"key": self.key, "idempotency_key": self.idempotency_key, "task_id": self.task_id}
        return (json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


def default_wal_path(journal_url: str) -> Path:
    """One file per journal (named by a hash of its URL: no password in a file name) in the state folder."""
    state = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    digest = hashlib.sha256(journal_url.encode()).hexdigest()[:16]
    return state / "evolink" / f"fleet-{digest}.wal"


class WriteAheadFile:
    """``append`` (durable before it returns), ``records`` (all, oldest first), ``forget`` (rewrite without some)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock_path = path.with_name(path.name + ".lock")

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def append(self, record: WalRecord) -> None:
        with self._locked():
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, record.line())
                os.fsync(fd)
            finally:
                os.close(fd)

    def records(self) -> list[WalRecord]:
        with self._locked():
            return self._read()

    def _read(self) -> list[WalRecord]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        found: list[WalRecord] = []
        for raw in data.splitlines():
            try:
                item = json.loads(raw)
                found.append(WalRecord(key=str(item["key"]), idempotency_key=str(item["idempotency_key"]),
                                       task_id=str(item["task_id"])))  # fmt: skip
            except (ValueError, KeyError, TypeError):
                continue  # a line torn by a crash mid-write: its append never returned, so never relied on
        return found

    def forget(self, done: set[WalRecord]) -> None:
        """Drop ``done`` records (the journal holds them), keeping whatever was appended meanwhile."""
        if not done:
            return
        with self._locked():
            kept = [record for record in self._read() if record not in done]
            temporary = self.path.with_name(self.path.name + ".tmp")
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, b"".join(record.line() for record in kept))
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temporary, self.path)
