"""The ``evolink`` command line: batch-edit image folders, resumably, with live progress.

This module stays light so that a Ctrl-C while the command's modules load ends the process with
exit code 130 and no traceback.

>>> main(["demo"])          # sample images through an in-process sandbox; no key, no network
>>> main(["edit", "photos", "--prompt", "make it autumn", "--out", "results"])
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Sequence

from ._exit_codes import EXIT_INTERRUPTED

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``evolink`` command; returns the exit code (0 ok, 1 an input failed, 2 usage, 130 Ctrl-C)."""
    if argv is None and sys.argv[1:2] != ["sandbox"]:  # the process itself (the sandbox stops on its own)
        # Until the command's own handler is in place, a Ctrl-C ends the process with 130 at once.
        signal.signal(signal.SIGINT, _exit_interrupted)
    try:
        from ._main import main as run
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return run(argv)


def _exit_interrupted(signum: int, frame: object) -> None:
    with contextlib.suppress(OSError, ValueError, RuntimeError):  # RuntimeError: it interrupted another print
        print("interrupted", file=sys.stderr, flush=True)
    os._exit(EXIT_INTERRUPTED)
