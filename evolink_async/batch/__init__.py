"""Batch: many inputs, resumable through a journal (an embedded SQLite file), never paid twice.

A fleet of workers on many machines shares one batch through a PostgreSQL journal
(:class:`PgJournal`, :class:`Worker`; asyncpg is imported only when one is opened).

Loaded on first use: ``import evolink_async`` does not import this package (nor ``sqlite3``).
"""

from ._entries import Entry, EntryStatus
from ._fleet_status import FleetStatus, fleet_status
from ._folder_source import FolderSource
from ._journal_api import JournalStore, check_postgres_url, is_postgres_url, open_journal, shown_url
from ._manifest import ManifestInput, checked_inputs, folder_manifest, read_manifest
from ._manifest_source import ManifestSource
from ._pg_schema import PG_SCHEMA_VERSION
from ._pg_store import Claim, PgJournal, PlanResult
from ._plan import plan_batch
from ._prompts import ImagineSource, PromptBatch, PromptInput, PromptSource, PromptSpec
from ._run import Batch
from ._source import InputSource, PlannedSource, PreparedRequest, SourceContext
from ._spec import BatchEvent, BatchLockedError, BatchPlan, BatchSpec, BatchSummary, FailedInput, UnreadableFolder
from ._wal import default_wal_path
from ._worker import Worker, WorkerOptions, WorkerSummary

__all__ = [
    "PG_SCHEMA_VERSION", "Batch", "BatchEvent", "BatchLockedError", "BatchPlan", "BatchSpec", "BatchSummary",
    "Claim", "Entry", "EntryStatus", "FailedInput", "FleetStatus", "FolderSource", "ImagineSource", "InputSource",
    "JournalStore", "ManifestInput", "ManifestSource", "PgJournal", "PlanResult", "PlannedSource",
    "PreparedRequest", "PromptBatch", "PromptInput", "PromptSource", "PromptSpec", "SourceContext",
    "UnreadableFolder", "Worker", "WorkerOptions", "WorkerSummary", "check_postgres_url", "checked_inputs",
    "default_wal_path", "fleet_status", "folder_manifest", "is_postgres_url", "open_journal", "plan_batch",
    "read_manifest", "shown_url",
]  # fmt: skip
