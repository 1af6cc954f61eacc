"""Progress for people: a task's events relayed to a browser as Server-Sent Events."""

from .relay import ProgressRelay, TaskWatcher

__all__ = ["ProgressRelay", "TaskWatcher"]
