"""The commands behind ``evolink``: each takes parsed arguments and a reporter, returns an exit code."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .._clients.evolink import EvolinkClient
from .._models.events import EventKind
from .._models.task import Task, TaskStatus
from .._watching.poll_policy import PollPolicy
from ..batch._run import Batch, plan_batch
from ..batch._spec import BatchSpec
from ._demo import run_demo
from ._progress import JsonReporter, Reporter

__all__ = ["EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE", "batch", "demo", "status", "watch"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

_MODELS = {"remove-bg": "mj-v7-remove-bg", "retexture": "mj-v7-retexture"}


def build_client(args: argparse.Namespace) -> EvolinkClient:
    """A client from the options and the environment (``MissingAPIKeyError`` without a key)."""
    scale = args.poll_scale
    return EvolinkClient(
        args.api_key,
        base_url=args.base_url,
        files_base_url=args.files_base_url,
        poll_policy=PollPolicy().scaled(scale) if scale else None,
    )


def spec_from(args: argparse.Namespace) -> BatchSpec:
    model = _MODELS.get(args.operation) or args.model
    params: dict[str, Any] = {"speed": args.speed} if getattr(args, "speed", None) else {}
    return BatchSpec(
        model=model, prompt=getattr(args, "prompt", None), model_params=params, input_dir=Path(args.input_dir),
        output_dir=Path(args.out), recursive=args.recursive, pattern=args.glob, max_in_flight=args.max_in_flight,
        timeout=args.timeout, retry_failed=args.retry_failed, max_credits=args.max_credits,
    )  # fmt: skip


async def batch(args: argparse.Namespace, reporter: Reporter) -> int:
    spec = spec_from(args)
    # The request rules (prompt required or forbidden, its length) fail here, before any key is needed.
    spec.request("https://example.invalid/check.png")
    if args.dry_run:
        plan = await plan_batch(spec)
        reporter.plan(plan)
        return EXIT_FAILED if plan.invalid else EXIT_OK
    client = build_client(args)
    runner = Batch(client, spec, on_event=reporter.event)
    try:
        async with client:
            with reporter:
                await runner.run()
    finally:
        reporter.summary(runner.summary)  # also when interrupted: what was done, and how to resume
    return EXIT_OK if runner.summary.ok else EXIT_FAILED


async def demo(args: argparse.Namespace, reporter: Reporter) -> int:
    summary = await run_demo(
        Path(args.dir), count=args.count, time_scale=args.time_scale, seed=args.seed, reporter=reporter
    )
    reporter.summary(summary)
    if summary.ok:
        reporter.note(f"done: open {summary.output_dir} (summary.json beside the images). Real use: "
                      "EVOLINK_API_KEY=sk-evo-... evolink edit PHOTOS --prompt '...' --out RESULTS")  # fmt: skip
    return EXIT_OK if summary.ok else EXIT_FAILED


def _task_json(task: Task) -> dict[str, Any]:
    data: dict[str, Any] = {"id": task.id, "status": task.status.value, "progress": task.progress,
                            "model": task.model, "results": list(task.results)}  # fmt: skip
    if task.error is not None:
        data["error"] = {"code": task.error.code, "message": task.error.message}
    return data


def _task_lines(task: Task) -> list[str]:
    lines = [f"{task.id}  {task.status.value}  {task.progress}%  {task.model or ''}".rstrip()]
    lines += [f"  result {url}" for url in task.results]
    if task.error is not None:
        lines.append(f"  error {task.error.code}: {task.error.message}")
    return lines


def _show(reporter: Reporter, task: Task, kind: str) -> None:
    if isinstance(reporter, JsonReporter):
        reporter._emit({"kind": kind, **_task_json(task)})
    else:
        for line in _task_lines(task):
            reporter.note(line)


async def status(args: argparse.Namespace, reporter: Reporter) -> int:
    async with build_client(args) as client:
        task = await client.tasks.get(args.task_id)
    _show(reporter, task, "task")
    return EXIT_FAILED if task.status in (TaskStatus.FAILED, TaskStatus.CANCELLED) else EXIT_OK


async def watch(args: argparse.Namespace, reporter: Reporter) -> int:
    async with build_client(args) as client:
        last: Task | None = None
        kind = EventKind.TIMED_OUT
        async with client.tasks.stream(args.task_id, timeout=args.timeout) as events:
            async for event in events:
                kind = event.kind
                if event.task is not None and (last is None or event.task.progress != last.progress
                                               or event.task.status != last.status):  # fmt: skip
                    last = event.task
                    if isinstance(reporter, JsonReporter):
                        reporter._emit({"kind": event.kind.value, **_task_json(event.task)})
                    else:
                        reporter.note(f"{event.task.id}  {event.task.status.value}  {event.task.progress}%")
    if last is not None and not isinstance(reporter, JsonReporter):
        for line in _task_lines(last)[1:]:
            reporter.note(line)
    if kind is EventKind.TIMED_OUT:
        reporter.note(f"still not finished after {args.timeout:g} s" if args.timeout else "stopped")
    return EXIT_OK if kind is EventKind.COMPLETED else EXIT_FAILED


