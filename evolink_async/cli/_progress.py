"""What the terminal shows: a rich live view on a TTY, plain lines otherwise, JSON lines with ``--json``.

All three take the same calls (``event``, ``summary``, ``plan``, ``note``, and for one task
``task``, ``task_update``, ``task_end`` and ``saved``) so the commands never care which one is in
use. Nothing here ever sees the API key.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import IO, Any, Self

from .. import Task
from ..batch import BatchEvent, BatchPlan, BatchSummary, UnreadableFolder
from ._remedies import cli_event, cli_failed_json, cli_message
from ._text import json_line, printable

__all__ = ["JsonReporter", "PlainReporter", "Reporter"]

_ACTIVE_ROWS = 8  # per-task rows shown at once in the live view


class Reporter:
    """Plain line output (not a TTY, or rich is not installed)."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stdout
        self._last_progress: dict[str, int] = {}
        #: Called once when the reader of the output went away (``evolink ... | head -1``).
        self.on_broken_pipe: Callable[[], None] = lambda: None
        self.broken = False
        #: With ``--callbacks``: how many updates came by callback and by query, so far.
        self.update_counts: Callable[[], dict[str, int]] | None = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None

    def _print(self, text: str) -> None:
        if self.broken:
            return
        try:  # printable: whatever outside text a line carries, the terminal is shown it, never obeys it
            print(printable(text), file=self.stream, flush=True)
        except BrokenPipeError:
            self._broken_pipe()

    def _broken_pipe(self) -> None:
        """Nobody reads the output any more: no traceback, no more writes, and stop the run."""
        self.broken = True
        try:  # what is still buffered must not raise again at exit (Python's documented recipe)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.stream.fileno())
            os.close(devnull)
        except (OSError, ValueError, AttributeError):
            pass
        self.on_broken_pipe()

    def note(self, text: str, **fields: Any) -> None:
        self._print(text)

    def event(self, event: BatchEvent) -> None:
        event = cli_event(event)
        key = printable(event.key or "")
        if event.kind == "submitted":
            self._print(f"submitted  {key}  {printable(event.task_id)}")
        elif event.kind == "reattached":
            self._print(f"resumed    {key}  {printable(event.task_id)}")
        elif event.kind == "progress" and event.progress is not None:
            step = event.progress // 25  # a line per quarter, not per poll
            if step > self._last_progress.get(key, -1):
                self._last_progress[key] = step
                self._print(f"progress   {key}  {event.progress}%")
        elif event.kind == "downloaded":
            self._print(f"saved      {key}  -> {', '.join(map(printable, event.paths))}")
        elif event.kind == "done_before":
            self._print(f"done       {key}  (earlier run)")
        elif event.kind == "changed":
            self._print(f"changed    {key}  {printable(event.message or '')}")
        elif event.kind == "quota_wait":
            self._print(f"waiting    {printable(event.message or '')}")
        elif event.kind == "failed":
            self._print(f"FAILED     {key}  {printable(event.error_code)}: {printable(event.message)}")

    def task(self, kind: str, task: Task) -> None:
        """One task as it is now, whole (``evolink status``)."""
        for line in task_lines(task):
            self._print(line)

    def task_update(self, kind: str, task: Task) -> None:
        """A followed task changed (``kind``: ``submitted``, ``progress``, ...): one short line."""
        self._print(f"{task.id}  {task.status.value}  {task.progress}%")

    def task_end(self, task: Task) -> None:
        """A followed task's last state: what its updates did not show (results, error)."""
        for line in task_lines(task)[1:]:
            self._print(line)

    def saved(self, task_id: str, paths: Sequence[object]) -> None:
        """A task's results were saved at ``paths``."""
        for path in paths:
            self._print(f"saved      {task_id}  -> {printable(path)}")

    def plan(self, plan: BatchPlan) -> None:
        for line in plan_lines(plan):
            self._print(line)

    def summary(self, summary: BatchSummary) -> None:
        for line in summary_lines(summary) + updates_lines(self.update_counts, final=True):
            self._print(line)

    def stopped(self, summary: BatchSummary, error: Exception) -> None:
        """A run stopped by ``error``, which ``main`` reports on stderr with its exit code: no summary
        here, which would only read as a run's end (JSON lines differ: see ``JsonReporter``)."""


PlainReporter = Reporter


class JsonReporter(Reporter):
    """One JSON object per line: every event, then a ``summary`` (or ``plan``) object."""

    def _emit(self, data: dict[str, Any]) -> None:
        self._print(json_line(data))

    def note(self, text: str, **fields: Any) -> None:
        self._emit({"kind": "note", "message": text, **fields})

    def event(self, event: BatchEvent) -> None:
        self._emit(cli_event(event).to_json())

    def task(self, kind: str, task: Task) -> None:
        self._emit({"kind": kind, **task_json(task)})

    def task_update(self, kind: str, task: Task) -> None:
        self._emit({"kind": kind, **task_json(task)})

    def task_end(self, task: Task) -> None:
        self._emit({"kind": "task", **task_json(task)})

    def saved(self, task_id: str, paths: Sequence[object]) -> None:
        self._emit({"kind": "downloaded", "task_id": task_id, "paths": [str(p) for p in paths]})

    def plan(self, plan: BatchPlan) -> None:
        data = plan.to_json()
        self._emit({"kind": "plan", **data, "invalid": cli_failed_json(data["invalid"])})

    def summary(self, summary: BatchSummary, *, error: Exception | None = None) -> None:
        updates = {} if self.update_counts is None else {"updates": self.update_counts()}
        data = summary.to_json()
        if data.get("error") is None and error is not None:  # stopped outside the batch itself
            data["error"] = f"{type(error).__name__}: {error}"
        self._emit({"kind": "summary", **data, "failed": cli_failed_json(data["failed"]), **updates})

    def stopped(self, summary: BatchSummary, error: Exception) -> None:
        """A script reading the lines gets one ``summary`` object at every end of a run: also when an
        error stopped it (``error`` says which; stderr and the exit code say it too)."""
        self.summary(summary, error=error)


