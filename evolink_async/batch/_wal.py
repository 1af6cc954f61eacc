"""A worker's write-ahead file of task ids: what was paid for survives a journal that is away, and a crash.

The moment a submit is answered, its task id is appended here (one JSON line, fsynced) before
anything else is tried: a worker killed, or a journal unreachable past its bound, between the
answer and the journal's record loses nothing that was paid for. The next worker started with the
same file (``--wal``; by default one per journal in the user's state folder) replays it: every
task id not yet in the journal is recorded there and watched, never submitted again.

Several workers on one machine may share the name: each worker process appends to a file of
its own next to it (``FILE.<pid>-<random>``: one writer, no lock, so a worker frozen in the middle
of an append holds no other worker up), and a replay reads them all. A file whose records the
journal holds is rewritten without them by its owner, or removed by a later worker once its
owner is gone.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import threading
import uuid
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
    """``append`` (durable before it returns), ``records`` (all workers', oldest first per file), ``forget``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.own = path.with_name(f"{path.name}.{os.getpid()}-{uuid.uuid4().hex[:6]}")
        self._lock = threading.Lock()  # appends and rewrites run in worker threads of one process

    def append(self, record: WalRecord) -> None:
        with self._lock:
            self.own.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.own, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                _write_all(fd, record.line())
                os.fsync(fd)
            finally:
                os.close(fd)

    def _files(self) -> list[Path]:
        if not self.path.parent.is_dir():
            return []
        return sorted(f for f in self.path.parent.glob(f"{glob.escape(self.path.name)}.*")
                      if not f.name.endswith(".tmp"))  # fmt: skip

    def records(self) -> list[WalRecord]:
        return [record for file in self._files() for record in _read(file)]

    def forget(self, done: set[WalRecord]) -> None:
        """Drop ``done`` records (the journal holds them) from this worker's file; remove other
        workers' files that hold nothing else once their process is gone."""
        if not done:
            return
        with self._lock:
            for file in self._files():
                records = _read(file)
                if file == self.own:
                    kept = [record for record in records if record not in done]
                    if len(kept) < len(records):
                        _rewrite(file, kept)
                elif all(record in done for record in records) and not _alive(file):
                    file.unlink(missing_ok=True)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _read(file: Path) -> list[WalRecord]:
    try:
        data = file.read_bytes()
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


def _rewrite(file: Path, records: list[WalRecord]) -> None:
    temporary = file.with_name(file.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        _write_all(fd, b"".join(record.line() for record in records))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, file)


def _alive(file: Path) -> bool:
    """Whether the process that owns ``file`` (its name ends ``.<pid>-<random>``) still runs here."""
    pid = file.name.rsplit(".", 1)[-1].split("-", 1)[0]
    if not pid.isdigit():
        return True  # not one of ours: left alone
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
