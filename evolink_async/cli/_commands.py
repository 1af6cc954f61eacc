"""The commands behind ``evolink``: each takes parsed arguments and a reporter, returns an exit code."""

from __future__ import annotations

import argparse
import contextlib
import shlex
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.to_thread

from .. import CallbackReceiver, Client, EventKind, EvolinkClient, PollPolicy, Task, TaskStatus
from ..batch import Batch, BatchSpec, plan_batch
from ..errors import ValidationError
from ._callbacks import callback_options, callback_receiver, start_listening, update_counts
from ._exit_codes import EXIT_BROKEN_PIPE, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from ._otel import RunTelemetry, start_telemetry
from ._progress import JsonReporter, Reporter
from ._remedies import key_variable
from ._secret_files import read_secret_file
from ._text import printable

__all__ = ["EXIT_BROKEN_PIPE", "EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE", "UsageError", "batch",
           "demo", "download", "status", "watch"]  # fmt: skip



class UsageError(Exception):
    """A command line that cannot run (exit 2): a folder that is not one, an unreadable key file."""

#: The clients' own defaults (seconds), which ``--timeout`` may only shorten.
_HTTP_TIMEOUT, _CONNECT_TIMEOUT = 60.0, 10.0

ClientT = TypeVar("ClientT", bound=Client[Any])

_MODELS = {"remove-bg": "mj-v7-remove-bg", "retexture": "mj-v7-retexture"}


def _api_key(args: argparse.Namespace) -> str | None:
    path = getattr(args, "api_key_file", None)
    if path is None:
        if args.api_key is None:
            return None
        # ``--api-key ""`` is not "take the variable": it once ran silently with $EVOLINK_API_KEY.
        # A Midjourney proxy may have no auth at all: there "" sends no key, as the client documents.
        if not args.api_key and key_variable(args) == "EVOLINK_API_KEY":
            raise ValidationError("--api-key", "is empty")
        return str(args.api_key)
    return read_secret_file(path, flag="--api-key-file", error=UsageError)


def build_client(
    args: argparse.Namespace, *, callbacks: CallbackReceiver | None = None, telemetry: RunTelemetry | None = None
) -> EvolinkClient:
    """A client from the options and the environment (``MissingAPIKeyError`` without a key)."""
    scale = args.poll_scale
    return EvolinkClient(
        _api_key(args),
        base_url=args.base_url,
        files_base_url=args.files_base_url,
        poll_policy=PollPolicy().scaled(scale) if scale else None,
        callbacks=callbacks,
        timeout=http_timeout(args),
        connect_timeout=min(_CONNECT_TIMEOUT, http_timeout(args)),
        **(telemetry.client_options if telemetry is not None else {}),
    )


@contextlib.asynccontextmanager
async def traced_client(args: argparse.Namespace, build: Callable[..., ClientT]) -> AsyncIterator[ClientT]:
    """``build(args, telemetry=...)`` opened with the ``OTEL_*`` variables' telemetry around it (a short
    command's client: no metrics port), the exporters flushed after the client closed."""
    telemetry = await start_telemetry(None)
    async with telemetry, build(args, telemetry=telemetry) as client:
        yield client


def http_timeout(args: argparse.Namespace) -> float:
    """The seconds one HTTP attempt may take: with ``--timeout T`` at most T (the client's 60 s would
    make a 5 s command wait minutes for a server that never answers)."""
    limit: float | None = getattr(args, "timeout", None)
    return _HTTP_TIMEOUT if limit is None else min(_HTTP_TIMEOUT, limit)


def spec_from(args: argparse.Namespace) -> BatchSpec:
    model = _MODELS.get(args.operation) or args.model
    params: dict[str, Any] = {"speed": args.speed} if getattr(args, "speed", None) else {}
    return BatchSpec(
        model=model, prompt=getattr(args, "prompt", None), model_params=params, input_dir=args.input_dir,
        output_dir=args.out, recursive=args.recursive, pattern=args.glob, max_in_flight=args.max_in_flight,
        timeout=args.timeout, retry_failed=args.retry_failed, follow_symlinks=args.follow_symlinks,
        max_credits=args.max_credits, new_journal=args.new_journal, keep_uploads=args.keep_uploads,
        normalize=args.normalize,
    )  # fmt: skip


async def check_out_folder(out: str) -> Path:
    """``--out`` as a path: a folder, or one to be made; an existing file there is a usage error."""
    path = Path(out)
    if await anyio.to_thread.run_sync(lambda: path.exists() and not path.is_dir()):
        raise UsageError(f"--out {printable(out)} is a file, not a folder")
    return path


def _no_inputs(args: argparse.Namespace) -> int:
    where = printable(args.input_dir) + ("" if args.recursive else " (not its sub-folders: --recursive)")
    matching = "" if args.glob == "*" else f" matching --glob {printable(args.glob)}"
    print(f"evolink: no image found in {where}{matching}; nothing to do", file=sys.stderr)
    return EXIT_FAILED


