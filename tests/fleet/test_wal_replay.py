"""Which write-ahead records a worker replays at its start: its own and those of workers that are gone.

A worker started after another had submitted used to take the live worker's records too: their
inputs were leased by their owner, so it retried them every third of a lease and could not end
until then, several seconds after the batch was done (one worker in three, six workers).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from evolink_async.batch._wal import WalRecord, WriteAheadFile


def _write(path: Path, record: WalRecord) -> None:
    path.write_bytes(record.line())


def test_a_live_workers_records_are_its_own_a_dead_ones_are_replayed(tmp_path: Path) -> None:
    base = tmp_path / "fleet.wal"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait(timeout=60)
    live = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        of_dead = WalRecord(key="k1", idempotency_key="i1", task_id="task-unified-1")
        of_live = WalRecord(key="k2", idempotency_key="i2", task_id="task-unified-2")
        _write(base.with_name(f"fleet.wal.{dead.pid}-aaaaaa"), of_dead)
        _write(base.with_name(f"fleet.wal.{live.pid}-bbbbbb"), of_live)
        mine = WriteAheadFile(base)
        own = WalRecord(key="k3", idempotency_key="i3", task_id="task-unified-3")
        mine.append(own)
        assert sorted(mine.records(), key=lambda r: r.key) == [of_dead, own]
    finally:
        assert live.stdin is not None
        live.stdin.close()
        live.wait(timeout=60)
    # Its owner gone, the live worker's file is replayed too.
    assert sorted(mine.records(), key=lambda r: r.key) == [of_dead, of_live, own]
