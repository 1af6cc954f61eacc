"""``evolink``'s dispatch: parse the arguments, run one command under the Ctrl-C runner, map errors
to exit codes (0 ok, 1 an input failed, 2 usage or configuration, 130 Ctrl-C, 141 closed pipe)."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
from collections.abc import Sequence

from ..checks import SCALE
from ..errors import (
    APIUnreachableError,
    AuthenticationError,
    BadRequestError,
    BatchLockedError,
    EndpointMissingError,
    EvolinkError,
    JournalError,
    MissingAPIKeyError,
    ModelUnavailableError,
    NotFoundError,
    NotJSONAnswerError,
    PermissionDeniedError,
    RedirectRefusedError,
    ValidationError,
)
from . import _commands, _fleet, _imagine
from ._args import build_parser
from ._callbacks import CallbackUsageError
from ._exit_codes import EXIT_BROKEN_PIPE, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE
from ._options import Parser, env_number
from ._remedies import cli_field, cli_message, key_variable
from ._reporters import make_reporter
from ._runner import Runner, exit_promptly, flush_output
from ._text import printable

__all__ = ["main"]

_RESUME_HINT = "interrupted: run the same command again to resume"
# The demo's sandbox lives in its process: a second run cannot resume the first's tasks.
_DEMO_HINT = "interrupted: the demo's sandbox ended with it; the next `evolink demo` starts afresh"
_HINTS = {"batch": _RESUME_HINT, "imagine": _RESUME_HINT, "demo": _DEMO_HINT}


class _Hint:
    """The line printed when a command was interrupted: once, whichever path gets there first."""

    def __init__(self, command: str) -> None:
        self.text = _HINTS.get(command, "interrupted")
        self.shown = False

    def show(self) -> None:
        if not self.shown:
            self.shown = True
            # RuntimeError: from a signal handler, a print that interrupted another print (reentrant).
            with contextlib.suppress(OSError, ValueError, RuntimeError):
                print(self.text, file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``evolink`` command; returns the exit code (0 ok, 1 an input failed, 2 usage, 130 Ctrl-C)."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["sandbox"]:
        # Handed over whole: argparse's REMAINDER would not take the sandbox's own --options.
        from ..sandbox.__main__ import main as sandbox_main

        return sandbox_main(arguments[1:], prog="evolink sandbox", export=True, parser_class=Parser)
    args = build_parser().parse_args(arguments)
    hint = _Hint(args.command)
    if argv is None:
        # As the process itself (not a call from Python code): outside the runner (which takes SIGINT
        # while the command runs, and gives this handler back) a Ctrl-C ends the process at once with
        # 130, the hint shown once; never by the signal, which a supervisor would see as -2.
        signal.signal(signal.SIGINT, lambda signum, frame: _exit_interrupted(hint))
    try:
        code = _run(args, hint)
    except KeyboardInterrupt:  # called from Python code: a Ctrl-C after the runner gave SIGINT back
        code = EXIT_INTERRUPTED
    if argv is not None:
        return code
    # A worker thread stuck in file or SQLite I/O must not hold the exit.
    code = exit_promptly(code)
    # From here the interpreter shuts down, and late in that it puts SIGINT back to the default
    # action: a Ctrl-C then would end the process by the signal. Ignored (at the OS level, so also
    # in any thread) the exit code stands; the shutdown is bounded (exit_promptly saw to threads).
    flush_output()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    return code


def _exit_interrupted(hint: _Hint) -> None:
    hint.show()
    flush_output()
    os._exit(EXIT_INTERRUPTED)


def _run(args: argparse.Namespace, hint: _Hint) -> int:
    reporter = make_reporter(json_lines=args.json)
    command_name: str = args.command

    def on_force() -> None:  # a second Ctrl-C: the live view gives the terminal back, the hint once
        stop = getattr(reporter, "stop", None)
        if stop is not None:
            stop()
        hint.show()

    runner = Runner(on_force=on_force)
    reporter.on_broken_pipe = lambda: runner.stop(EXIT_BROKEN_PIPE)
    command = {"batch": _commands.batch, "demo": _commands.demo, "download": _commands.download,
               "status": _commands.status, "watch": _commands.watch, "fleet": _fleet.run,
               "imagine": _imagine.imagine, "mj-action": _imagine.mj_action}[command_name]  # fmt: skip
    try:
        _environment(args)
        code = runner.run(command(args, reporter))
    except Exception as exc:  # one line and an exit code; only a bug of ours shows a traceback
        code = exit_code_for(exc, args)
    if runner.stop_code is not None:  # Ctrl-C, or the output's reader went away (141)
        if runner.stop_code != EXIT_BROKEN_PIPE:  # `| head` got what it wanted: no news
            hint.show()
        return runner.stop_code
    return code


def _environment(args: argparse.Namespace) -> None:
    """Options whose default comes from the environment, checked by the option's rule (naming the variable)."""
    if hasattr(args, "poll_scale") and args.poll_scale is None:
        args.poll_scale = env_number("EVOLINK_POLL_SCALE", SCALE)


