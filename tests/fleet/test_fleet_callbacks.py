"""``evolink batch work --callbacks URL --listen HOST:PORT``: a fleet worker settles a submit whose
answer was lost by the task's callback, by the same fan-out path as the one-machine batch, instead
of sending it again (which a server that ignores ``Idempotency-Key`` bills twice) or leaving the
input ``uncertain``."""

from __future__ import annotations

import json
import socket
from collections import Counter
from pathlib import Path

import pytest

from evolink_async.sandbox import Faults, Sandbox
from tests.helpers.fleet_cli import export, manifest, plan, run_workers, work_argv

COUNT = 20


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


# reset_after: the sandbox creates and bills the task, then drops the connection (the answer is lost).
# A long callback timeout (1000 API s = 10 s): a loaded machine's receiver is slow, not gone.
@pytest.mark.evolink_sandbox(time_scale=0.01, seed=11, faults=Faults(reset_after_rate=0.3),
                             honor_idempotency_keys=False, callback_timeout=1000.0)  # fmt: skip
async def test_lost_submit_answers_are_settled_by_callback_each_input_billed_once(
    evolink_sandbox: Sandbox, journal_url: str, tmp_path: Path
) -> None:
    assert (await plan(journal_url, manifest(tmp_path / "m.jsonl", COUNT))).returncode == 0
    port = _free_port()
    callbacks = ["--callbacks", f"http://127.0.0.1:{port}/hooks", "--listen", f"127.0.0.1:{port}",
                 "--allow-local-callbacks"]  # fmt: skip
    argv = work_argv(tmp_path, journal_url, evolink_sandbox, None, "--max-in-flight", str(COUNT), *callbacks)
    ((code, _, stderr),) = await run_workers([argv], timeout=120)
    assert code == 0, stderr[-3000:]
    summary = json.loads(stderr.strip().splitlines()[-1])
    assert summary["recovered_submits"] > 0  # answers were lost, and settled
    assert summary["uncertain"] == 0
    ledger = evolink_sandbox.ledger
    assert len(ledger.billed) == len(set(ledger.billed)) == COUNT  # never sent twice
    rows = await export(journal_url)
    assert Counter(row["outcome"] for row in rows) == {"completed": COUNT}
    assert {row["task_id"] for row in rows} == set(ledger.billed)
