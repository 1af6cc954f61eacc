"""``evolink batch status --watch`` in a terminal: the live view's last frame stays on the screen,
so it must not end asking for a Ctrl-C that nobody needs to press."""

from __future__ import annotations

import os
from pathlib import Path

import anyio
import pytest

from evolink_async.sandbox import Sandbox
from tests.helpers.cli import start_under_pty
from tests.helpers.fleet_cli import evolink, manifest, plan, run_workers, work_argv

pytestmark = pytest.mark.evolink_sandbox(time_scale=0.01)


async def test_the_live_status_of_a_finished_batch_ends_saying_so_not_ctrl_c(
    evolink_sandbox: Sandbox, journal_url: str, tmp_path: Path
) -> None:
    assert (await plan(journal_url, manifest(tmp_path / "m.jsonl", 2))).returncode == 0
    ((code, _, stderr),) = await run_workers([work_argv(tmp_path, journal_url, evolink_sandbox, None)])
    assert code == 0, stderr
    process, reader, master = start_under_pty(evolink("batch", "status", "--journal", journal_url, "--watch", "0.1"))
    try:
        assert await anyio.to_thread.run_sync(lambda: process.wait(timeout=60)) == 0
        reader.join(10)  # the child is gone: the pty reads to its end
    finally:
        if process.poll() is None:
            process.kill()
        os.close(master)
    screen = reader.data.decode(errors="replace")
    assert "2/2 finished" in screen
    assert "(finished; read at " in screen
    assert "Ctrl-C" not in screen
