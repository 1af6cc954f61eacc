"""What the live view prints for the total and the rate: the total is counted (or says "at least"),
and the rate counts only the inputs this run submitted and saw to their end."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest
import rich.console

from evolink_async import EvolinkClient
from evolink_async.batch import Batch, BatchEvent, BatchSpec
from evolink_async.cli._live import LiveReporter
from evolink_async.sandbox import Sandbox
from tests.helpers.images import write_png


def _screen(reporter: LiveReporter) -> str:
    """The overall line as the terminal would show it."""
    screen = rich.console.Console(file=io.StringIO(), width=200)
    screen.print(reporter.overall.get_renderable())
    return screen.file.getvalue()  # type: ignore[attr-defined, no-any-return]


def test_the_total_says_at_least_until_the_inputs_are_counted() -> None:
    reporter = LiveReporter(io.StringIO())
    for found in range(1, 17):
        reporter.event(BatchEvent(kind="found", key=f"{found}.png", total=found))
    reporter.event(BatchEvent(kind="done_before", key="1.png"))
    assert "1/at least 16" in _screen(reporter)  # not "1/16": 60 are coming
    reporter.event(BatchEvent(kind="counted", total=60))
    reporter.event(BatchEvent(kind="found", key="17.png", total=17))
    line = _screen(reporter)
    assert "1/60" in line
    assert "at least" not in line


def test_the_rate_counts_only_inputs_submitted_and_ended_in_this_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """A resume: tasks of the earlier run that finished meanwhile and inputs refused before any
    submit end within the first second; they are not this run's pace. Two submitted inputs
    saved after 60 s are: 2/min, and the 10 left take 5 minutes."""
    now = [1000.0]
    monkeypatch.setattr(rich.console, "monotonic", lambda: now[0])  # the clock rich's Progress reads
    reporter = LiveReporter(io.StringIO())
    reporter.event(BatchEvent(kind="discovered", total=30))
    for index in range(10):
        reporter.event(BatchEvent(kind="done_before", key=f"old-{index}.png"))
    for index in range(5):  # submitted by the earlier run, finished meanwhile
        reporter.event(BatchEvent(kind="reattached", key=f"late-{index}.png", task_id=f"task-unified-1-{index}"))
        reporter.event(BatchEvent(kind="downloaded", key=f"late-{index}.png", paths=("x",)))
    for index in range(3):  # refused before any submit
        reporter.event(BatchEvent(kind="failed", key=f"bad-{index}.png", error_code="invalid_input", message="no"))
    for key in ("new-0.png", "new-1.png"):
        reporter.event(BatchEvent(kind="submitted", key=key, task_id=f"task-unified-2-{key}"))
    now[0] += 60
    for key in ("new-0.png", "new-1.png"):
        reporter.event(BatchEvent(kind="downloaded", key=key, paths=("x",)))
    line = _screen(reporter)
    assert "20/30" in line
    assert "2.0/min" in line  # not 20/min
    assert "ETA 0:05:00" in line


@pytest.mark.evolink_sandbox(time_scale=0.01)
async def test_a_batch_counts_its_inputs_before_its_walk_has_found_them(
    evolink_sandbox: Sandbox, scaled_client: Callable[..., EvolinkClient], tmp_path: Path
) -> None:
    for index in range(60):
        write_png(tmp_path / "in" / f"{index:02d}.png", width=32, height=32, shade=index * 4)
    spec = BatchSpec(model="mj-v7-remove-bg", input_dir=tmp_path / "in", output_dir=tmp_path / "out")
    events: list[BatchEvent] = []
    async with scaled_client(evolink_sandbox) as client:
        summary = await Batch(client, spec, on_event=events.append).run()
    assert summary.ok
    kinds = [event.kind for event in events]
    counted = [event.total for event in events if event.kind == "counted"]
    assert counted == [60]
    # Counted while the walk was still finding inputs: the live total was 60 from then on.
    assert kinds.index("counted") < kinds.index("discovered")
    found_before = sum(1 for kind in kinds[: kinds.index("counted")] if kind == "found")
    assert found_before < 60
