"""``--uncertain-slot-hold``: how long an ``uncertain`` input keeps its slot under the batch-wide bound.

An ``uncertain`` input's task may be running, so it keeps its slot (30 minutes by default); an
operator who knows better (a server that answers fast, a short job) shortens the hold from the
command line, by the same numeric rules as every other option.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import anyio
import pytest

from evolink_async.batch import PgJournal
from evolink_async.batch._entries import EntryStatus
from evolink_async.sandbox import Sandbox
from tests.helpers.fleet_cli import export, manifest, plan, run_workers, work_argv

pytestmark = pytest.mark.evolink_sandbox(time_scale=0.01)


async def _leave_one_uncertain(url: str) -> str:
    """A worker that began a submit and vanished: after its lease, its input is ``uncertain``."""
    async with PgJournal(url) as journal:
        await journal.set_limits(max_in_flight=1)
        (claimed,) = (await journal.claim("vanished", limit=1, lease=0.5)).items
        assert await journal.begin_submit(claimed.entry.key, "vanished", "{}", epoch=claimed.epoch) is not None
        with anyio.fail_after(30):  # its lease runs out; the next claim marks it, and finds no free slot
            while (await journal.get(claimed.entry.key)).status is not EntryStatus.UNCERTAIN:  # type: ignore[union-attr]
                assert not (await journal.claim("other", limit=1, lease=30)).items
                await anyio.sleep(0.05)
        assert not (await journal.claim("other", limit=1, lease=30)).items  # held for 1800 s by default
        return claimed.entry.key


async def test_a_shorter_hold_from_the_command_line_frees_the_uncertain_inputs_slot(
    evolink_sandbox: Sandbox, journal_url: str, tmp_path: Path
) -> None:
    assert (await plan(journal_url, manifest(tmp_path / "m.jsonl", 2))).returncode == 0
    uncertain = await _leave_one_uncertain(journal_url)
    argv = work_argv(tmp_path, journal_url, evolink_sandbox, None, "--uncertain-slot-hold", "0.2")
    ((code, _, stderr),) = await run_workers([argv], timeout=60)
    assert code == 0, stderr  # the uncertain input is not this worker's: it only waited for its slot
    summary = json.loads(stderr.strip().splitlines()[-1])
    assert summary["submitted"] == 1
    rows = {row["key"]: row["outcome"] for row in await export(journal_url)}
    assert rows.pop(uncertain) == "uncertain"
    assert Counter(rows.values()) == {"completed": 1}
    assert len(evolink_sandbox.ledger.billed) == 1
    async with PgJournal(journal_url) as journal:
        assert (await journal.limits())["uncertain_slot_hold"] == 0.2  # batch-wide: kept in the journal
