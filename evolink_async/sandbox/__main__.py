"""``python -m evolink_async.sandbox``: a standalone sandbox until Ctrl-C or SIGTERM.

When both servers listen it prints, one per line and flushed, shell-ready assignments
(``EVOLINK_BASE_URL=...``, ``EVOLINK_FILES_BASE_URL=...``, ``EVOLINK_API_KEY=...``) and a final
``ready`` line, so a script can wait for ``ready`` and ``eval`` the rest. The Midjourney-proxy
side (``--mj-*`` flags) adds ``MJ_PROXY_BASE_URL=...`` and ``MJ_PROXY_API_KEY=...``. The ledger is
served as JSON at ``{base_url}/_sandbox/ledger``. As ``evolink sandbox`` the assignments are
``export NAME='value'`` lines, to paste into another shell as they are. A ``# ledger ...`` comment
line before ``ready`` names the ledger's URL (``--help`` describes its fields).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shlex
import signal
import sys
from collections.abc import Sequence

from .._core.checks import COUNT, CREDITS, DELAY, MAX_COUNT, PORT, PROBABILITY, SCALE, NumberRule
from .._core.config import api_key_problem
from ._config import DEFAULT_API_KEY, DEFAULT_MAX_FILES, Faults
from ._sandbox import Sandbox
from .evolink._server import LEDGER as LEDGER_PATH
from .midjourney._cli import add_mj_arguments, mj_options

#: As the ``evolink`` commands: 128 + SIGPIPE.
_EXIT_BROKEN_PIPE = 141

_FAULT_RATES = (
    "callback_drop_rate",
    "callback_duplicate_rate",
    "server_error_rate",
    "rate_limit_rate",
    "reset_before_rate",
    "reset_after_rate",
    "slow_rate",
    "malformed_rate",
    "task_failure_rate",
    "stuck_rate",
)


_LEDGER_HELP = (
    "While it runs, GET {base_url}/_sandbox/ledger answers what happened so far, as JSON: the billed "
    "task ids (billed), credits charged (charges, credits_charged), idempotent replays, requests per "
    "endpoint, injected faults, callback attempts and, for the Midjourney side, created tasks (mj_tasks), "
    "refused submits and notifyHook sends. Use it to check that a client never paid twice: "
    "curl -s \"$EVOLINK_BASE_URL/_sandbox/ledger\"."
)


# Every numeric option is parsed by the library's numeric rules (_core.checks, as the CLI's): NaN,
# infinities and out-of-range values are usage errors (exit 2), never a traceback from bind() nor a
# sandbox that quietly ignores them (``--rate-limit inf``, ``--slow-delay nan``).
_PORT = PORT.argparse_type("port")
_SCALE = SCALE.argparse_type("scale")
_SEED = NumberRule(whole=True, minimum=0, maximum=2**63 - 1).argparse_type("seed")
_CREDITS = CREDITS.argparse_type("credits")
_COUNT = COUNT.argparse_type("count")
#: ``--rate-limit``: requests per API second; above zero (zero would refuse everything forever).
_RATE_LIMIT = NumberRule(above=True, maximum=MAX_COUNT).argparse_type("rate")
_PROBABILITY = PROBABILITY.argparse_type("probability")
_DELAY = DELAY.argparse_type("delay")


_ParserClass = type[argparse.ArgumentParser]


def _api_key(text: str) -> str:
    """A key the SDK's clients can send (at least 8 printable characters): any other is a sandbox nobody can use."""
    problem = api_key_problem(text)
    if problem is not None:
        raise argparse.ArgumentTypeError(problem)
    return text


