"""``evolink imagine`` (a resumable batch of Midjourney prompts) and ``evolink mj-action`` (press a
button of a finished task), through a Midjourney proxy (``MJ_PROXY_BASE_URL``, ``MJ_PROXY_API_KEY``).

>>> main(["imagine", "a red fox", "--count", "6", "--out", "foxes"])
>>> main(["mj-action", "1712345678901123", "U2", "--out", "foxes"])
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import anyio
import anyio.to_thread

from .. import Bot, EventKind, Imagine, MidjourneyClient, PollPolicy, SpeedMode, TaskStatus
from ..batch import PromptBatch, PromptSource, PromptSpec
from ..errors import APITimeoutError
from ._commands import (
    _CONNECT_TIMEOUT,
    EXIT_FAILED,
    EXIT_OK,
    UsageError,
    _api_key,
    check_out_folder,
    http_timeout,
    traced_client,
)
from ._options import COUNT_OPTION, SCALE_OPTION, SECONDS_OPTION, Parser
from ._otel import RunTelemetry, start_telemetry
from ._progress import Reporter
from ._text import printable

__all__ = ["add_mj_parsers", "imagine", "mj_action"]

_KEY_ENV = "MJ_PROXY_API_KEY"
_LEAST_WAIT = 0.001  # seconds: a stream's timeout must be above zero, even when the press took them all
_EPILOG = """\
environment: MJ_PROXY_BASE_URL, MJ_PROXY_API_KEY, EVOLINK_POLL_SCALE (try: evolink sandbox).
exit codes: 0 every prompt has its images; 1 an input failed (see the summary); 2 bad usage or
configuration (a wrong key, a wrong or unreachable URL: nothing was submitted); 130 interrupted
(run the same command again to resume)."""


def _mj_connection(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Midjourney proxy")
    keys = group.add_mutually_exclusive_group()
    keys.add_argument("--api-key", help="the proxy's key (default: $MJ_PROXY_API_KEY); visible in the process list "
                      "(ps): prefer $MJ_PROXY_API_KEY or --api-key-file")  # fmt: skip
    keys.add_argument("--api-key-file", metavar="FILE", help="read the key from FILE (its first line)")
    group.add_argument("--base-url", help="the proxy (default: $MJ_PROXY_BASE_URL)")
    group.add_argument("--path-prefix", default="/mj", help="path of the MJ routes (default: /mj; /v1/mj at gateways)")
    group.add_argument("--auth", choices=("bearer", "mj-api-secret"), default="bearer",
                       help="how the key is sent (default: bearer)")  # fmt: skip
    group.add_argument("--poll-scale", type=SCALE_OPTION, help="poll faster by this factor, to "
                       "match a time-scaled sandbox (default: $EVOLINK_POLL_SCALE or 1)")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="one JSON object per line, for scripts")
    parser.set_defaults(key_env=_KEY_ENV)


def add_mj_parsers(sub: argparse._SubParsersAction[Parser]) -> None:
    """``imagine`` and ``mj-action``."""
    text = "generate images from a prompt (N times) or from each line of a file, resumably"
    parser = sub.add_parser("imagine", help=text, description=text, epilog=_EPILOG,
                            formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("prompt", nargs="?", help="the prompt (or --prompts FILE)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--count", type=COUNT_OPTION, help="how many times to run the prompt (default: 1)")
    source.add_argument("--prompts", metavar="FILE", help="one prompt per line (blank lines are skipped)")
    parser.add_argument("--out", required=True, help="results folder (prompt-0001.result-0.png, ...); its journal "
                        "makes a re-run resume")  # fmt: skip
    parser.add_argument("--bot", choices=[b.value for b in Bot], default=Bot.MID_JOURNEY.value, help="which bot draws")
    parser.add_argument("--mode", choices=[m.value for m in SpeedMode], help="account speed (gateways)")
    parser.add_argument("--max-in-flight", type=COUNT_OPTION, default=4, help="unfinished tasks at most (default: 4)")
    parser.add_argument("--timeout", type=SECONDS_OPTION, help="seconds per task before reporting it timed out")
    parser.add_argument("--retry-failed", action="store_true", help="submit failed prompts of an earlier run again")
    parser.add_argument("--new-journal", action="store_true",
                        help="start a new journal when the one in --out is missing or damaged (refused otherwise: "
                        "it could pay again for what was done); results already in --out are kept as done")  # fmt: skip
    _mj_connection(parser)
    parser.set_defaults(command="imagine")

    text = "press a button (U1-U4, V1-V4, 🔄, ...) of a finished Midjourney task and follow the new task"
    action = sub.add_parser("mj-action", help=text, description=text, epilog=_EPILOG,
                            formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    action.add_argument("task_id")
    action.add_argument("button", help="a button label (U2, V1, ...) or its customId")
    action.add_argument("--out", help="save the new task's images here (<task id>.result-<n>.<ext>)")
    action.add_argument("--wait", action=argparse.BooleanOptionalAction, default=True,
                        help="wait for the new task to end (default); --no-wait prints its id and returns")  # fmt: skip
    action.add_argument("--timeout", type=SECONDS_OPTION, default=900.0, help="give up waiting after this many seconds "
                        "(default: 900)")  # fmt: skip
    _mj_connection(action)
    action.set_defaults(command="mj-action")


def build_mj_client(args: argparse.Namespace, *, telemetry: RunTelemetry | None = None) -> MidjourneyClient:
    """A Midjourney client from the options and the environment (``MissingAPIKeyError`` without a key)."""
    scale = args.poll_scale
    return MidjourneyClient(
        _api_key(args),
        base_url=args.base_url,
        path_prefix=args.path_prefix,
        auth=args.auth,
        poll_policy=PollPolicy().scaled(scale) if scale else None,
        timeout=http_timeout(args),
        connect_timeout=min(_CONNECT_TIMEOUT, http_timeout(args)),
        **(telemetry.client_options if telemetry is not None else {}),
    )


def _source(args: argparse.Namespace) -> PromptSource:
    if args.prompts is not None:
        if args.prompt is not None:
            raise UsageError("give the prompt or --prompts FILE, not both")
        return PromptSource.from_file(args.prompts)
    if args.prompt is None:
        raise UsageError("give a prompt (evolink imagine 'a red fox' --out DIR) or --prompts FILE")
    Imagine(prompt=args.prompt)  # the prompt's rules fail here, before any key is needed
    return PromptSource.repeat(args.prompt, args.count or 1)


async def imagine(args: argparse.Namespace, reporter: Reporter) -> int:
    """``evolink imagine``: the folder batch's journal, resume, progress and exit codes, for prompts."""
    source = _source(args)
    if source.path is not None and not await anyio.to_thread.run_sync(source.path.is_file):
        raise UsageError(f"--prompts {printable(args.prompts)} is not a file")
    spec = PromptSpec(prompts=source, output_dir=await check_out_folder(args.out), bot=Bot(args.bot),
                      mode=SpeedMode(args.mode) if args.mode else None, max_in_flight=args.max_in_flight,
                      timeout=args.timeout, retry_failed=args.retry_failed, new_journal=args.new_journal)  # fmt: skip
    telemetry = await start_telemetry(None)  # the OTEL_* variables
    client = build_mj_client(args, telemetry=telemetry)
    runner = PromptBatch(client, spec, on_event=reporter.event)
    try:
        async with telemetry, client:
            with reporter:
                await runner.run()
    except anyio.get_cancelled_exc_class():
        reporter.summary(runner.summary)  # interrupted: what was done (the hint to resume comes last)
        raise
    except Exception as exc:  # main reports it; JSON lines still end with the summary
        reporter.stopped(runner.summary, exc)
        raise
    reporter.summary(runner.summary)
    if not runner.summary.inputs:
        print(f"evolink: no prompt found in {printable(args.prompts)}; nothing to do", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK if runner.summary.ok else EXIT_FAILED


async def mj_action(args: argparse.Namespace, reporter: Reporter) -> int:
    """``evolink mj-action TASK_ID BUTTON``: submit the button's task, follow it, optionally save its images."""
    if args.out is not None and not args.wait:
        raise UsageError("--out needs the new task to finish: drop --no-wait")
    if args.out is not None:
        await check_out_folder(args.out)
    # --timeout bounds the whole command: the press (its fetch and submit, with their retries) too.
    deadline = anyio.current_time() + args.timeout
    async with traced_client(args, build_mj_client) as mj:
        with anyio.move_on_after(args.timeout) as pressing:
            task = await mj.action(args.task_id, args.button)
        if pressing.cancelled_caught:
            raise APITimeoutError(f"pressing {printable(args.button)} of task {printable(args.task_id)} did not end "
                                  f"within --timeout {args.timeout:g} s; whether the proxy created the new task is "
                                  "unknown: look before pressing again")  # fmt: skip
        reporter.task_update("submitted", task)
        if not args.wait:
            return EXIT_OK
        kind = EventKind.TIMED_OUT
        last = task
        remaining = max(deadline - anyio.current_time(), _LEAST_WAIT)
        async with mj.tasks.stream(task.id, timeout=remaining) as events:
            async for event in events:
                kind = event.kind
                if event.task is not None and (event.task.progress, event.task.status) != (last.progress, last.status):
                    last = event.task
                    reporter.task_update(event.kind.value, last)
        reporter.task_end(last)
        if kind is EventKind.TIMED_OUT:
            reporter.note(f"{last.id} still not finished after {args.timeout:g} s")
        if last.status is not TaskStatus.COMPLETED or not last.results:
            return EXIT_FAILED
        if args.out is None:
            return EXIT_OK
        # reuse_identical: saving the same task again finds its files instead of copying them.
        paths = await mj.download(last, Path(args.out), reuse_identical=True)
    reporter.saved(last.id, paths)
    return EXIT_OK
