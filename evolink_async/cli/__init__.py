"""The ``evolink`` command line (filled in by the CLI work)."""

import sys


def main(argv: list[str] | None = None) -> int:
    print("evolink: the command line is not built yet", file=sys.stderr)
    return 2
