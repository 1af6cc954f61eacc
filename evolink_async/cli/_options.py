"""The command line's numeric options and its parser: the library's rules (``_core.checks``), parsed.

Every numeric option of every command takes one of the types below, so ``--lease nan`` is refused
by the same rule as ``WorkerOptions(lease=nan)``; and a bad option is one ``evolink:`` line and
exit 2, not argparse's usage block (nor, as once, a traceback from deep inside the run).

>>> parser.add_argument("--lease", type=SECONDS_OPTION, default=30.0)
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import Any, NoReturn

from ..checks import COUNT, CREDITS, PORT, SCALE, SECONDS, NumberRule
from ._text import printable

__all__ = [
    "COUNT_OPTION", "CREDITS_OPTION", "PORT_OPTION", "SCALE_OPTION", "SECONDS_OPTION", "Parser", "env_number", "option",
]  # fmt: skip


def option(rule: NumberRule, *, name: str) -> Callable[[str], Any]:
    """An argparse ``type``: the option's text parsed and checked by ``rule``."""
    return rule.argparse_type(name)


SECONDS_OPTION = option(SECONDS, name="seconds")
COUNT_OPTION = option(COUNT, name="count")
CREDITS_OPTION = option(CREDITS, name="credits")
SCALE_OPTION = option(SCALE, name="scale")
#: A TCP port, 0 (any free one) to 65535.
PORT_OPTION = option(PORT, name="port")


def env_number(name: str, rule: NumberRule) -> Any:
    """The environment variable ``name`` by ``rule``; None when unset or blank; ``ValidationError`` naming it."""
    text = os.environ.get(name, "").strip()
    return rule.parse(f"${name}", text) if text else None


class Parser(argparse.ArgumentParser):
    """argparse, with a usage error as one ``evolink:`` line (exit 2) instead of the usage block."""

    def error(self, message: str) -> NoReturn:
        command = self.prog.removeprefix("evolink").strip()
        where = f"{command}: " if command else ""
        help_hint = f"{self.prog} --help"
        self.exit(2, f"evolink: {where}{printable(message)} (see {help_hint})\n")