async def batch(args: argparse.Namespace, reporter: Reporter) -> int:
    callbacks = callback_options(args)  # --callbacks and --listen, checked before anything else
    spec = spec_from(args)
    # The request rules (prompt required or forbidden, its length) fail here, before any key is needed.
    spec.request("https://example.invalid/check.png")
    if not await anyio.to_thread.run_sync(spec.input_dir.is_dir):
        raise UsageError(f"{printable(args.input_dir)} is not a folder")
    await check_out_folder(args.out)
    if args.dry_run:
        plan = await plan_batch(spec)
        reporter.plan(plan)
        if not plan.inputs:
            return _no_inputs(args)
        return EXIT_FAILED if plan.invalid or plan.unreadable_folders else EXIT_OK
    receiver = callback_receiver(callbacks)
    telemetry = await start_telemetry(getattr(args, "metrics_port", None))
    try:
        client = build_client(args, callbacks=receiver, telemetry=telemetry)
    except BaseException:
        await telemetry.stop()
        raise
    runner = Batch(client, spec, on_event=reporter.event)
    # The receiver listens from before the first submit to the end of the run, Ctrl-C included.
    listener = await start_listening(receiver, callbacks)
    if receiver is not None:
        reporter.update_counts = lambda: update_counts(receiver, client.tracker)
        reporter.note(f"callbacks: {printable(receiver.public_url)}/<token>, listening on {printable(args.listen)}")
    try:
        async with client:
            with reporter:
                await runner.run()
    except anyio.get_cancelled_exc_class():
        reporter.summary(runner.summary)  # interrupted: what was done (the hint to resume comes last)
        raise
    except Exception as exc:  # main reports it; JSON lines still end with the summary
        reporter.stopped(runner.summary, exc)
        raise
    finally:
        if listener is not None:
            await listener.stop()
        await telemetry.stop()
    # An error (a wrong key, say) is main's to report; a summary would only read as a run.
    reporter.summary(runner.summary)
    if not runner.summary.inputs:
        return _no_inputs(args)
    return EXIT_OK if runner.summary.ok else EXIT_FAILED


def demo(args: argparse.Namespace, reporter: Reporter) -> Coroutine[Any, Any, int]:
    """``evolink demo``, with the sandbox imported here, before the event loop runs: it is the demo's
    alone (every other command would pay its import), and imported inside the loop it held the loop
    for a tenth of a second (``python -X dev`` said so)."""
    from ._demo import run_demo

    return _demo(args, reporter, run_demo)


async def _demo(args: argparse.Namespace, reporter: Reporter, run_demo: Callable[..., Awaitable[Any]]) -> int:
    if not args.dir.strip():  # "" would put the demo's folders into the current one
        raise UsageError(f"--dir must name a folder, got {args.dir!r}")
    summary = await run_demo(
        Path(args.dir), count=args.count, time_scale=args.time_scale, seed=args.seed, reporter=reporter
    )
    reporter.summary(summary)
    if summary.ok:
        # Quoted for a shell (a --dir with spaces is one word to paste), then made terminal-safe.
        where = printable(shlex.quote(str(summary.output_dir)))
        reporter.note(f"done: open {where} (summary.json beside the images). Real use: "
                      "EVOLINK_API_KEY=sk-evo-... evolink edit PHOTOS --prompt '...' --out RESULTS")  # fmt: skip
    return EXIT_OK if summary.ok else EXIT_FAILED


async def download(args: argparse.Namespace, reporter: Reporter) -> int:
    """``evolink download TASK_ID --out DIR``: a completed task's results, as ``<task id>.result-<n>.<ext>``."""
    out = await check_out_folder(args.out)
    async with traced_client(args, build_client) as client:
        task = await client.tasks.get(args.task_id)
        if task.status is not TaskStatus.COMPLETED or not task.results:
            reporter.task("task", task)
            reporter.note(f"{task.id} is {task.status.value}: no results to download")
            return EXIT_FAILED
        # reuse_identical: downloading the same task again finds its files instead of copying them.
        paths = await client.download(task, out, reuse_identical=True)
    reporter.saved(task.id, paths)
    return EXIT_OK


async def status(args: argparse.Namespace, reporter: Reporter) -> int:
    async with traced_client(args, build_client) as client:
        task = await client.tasks.get(args.task_id)
    reporter.task("task", task)
    return EXIT_FAILED if task.status in (TaskStatus.FAILED, TaskStatus.CANCELLED) else EXIT_OK


async def watch(args: argparse.Namespace, reporter: Reporter) -> int:
    async with traced_client(args, build_client) as client:
        last: Task | None = None
        kind = EventKind.TIMED_OUT
        async with client.tasks.stream(args.task_id, timeout=args.timeout) as events:
            async for event in events:
                kind = event.kind
                if event.task is not None and (last is None or event.task.progress != last.progress
                                               or event.task.status != last.status):  # fmt: skip
                    last = event.task
                    reporter.task_update(event.kind.value, event.task)
    if last is not None and not isinstance(reporter, JsonReporter):
        reporter.task_end(last)
    if kind is EventKind.TIMED_OUT:
        reporter.note(f"still not finished after {args.timeout:g} s" if args.timeout else "stopped")
    return EXIT_OK if kind is EventKind.COMPLETED else EXIT_FAILED


