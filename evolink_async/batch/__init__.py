"""Batch: many inputs, resumable through a journal (an embedded SQLite file), never paid twice.

Loaded on first use: ``import evolink_async`` does not import this package (nor ``sqlite3``).
"""

from ._run import Batch, plan_batch
from ._spec import BatchEvent, BatchLockedError, BatchPlan, BatchSpec, BatchSummary, FailedInput

__all__ = ["Batch", "BatchEvent", "BatchLockedError", "BatchPlan", "BatchSpec", "BatchSummary", "FailedInput",
           "plan_batch"]  # fmt: skip