def _parser(prog: str = "python -m evolink_async.sandbox", *,
            parser_class: _ParserClass = argparse.ArgumentParser) -> argparse.ArgumentParser:  # fmt: skip
    parser = parser_class(prog=prog, description="A local emulator of the Evolink API, on 127.0.0.1.",
                          epilog=_LEDGER_HELP)  # fmt: skip
    parser.add_argument("--port", type=_PORT, default=0, help="task API port (default: any free port)")
    parser.add_argument("--files-port", type=_PORT, default=0, help="Files API port (default: any free port)")
    parser.add_argument("--api-key", type=_api_key, default=DEFAULT_API_KEY, help="the accepted Bearer key")
    parser.add_argument("--time-scale", type=_SCALE, default=1.0, help="real seconds per API second (0.01: 100x)")
    parser.add_argument("--seed", type=_SEED, default=None, help="makes outcomes and faults repeatable")
    parser.add_argument("--credits", type=_CREDITS, default=None, help="credit balance (default: unlimited)")
    parser.add_argument(
        "--no-idempotency", dest="honor_idempotency_keys", action="store_false",
        help="ignore Idempotency-Key, as a server without de-duplication does: every submit bills",
    )
    parser.add_argument(
        "--max-files", type=_COUNT, default=DEFAULT_MAX_FILES,
        help=f"live Files API uploads per key (default: {DEFAULT_MAX_FILES}, the real default; VIP keys have 500)",
    )
    parser.add_argument(
        "--accept-any-model", action="store_true",
        help="accept any model name (default: models outside the documented catalogue get 400 model_unavailable)",
    )
    parser.add_argument("--rate-limit", type=_RATE_LIMIT, default=None, help="requests per API second per key")
    parser.add_argument("--duration-spread", type=_SCALE, nargs=2, default=(0.5, 1.5), metavar=("LOW", "HIGH"),
                        help="a task takes its model's estimate times a factor from LOW to HIGH")  # fmt: skip
    for name in _FAULT_RATES:
        flag = "--" + name.replace("_", "-")
        parser.add_argument(flag, type=_PROBABILITY, default=0.0, dest=name,
                            help=f"fault: {name.replace('_', ' ')} (0 to 1)")  # fmt: skip
    parser.add_argument("--slow-delay", type=_DELAY, default=15.0, help="API seconds a slow answer waits")
    add_mj_arguments(parser)
    return parser


async def serve(args: argparse.Namespace, *, export: bool = False) -> None:
    faults = Faults(slow_delay=args.slow_delay, **{name: getattr(args, name) for name in _FAULT_RATES})
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with Sandbox(
        port=args.port,
        files_port=args.files_port,
        api_key=args.api_key,
        time_scale=args.time_scale,
        seed=args.seed,
        credits=args.credits,
        rate_limit=args.rate_limit,
        duration_spread=tuple(args.duration_spread),
        faults=faults,
        honor_idempotency_keys=args.honor_idempotency_keys,
        max_files=args.max_files,
        accept_any_model=args.accept_any_model,
        midjourney=mj_options(args),
    ) as sandbox:
        assignments = [("EVOLINK_BASE_URL", sandbox.base_url), ("EVOLINK_FILES_BASE_URL", sandbox.files_base_url),
                       ("EVOLINK_API_KEY", sandbox.api_key)]  # fmt: skip
        if sandbox.config.midjourney.enabled:
            assignments += [("MJ_PROXY_BASE_URL", sandbox.mj_base_url), ("MJ_PROXY_API_KEY", sandbox.mj_api_key)]
        for name, value in assignments:
            print(f"export {name}={shlex.quote(value)}" if export else f"{name}={value}")
        # A shell comment: the lines before `ready` stay safe to eval.
        print(f"# ledger (JSON: billed tasks, credits, requests, faults): curl -s {sandbox.base_url}{LEDGER_PATH}")
        print(f"ready (seed {sandbox.seed}; Ctrl-C to stop)", flush=True)
        await stop.wait()
    print("stopped", flush=True)


def main(argv: Sequence[str] | None = None, *, prog: str = "python -m evolink_async.sandbox",
         export: bool = False, parser_class: _ParserClass = argparse.ArgumentParser) -> int:  # fmt: skip
    """Serve until Ctrl-C or SIGTERM; ``export=True`` prints ``export NAME=value`` lines (``evolink sandbox``).

    ``parser_class``: the CLI passes its own, whose usage errors are one ``evolink: sandbox:`` line.
    """
    args = _parser(prog, parser_class=parser_class).parse_args(argv)
    try:
        asyncio.run(serve(args, export=export))
    except ValueError as exc:  # options the config rejected together (fault rates adding up past 1)
        print(f"{'evolink: sandbox: ' if export else 'error: '}{exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the output's reader went away (| head): the sandbox stops, no traceback
        with contextlib.suppress(OSError, ValueError):  # what is still buffered must not raise again at exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return _EXIT_BROKEN_PIPE
    except OSError as exc:
        # A --port already taken, or one this user may not bind: the option's fault, not a crash.
        print(f"{'evolink: sandbox: ' if export else 'error: '}cannot listen: {exc.strerror or exc}"
              f" (--port {args.port}, --files-port {args.files_port})", file=sys.stderr)  # fmt: skip
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