def task_json(task: Task) -> dict[str, Any]:
    data: dict[str, Any] = {"id": task.id, "status": task.status.value, "progress": task.progress,
                            "model": task.model, "results": list(task.results)}  # fmt: skip
    if task.error is not None:
        data["error"] = {"code": task.error.code, "message": task.error.message}
    return data


def task_lines(task: Task) -> list[str]:
    lines = [f"{task.id}  {task.status.value}  {task.progress}%  {printable(task.model or '')}".rstrip()]
    lines += [f"  result {printable(url)}" for url in task.results]
    if task.error is not None:  # the server's words: shown, never obeyed by the terminal
        lines.append(f"  error {printable(task.error.code)}: {printable(task.error.message)}")
    return lines


def plan_lines(plan: BatchPlan) -> list[str]:
    cost = "unknown (no published price for this model)" if plan.estimated_credits is None \
        else f"about {plan.estimated_credits:g} credits"  # fmt: skip
    lines = [
        f"dry run: {plan.inputs} input(s); {plan.already_handled} handled in an earlier run; "
        f"{plan.to_submit} would be submitted to {plan.model}; {len(plan.invalid)} would fail",
        f"estimated cost: {cost}; nothing was uploaded or submitted",
    ]
    lines += [f"  fails    {printable(f.key)}  {printable(f.code)}  {printable(cli_message(f.message, f.remedy))}"
              for f in plan.invalid]  # fmt: skip
    return lines + unreadable_lines(plan.unreadable_folders)


def unreadable_lines(folders: Sequence[UnreadableFolder]) -> list[str]:
    if not folders:
        return []
    lines = [f"{len(folders)} folder(s) could not be read; their inputs are not in this run:"]
    return lines + [f"  {printable(f.path)}  {printable(f.message)}" for f in folders]


def summary_lines(summary: BatchSummary) -> list[str]:
    ok = summary.done_before + summary.downloaded
    lines = [
        # Stopped early, ``inputs`` counts those found so far, not the folder: say so.
        f"{ok}/{summary.inputs} input(s){' found before the stop' if summary.interrupted else ''} have results in "
        f"{printable(summary.output_dir)} "
        f"({summary.downloaded} this run, {summary.done_before} earlier); "
        f"{summary.submitted} submitted, {summary.reattached} resumed, {_credits(summary.credits_reserved)}",
    ]
    if summary.failed:
        lines.append(f"{len(summary.failed)} failed:")
        lines += [f"  {printable(f.key)}  {printable(f.code)}  {printable(cli_message(f.message, f.remedy))}"
                  for f in summary.failed]  # fmt: skip
    if summary.retried_uncertain_submits:
        # The one place a CLI user learns it: the server may have billed these twice (README, "What
        # 'never pays twice' rests on"); credits_reserved above counts each once.
        lines.append(f"{summary.retried_uncertain_submits} submit(s) were sent again after their answer was lost: "
                     "a server that ignores Idempotency-Key may have billed them twice (check your billing)")
    if summary.interrupted_submits:
        # "Nothing is lost" would not be true of these: the server may have made their tasks.
        lines.append(f"{summary.interrupted_submits} submit(s) got no answer (their tasks may exist): a re-run sends "
                     "them again under the same Idempotency-Key, which a server that ignores it bills twice")
    if summary.quota_waits:
        lines.append(f"the Files API quota was full {summary.quota_waits} time(s) (another client of this key?): "
                     "uploads waited for deletions")  # fmt: skip
    lines += unreadable_lines(summary.unreadable_folders)
    # The resume hint is the command's to print, once (also after a second Ctrl-C): not here.
    return lines


def _credits(reserved: float | None) -> str:
    return "credits not reported by the server" if reserved is None else f"{reserved:g} credits reserved"


def updates_lines(counts: Callable[[], dict[str, int]] | None, *, final: bool = False) -> list[str]:
    """The line on how task updates came (only with ``--callbacks``); at the end, a hint if none came by callback."""
    if counts is None:
        return []
    now = counts()
    lines = [f"updates: {now['by_callback']} by callback, {now['by_query']} by query"]
    if final and now["by_query"] and not now["by_callback"]:
        lines.append("no callback arrived: check that the --callbacks URL reaches --listen from outside")
    return lines


def elapsed(started: float) -> str:
    return f"{time.monotonic() - started:.1f} s"
