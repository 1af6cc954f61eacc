"""The rich live view: an overall bar (done/total, rate, ETA) and one row per task in flight."""

from __future__ import annotations

import contextlib
from types import TracebackType
from typing import IO, Any, Self

from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.live import Live
from rich.markup import escape
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from ..batch import BatchEvent, BatchPlan, BatchSummary
from ._progress import Reporter, plan_lines, summary_lines, updates_lines
from ._remedies import cli_event
from ._text import printable

_MAX_ROWS = 8


def _this_run_rate(task: Task) -> float | None:
    """Inputs per second that this run submitted and saw to their end (its ``this_run`` field over its elapsed time).

    Not rich's ``task.speed``: that counts every step of ``completed``, and on a resume the
    inputs done in earlier runs arrive within the first second, as do the tasks an earlier run
    submitted that finished meanwhile and inputs refused before any submit; counting them, a
    resumed run would show thousands per minute and an ETA of seconds.
    """
    finished: int = task.fields.get("this_run", 0)
    elapsed = task.elapsed
    return finished / elapsed if finished and elapsed else None


class _DoneOfTotalColumn(ProgressColumn):
    """``done/total``; while the inputs are still being counted, ``done/at least found``."""

    def render(self, task: Task) -> Text:
        done = int(task.completed)
        if task.total is not None:
            return Text(f"{done}/{int(task.total)}", style="progress.download")
        found: int = task.fields.get("found", 0)
        return Text(f"{done}/at least {found}" if found else f"{done}/?", style="progress.download")


class _RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        rate = _this_run_rate(task)
        return Text("" if rate is None else f"{rate * 60:.1f}/min")


class _RemainingColumn(ProgressColumn):
    """Time left at this run's rate (rich's ``TimeRemainingColumn`` format)."""

    def render(self, task: Task) -> Text:
        rate = _this_run_rate(task)
        if rate is None or task.total is None:
            return Text("-:--:--", style="progress.remaining")
        minutes, seconds = divmod(int(max(task.total - task.completed, 0) / rate), 60)
        hours, minutes = divmod(minutes, 60)
        return Text(f"{hours:d}:{minutes:02d}:{seconds:02d}", style="progress.remaining")


class LiveReporter(Reporter):
    def __init__(self, stream: IO[str]) -> None:
        super().__init__(stream)
        self.console = Console(file=stream)
        self.overall = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), _DoneOfTotalColumn(), _RateColumn(),
            TextColumn("{task.fields[failures]}"), TimeElapsedColumn(), TextColumn("ETA"), _RemainingColumn(),
            console=self.console,
        )  # fmt: skip
        self.rows = Progress(
            TextColumn("  {task.description}", style="cyan"), BarColumn(bar_width=24), TaskProgressColumn(),
            TextColumn("{task.fields[status]}", style="dim"), console=self.console,
        )  # fmt: skip
        # No total until the inputs are counted: a bar over those found so far would read 3/16, 10/23 ...
        self.total_id = self.overall.add_task("images", total=None, failures="", this_run=0, found=0)
        self.row_ids: dict[str, TaskID] = {}
        self.finished = 0
        #: Submitted by this run and ended since: what the rate and the ETA count.
        self.finished_this_run = 0
        self._submitted_here: set[str] = set()  # in flight only: a key leaves it when its input ends
        self.failed = 0
        self.live = Live(Group(self.overall, _Updates(self), self.rows), console=self.console, refresh_per_second=8,
                         transient=False)  # fmt: skip

    def __enter__(self) -> Self:
        self.live.__enter__()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop the refresh thread and restore the cursor; idempotent, safe after a Ctrl-C."""
        with contextlib.suppress(Exception):  # a broken terminal must not hide the real outcome
            self.live.stop()

    def note(self, text: str, **fields: Any) -> None:
        self.console.print(printable(text), highlight=False, markup=False)

    def _row(self, key: str, *, progress: int | None, status: str) -> None:
        row = self.row_ids.get(key)
        if row is None:
            if len(self.row_ids) >= _MAX_ROWS:
                return  # the overall bar still counts it
            row = self.row_ids[key] = self.rows.add_task(escape(key), total=100, status=status)
        self.rows.update(row, completed=progress if progress is not None else None, status=status)

    def _done(self, key: str, *, failed: bool = False) -> None:
        row = self.row_ids.pop(key, None)
        if row is not None:
            self.rows.remove_task(row)
        self.finished += 1
        if key in self._submitted_here:
            self._submitted_here.discard(key)
            self.finished_this_run += 1
        self.failed += failed
        failures = f"[red]{self.failed} failed[/]" if self.failed else ""
        self.overall.update(self.total_id, completed=self.finished, failures=failures, this_run=self.finished_this_run)

    def event(self, event: BatchEvent) -> None:
        event = cli_event(event)
        key = printable(event.key or "")
        if event.kind == "found" and event.total is not None:
            self.overall.update(self.total_id, found=event.total)
        elif event.kind in ("counted", "discovered") and event.total is not None:
            self.overall.update(self.total_id, total=event.total)
        elif event.kind in ("submitted", "reattached", "progress"):
            if event.kind == "submitted":
                self._submitted_here.add(key)
            self._row(key, progress=event.progress, status=event.status or event.kind)
        elif event.kind == "completed":
            self._row(key, progress=100, status="downloading")
        elif event.kind in ("downloaded", "done_before"):
            self._done(key)
        elif event.kind == "changed":
            self.console.print(Text.assemble(("changed ", "yellow"), key, f"  {printable(event.message or '')}"))
        elif event.kind == "quota_wait":
            self.console.print(Text.assemble(("waiting ", "yellow"), printable(event.message or "")))
        elif event.kind == "failed":
            message = f"  {printable(event.error_code)}: {printable(event.message)}"
            self.console.print(Text.assemble(("failed ", "red"), key, message))
            self._done(key, failed=True)

    def plan(self, plan: BatchPlan) -> None:
        for line in plan_lines(plan):
            self.console.print(printable(line), highlight=False, markup=False)

    def summary(self, summary: BatchSummary) -> None:
        for line in summary_lines(summary) + updates_lines(self.update_counts, final=True):
            self.console.print(printable(line), highlight=False, markup=False)


class _Updates:
    """The live line "updates: N by callback, M by query", read at each refresh (``--callbacks`` only)."""

    def __init__(self, reporter: Reporter) -> None:
        self._reporter = reporter

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        for line in updates_lines(self._reporter.update_counts):
            yield Text(line, style="dim")
