"""The ``evolink`` command line: batch-edit image folders, resumably, with live progress.

>>> main(["demo"])          # sample images through an in-process sandbox; no key, no network
>>> main(["edit", "photos", "--prompt", "make it autumn", "--out", "results"])
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence

from .._clients.evolink import MissingAPIKeyError
from ..batch._entries import JournalError
from ..batch._spec import BatchLockedError
from ..errors import EvolinkError, ValidationError
from . import _commands, _fleet
from ._args import build_parser
from ._reporters import make_reporter

__all__ = ["main"]

_RESUME_HINT = "interrupted: nothing is lost; run the same command again to resume"


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``evolink`` command; returns the exit code (0 ok, 1 an input failed, 2 usage, 130 Ctrl-C)."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["sandbox"]:
        # Handed over whole: argparse's REMAINDER would not take the sandbox's own --options.
        from ..sandbox.__main__ import main as sandbox_main

        return sandbox_main(arguments[1:])
    args = build_parser().parse_args(arguments)
    reporter = make_reporter(json_lines=args.json)
    command = {"batch": _commands.batch, "demo": _commands.demo, "status": _commands.status,
               "watch": _commands.watch, "fleet": _fleet.run}[args.command]  # fmt: skip
    try:
        return asyncio.run(command(args, reporter))
    except KeyboardInterrupt:
        print(_RESUME_HINT if args.command == "batch" else "interrupted", file=sys.stderr)
        return _commands.EXIT_INTERRUPTED
    except MissingAPIKeyError as exc:
        print(f"evolink: {exc}. To try it without a key: evolink demo", file=sys.stderr)
        return _commands.EXIT_USAGE
    except (ValidationError, BatchLockedError, JournalError) as exc:
        print(f"evolink: {exc}", file=sys.stderr)
        return _commands.EXIT_USAGE
    except EvolinkError as exc:  # e.g. a wrong key: the error text never contains the key
        print(f"evolink: {type(exc).__name__}: {exc}", file=sys.stderr)
        return _commands.EXIT_FAILED