def exit_code_for(exc: Exception, args: argparse.Namespace) -> int:
    """The one place that turns an error out of a command into its line on stderr and its exit code.

    2: usage or configuration (a bad option, a wrong key, a path that cannot be written, a base URL
    that is wrong or cannot be reached at all: nothing was submitted); 1: the run failed (inputs
    failed, the server failed a call); 141: the output's reader went away (``| head``). See
    ``_exit_codes``.
    """
    key_env = key_variable(args)
    if isinstance(exc, BrokenPipeError):
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    if isinstance(exc, MissingAPIKeyError):
        _say(f"no API key: set ${key_env}, or pass --api-key-file FILE (--api-key works too, but shows "
             "in the process list). To try it without a key: evolink demo")  # fmt: skip
        return EXIT_USAGE
    if isinstance(exc, AuthenticationError | PermissionDeniedError):  # the error text never contains the key
        _say(f"the API key was refused ({type(exc).__name__}: {printable(exc)}); "
             f"check --api-key, --api-key-file or ${key_env}")  # fmt: skip
        return EXIT_USAGE
    if isinstance(exc, ValidationError):  # the library's field and remedy, as the command line spells them
        _say(printable(cli_message(f"{cli_field(exc.field, args)}: {exc.rule}", exc.remedy)))
        return EXIT_USAGE
    if isinstance(exc, BatchLockedError | JournalError | _commands.UsageError | CallbackUsageError):
        _say(printable(cli_message(str(exc), getattr(exc, "remedy", None))))
        return EXIT_USAGE
    task_id = getattr(args, "task_id", None)
    if isinstance(exc, NotFoundError) and task_id is not None:  # the id the command line named: no such task
        _say(f"task {printable(task_id)} not found (is the id right, and --base-url the server that made it?)")
        return EXIT_USAGE
    # A 400 answering the query of the id the command line named (not a press of mj-action): a malformed id.
    if isinstance(exc, BadRequestError) and task_id is not None and args.command in ("status", "watch", "download"):
        _say(f"{printable(task_id)} is not a task id this server knows the form of ({printable(exc)})")
        return EXIT_USAGE
    if isinstance(exc, ModelUnavailableError):  # a mistyped --model: configuration, every input left pending
        hint = f" ({printable(exc.suggestion)})" if exc.suggestion else ""
        if hasattr(args, "model"):  # a folder's journal keeps its batch's model: another model is another batch
            _say(f"{printable(exc)}{hint}; check --model. Nothing was billed; a run with another model needs "
                 "another --out (this folder's journal is for this model)")  # fmt: skip
        else:
            _say(f"{printable(exc)}{hint}; check the model the batch's lines name (nothing was billed)")
        return EXIT_USAGE
    if isinstance(exc, RedirectRefusedError):  # the server sends its API elsewhere: configuration
        _say(f"{printable(exc)}; check {_url_flag(exc)}")
        return EXIT_USAGE
    if isinstance(exc, NotJSONAnswerError):  # a web page where the API should be: a wrong --base-url
        _say(f"{printable(exc)}; check {_url_flag(exc)}. Inputs sent there stay pending under their "
             "idempotency keys: the same command with the right URL sends them, and every other input")  # fmt: skip
        return EXIT_USAGE
    if isinstance(exc, EndpointMissingError):  # a wrong --base-url: configuration, every input left pending
        flag = _url_flag(exc)
        if flag == "--base-url" and getattr(args, "path_prefix", None) is not None \
                and getattr(args, "protocol", "midjourney") == "midjourney":  # a Midjourney proxy's routes
            flag = "--base-url and --path-prefix"
        _say(f"{printable(exc)}; check {flag}")
        return EXIT_USAGE
    if isinstance(exc, APIUnreachableError):  # a wrong host or no network: nothing was sent
        # Only a run over inputs (it bounds the tasks in flight) has inputs left to submit.
        rerun = " Nothing was submitted: running the same command again submits every input left" \
            if hasattr(args, "max_in_flight") else ""  # fmt: skip
        _say(f"cannot reach the server ({type(exc).__name__}: {printable(exc)}); check {_url_flag(exc)} and the "
             f"network.{rerun}")  # fmt: skip
        # Not "an input failed" (1): nothing ran, and what fixes it is the URL or the network, like a
        # wrong --base-url that answers 404 (a script can tell the two cases apart by the code alone).
        return EXIT_USAGE
    if isinstance(exc, EvolinkError):
        _say(f"{type(exc).__name__}: {printable(cli_message(str(exc), exc.remedy))}")
        return EXIT_FAILED
    if isinstance(exc, OSError):  # a folder or file of the command line that cannot be made, read or written
        where = f"{printable(exc.filename)}: " if exc.filename is not None else ""
        _say(f"{where}{printable(exc.strerror or exc)}")
        return EXIT_USAGE
    raise exc


def _url_flag(exc: EvolinkError) -> str:
    """The option of the host an error's call went to: the Files API's, or the task API's."""
    return "--files-base-url" if "/api/v1/files/" in (getattr(exc, "url", None) or str(exc)) else "--base-url"


def _say(text: str) -> None:
    with contextlib.suppress(OSError, ValueError):
        print(f"evolink: {text}", file=sys.stderr, flush=True)


def _silence_stdout() -> None:
    """After EPIPE: what is still buffered must not raise again at exit (Python's documented recipe)."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
