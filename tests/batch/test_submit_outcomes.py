"""How a folder batch records a submit that failed, by what the failure means (errors.py's rules)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from evolink_async import EvolinkClient, RetryPolicy
from evolink_async.batch._entries import EntryStatus
from evolink_async.batch._run import Batch
from evolink_async.batch._spec import BatchSpec
from evolink_async.batch._sqlite_store import Journal
from evolink_async.sandbox import Faults, Sandbox
from tests.helpers.images import write_png

Build = Callable[..., EvolinkClient]


@pytest.mark.evolink_sandbox(faults=Faults(malformed_rate=1.0))
async def test_a_garbled_submit_answer_leaves_the_input_pending_for_its_same_key(
    evolink_sandbox: Sandbox, scaled_client: Build, tmp_path: Path
) -> None:
    """A 200 whose body is cut off came after the task was created (and billed): like a lost
    connection, the input stays pending so that a re-run sends its same idempotency key, instead
    of being recorded as refused (which ``--retry-failed`` would submit under a new key)."""
    write_png(tmp_path / "in" / "a.png")
    spec = BatchSpec(model="qwen-image-edit", prompt="make it autumn", input_dir=tmp_path / "in",
                     output_dir=tmp_path / "out")  # fmt: skip
    retry = RetryPolicy(max_retries=2, initial_delay=0.0, max_delay=0.0)
    async with scaled_client(evolink_sandbox, retry=retry) as client:
        summary = await Batch(client, spec).run()
    assert [failed.key for failed in summary.failed] == ["a.png"]
    async with Journal(spec.journal_path) as journal:
        entry = await journal.get("a.png")
    assert entry is not None
    assert entry.status is EntryStatus.PENDING_SUBMIT
    assert entry.request_body is not None  # what the key was used for, sent again as it is
    # Three attempts under one key, one task: the sandbox replayed it.
    assert evolink_sandbox.ledger.requests["POST /v1/images/generations"] == 3
    assert len(evolink_sandbox.ledger.billed) == 1
