"""Every numeric option of every ``evolink`` command refuses NaN, infinities, out-of-range values
and non-numbers: exit 2 and one ``evolink:`` line naming the option, never a traceback or a run.

The options are found by walking the real parser, so an option added later is tested too (and the
list below must name it: a new numeric option is a decision, not an accident).
"""

from __future__ import annotations

import argparse
import math
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
    ("batch work", "--journal-outage"), ("batch work", "--uncertain-slot-hold"),
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


# ``evolink sandbox`` (and ``python -m evolink_async.sandbox``) has a parser of its own, handed the
# command line whole: its numeric options, with the values 0 may take (a port 0 is any free one).
SANDBOX_EXPECTED = {
    "--port", "--files-port", "--time-scale", "--seed", "--credits", "--max-files", "--rate-limit",
    "--duration-spread", "--slow-delay", "--callback-drop-rate", "--callback-duplicate-rate",
    "--server-error-rate", "--rate-limit-rate", "--reset-before-rate", "--reset-after-rate", "--slow-rate",
    "--malformed-rate", "--task-failure-rate", "--stuck-rate", "--mj-blank-status-for", "--mj-concurrency",
    "--mj-queue-size", "--mj-queue-full-code", "--mj-timeout", "--mj-hook-drop-rate", "--mj-hook-duplicate-rate",
    "--mj-hook-delay",
}  # fmt: skip
SANDBOX_ZERO_ALLOWED = {
    "--port", "--files-port", "--seed", "--credits", "--slow-delay", "--mj-blank-status-for", "--mj-queue-size",
    "--mj-hook-delay", *(option for option in SANDBOX_EXPECTED if option.endswith("-rate")),
}  # fmt: skip


def _sandbox_parser() -> argparse.ArgumentParser:
    from evolink_async.cli._options import Parser
    from evolink_async.sandbox.__main__ import _parser

    return _parser("evolink sandbox", parser_class=Parser)  # as `evolink sandbox` builds it


#: Sandbox options with a checking type that are not numbers (the key: at least 8 printable characters).
SANDBOX_TEXT_OPTIONS = frozenset({"--api-key"})


def _sandbox_numeric_actions() -> dict[str, argparse.Action]:
    return {
        max(action.option_strings, key=len): action
        for action in _sandbox_parser()._actions
        if action.type is not None and action.type is not str and action.option_strings
        and max(action.option_strings, key=len) not in SANDBOX_TEXT_OPTIONS
    }


def test_the_table_names_every_numeric_option_of_the_sandbox() -> None:
    assert set(_sandbox_numeric_actions()) == SANDBOX_EXPECTED


SANDBOX_CASES = [
    pytest.param(option, value, id=f"sandbox-{option}={value or 'empty'}")
    for option in sorted(SANDBOX_EXPECTED)
    for value in [*BAD, *([] if option in SANDBOX_ZERO_ALLOWED else ["0"])]
    if not (option == "--credits" and value == HUGE_WHOLE)  # a finite balance, however large, is one
]


@pytest.mark.parametrize(("option", "value"), SANDBOX_CASES)
def test_a_bad_numeric_sandbox_option_exits_2_with_one_line_naming_it(
    option: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Parsed only: a value the parser let through would start a server (the command's next step).
    nargs = _sandbox_numeric_actions()[option].nargs
    argv = [f"{option}={value}"] if nargs is None else [option, "1", value]  # LOW HIGH: the second is bad
    with pytest.raises(SystemExit) as info:
        _sandbox_parser().parse_args(argv)
    err = capsys.readouterr().err
    assert info.value.code == 2, err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("evolink: sandbox: "), err
    assert option in lines[0], err


@pytest.mark.parametrize(
    "argv",
    [["--port", "70000"], ["--rate-limit", "inf"], ["--slow-delay", "nan"], ["--mj-timeout", "nan"],
     ["--server-error-rate", "0.6", "--rate-limit-rate", "0.6"]],
    ids=["port-70000", "rate-limit-inf", "slow-delay-nan", "mj-timeout-nan", "rates-past-1"],
)  # fmt: skip
def test_evolink_sandbox_exits_2_before_serving(argv: list[str]) -> None:
    # Before the fix: a traceback from bind() (exit 1), or a sandbox serving until the timeout.
    done = subprocess.run([sys.executable, "-m", "evolink_async", "sandbox", *argv], capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("evolink: sandbox: "), done.stderr
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert "ready" not in done.stdout


def test_the_sandbox_config_refuses_what_its_options_refuse() -> None:
    """The library side of the same options: ``Sandbox(...)``'s values, checked by the same rules."""
    from evolink_async.errors import ValidationError
    from evolink_async.sandbox import Faults, MidjourneyOptions
    from evolink_async.sandbox._config import SandboxConfig

    for build, field in [
        (lambda: Faults(slow_delay=math.nan), "slow_delay"),
        (lambda: SandboxConfig(rate_limit=math.inf), "rate_limit"),
        (lambda: SandboxConfig(credits=math.nan), "credits"),
        (lambda: MidjourneyOptions(timeout=math.nan), "timeout"),
        (lambda: MidjourneyOptions(blank_status_for=math.inf), "blank_status_for"),
    ]:
        with pytest.raises(ValidationError) as info:
            build()
        assert info.value.field == field
