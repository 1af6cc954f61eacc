"""Every numeric option of every ``evolink`` command refuses NaN, infinities, out-of-range values
and non-numbers: exit 2 and one ``evolink:`` line naming the option, never a traceback or a run.

The options are found by walking the real parser, so an option added later is tested too (and the
list below must name it: a new numeric option is a decision, not an accident).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterator

import pytest

from evolink_async.cli import main
from evolink_async.cli._args import build_parser

# A valid command line per command: only the option under test is wrong.
BASE = {
    "edit": ["edit", "in", "--prompt", "p", "--out", "out"],
    "remove-bg": ["remove-bg", "in", "--out", "out"],
    "retexture": ["retexture", "in", "--prompt", "p", "--out", "out"],
    "batch work": ["batch", "work", "--journal", "postgresql://db.invalid/x"],
    "batch status": ["batch", "status", "--journal", "postgresql://db.invalid/x"],
    "imagine": ["imagine", "a fox", "--out", "out"],
    "mj-action": ["mj-action", "1712345678901123", "U2"],
    "status": ["status", "task-1"],
    "watch": ["watch", "task-1"],
    "download": ["download", "task-1", "--out", "out"],
    "demo": ["demo"],
}

# Every numeric option, and whether 0 is a valid value of it (a budget of 0 submits nothing).
EXPECTED = {
    ("edit", "--max-in-flight"), ("edit", "--timeout"), ("edit", "--max-credits"), ("edit", "--poll-scale"),
    ("remove-bg", "--max-in-flight"), ("remove-bg", "--timeout"), ("remove-bg", "--max-credits"),
    ("remove-bg", "--poll-scale"),
    ("retexture", "--max-in-flight"), ("retexture", "--timeout"), ("retexture", "--max-credits"),
    ("retexture", "--poll-scale"),
    ("batch work", "--max-in-flight"), ("batch work", "--max-credits"), ("batch work", "--claim-size"),
    ("batch work", "--max-held"), ("batch work", "--lease"), ("batch work", "--poll-interval"),
    ("batch work", "--journal-outage"),
    ("batch work", "--poll-scale"),
    ("batch status", "--watch"),
    ("imagine", "--count"), ("imagine", "--max-in-flight"), ("imagine", "--timeout"), ("imagine", "--poll-scale"),
    ("mj-action", "--timeout"), ("mj-action", "--poll-scale"),
    ("status", "--poll-scale"), ("watch", "--timeout"), ("watch", "--poll-scale"), ("download", "--poll-scale"),
    ("demo", "--count"), ("demo", "--time-scale"), ("demo", "--seed"),
    ("edit", "--metrics-port"), ("remove-bg", "--metrics-port"), ("retexture", "--metrics-port"),
    ("batch work", "--metrics-port"),
}  # fmt: skip
ZERO_ALLOWED = {"--max-credits", "--seed", "--metrics-port"}  # port 0: any free port
HUGE_WHOLE = "99999999999999999999999"
BAD = ["nan", "NaN", "inf", "-inf", "-1", "1e400", HUGE_WHOLE, "abc", ""]


def _commands(parser: argparse.ArgumentParser, prefix: str = "") -> Iterator[tuple[str, argparse.ArgumentParser]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, f"{prefix} {name}".strip())
    if prefix:
        yield prefix, parser


def numeric_options() -> set[tuple[str, str]]:
    found = set()
    for command, parser in _commands(build_parser()):
        for action in parser._actions:
            if action.type is not None and action.type is not str and action.option_strings:
                found.add((command, max(action.option_strings, key=len)))
    return found


def test_the_table_names_every_numeric_option() -> None:
    assert numeric_options() == EXPECTED


CASES = [
    pytest.param(command, option, value, id=f"{command}-{option}={value or 'empty'}")
    for command, option in sorted(EXPECTED)
    for value in [*BAD, *([] if option in ZERO_ALLOWED else ["0"])]
    if not (option == "--max-credits" and value == HUGE_WHOLE)  # a finite budget, however large, is one
]


@pytest.mark.parametrize(("command", "option", "value"), CASES)
def test_a_bad_numeric_option_exits_2_with_one_line_naming_it(
    command: str, option: str, value: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EVOLINK_POLL_SCALE", raising=False)
    with pytest.raises(SystemExit) as info:
        main([*BASE[command], f"{option}={value}"])
    err = capsys.readouterr().err
    assert info.value.code == 2, err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("evolink: "), err
    assert option in lines[0], err
    assert "Traceback" not in err


@pytest.mark.parametrize("value", ["nan", "inf", "0", "-2", "abc", "1e400"])
def test_a_bad_poll_scale_from_the_environment_names_the_variable(
    value: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    monkeypatch.setenv("EVOLINK_POLL_SCALE", value)
    assert main(["status", "task-1", "--api-key", "sk-evo-TESTKEY0123456789"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("evolink: $EVOLINK_POLL_SCALE: "), err


@pytest.mark.parametrize(
    "argv",
    [
        ["batch", "work", "--journal", "postgresql://db.invalid/x", "--lease", "nan"],
        ["batch", "work", "--journal", "postgresql://db.invalid/x", "--max-credits", "-1"],
        ["batch", "work", "--journal", "postgresql://db.invalid/x", "--max-in-flight", "0"],
        ["batch", "status", "--journal", "postgresql://db.invalid/x", "--watch", "nan"],
    ],
    ids=["lease-nan", "max-credits-negative", "max-in-flight-0", "watch-nan"],
)
def test_the_process_exits_2_before_connecting_to_anything(argv: list[str]) -> None:
    done = subprocess.run([sys.executable, "-m", "evolink_async", *argv], capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("evolink: batch "), done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.splitlines()) == 1, done.stderr
