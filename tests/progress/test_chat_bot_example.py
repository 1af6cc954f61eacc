"""The chat-bot example, run as a user would: it finishes, and edits messages at most once a second."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).parents[2] / "examples" / "chat_bot.py"


def test_the_chat_bot_renders_imagine_and_u2_for_each_user() -> None:
    # The example's Chat raises if a message is edited faster than once a second, so a clean exit
    # is also the proof that the example keeps to the limit (min_gap spaces the progress; the end,
    # delivered at once, waits for its turn: without that it failed on a loaded machine).
    # min_gap's own spacing is tested in test_cadence.py.
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), "--sandbox", "--users", "3", "--time-scale", "0.1"],
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    summary = re.search(r"done: (\d+) messages, (\d+) edits", done.stdout)
    assert summary is not None, done.stdout
    messages, edits = int(summary[1]), int(summary[2])
    assert messages == 6  # an imagine and a U2 per user
    assert edits > messages  # progress edits along the way, not only the final one
    assert "U2: done" in done.stdout
