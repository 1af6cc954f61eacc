"""A watch sink that records what a Tracker delivers to it, for tests that drive the tracker directly."""

from __future__ import annotations

from evolink_async import TaskEvent


class Recorder:
    def __init__(self) -> None:
        self.events: list[TaskEvent] = []
        self.errors: list[BaseException] = []

    def deliver(self, event: TaskEvent) -> None:
        self.events.append(event)

    def fail(self, error: BaseException) -> None:
        self.errors.append(error)
