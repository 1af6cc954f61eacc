"""What a fleet worker is told (``WorkerOptions``) and what it reports (``WorkerSummary``), and the
fault hooks the fleet's fault tests set (``EVOLINK_FLEET_FAULT``; unset in production)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import attrs

from .._core.checks import COUNT, CREDITS, SECONDS, check_path
from ..errors import ValidationError

__all__ = ["FAULT_ENV", "Faults", "WorkerOptions", "WorkerSummary"]

#: Fault hooks for the fleet's fault tests: ``kill-after-submit`` (SIGKILL once a submit's task id
#: is in the write-ahead file, before the journal has it), ``stop-in-claim[:N]`` (SIGSTOP inside
#: the N-th claim's transaction, the fleet row locked). Unset in production: no effect.
FAULT_ENV = "EVOLINK_FLEET_FAULT"
class Faults:
    def __init__(self, spec: str) -> None:
        point, _, nth = spec.partition(":")
        self.point = point
        self.nth = int(nth) if nth.isdigit() else 1
        self.seen = 0

    def hit(self, point: str) -> bool:
        if point != self.point:
            return False
        self.seen += 1
        return self.seen == self.nth

    @staticmethod
    def signal_self(signum: int) -> None:
        os.kill(os.getpid(), signum)


def _out_dir(value: object) -> Path | None:
    return None if value is None else check_path("out_dir", value)


def _root(value: object) -> Path | None:
    return None if value is None else check_path("root", value)


def _wal(value: object) -> Path | None:
    return None if value is None else check_path("wal", value, what="a file path")


def _worker_id(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    # The id is every lease's owner and the write-ahead file's name: a string a person can read back.
    if value is not None and (not isinstance(value, str) or not value.strip() or not value.isprintable()):
        raise ValidationError("worker_id", f"must be a non-empty printable string, got {value!r}")


@attrs.frozen(kw_only=True)
class WorkerOptions:
    """How one worker behaves. ``max_in_flight`` and ``max_credits`` are batch-wide: a worker given
    them writes them to the journal, and every worker's claims obey what the journal holds."""

    max_in_flight: int | None = attrs.field(default=None, validator=COUNT.optional())
    max_credits: float | None = attrs.field(default=None, validator=CREDITS.optional())
    #: Shared results folder; without it only the result URLs are recorded (they expire in 24 h).
    out_dir: Path | None = attrs.field(default=None, converter=_out_dir)
    #: Where manifest paths resolve on this machine (default: the ``root`` recorded by the plan).
    root: Path | None = attrs.field(default=None, converter=_root)
    #: Inputs taken per claim, and at most held by this worker at once.
    claim_size: int = attrs.field(default=8, validator=COUNT.validator())
    max_held: int = attrs.field(default=64, validator=COUNT.validator())
    #: Seconds a claim stays this worker's without renewal (renewed every third of it).
    lease: float = attrs.field(default=30.0, validator=SECONDS.validator())
    #: Seconds between claims when there was nothing to take.
    poll_interval: float = attrs.field(default=0.5, validator=SECONDS.validator())
    #: Put ``uncertain`` inputs back and resubmit them with their *same* idempotency key. Only for
    #: servers known to de-duplicate by that key (the sandbox does; Evolink's is not confirmed).
    resubmit_uncertain: bool = False
    max_downloads: int = attrs.field(default=4, validator=COUNT.validator())
    worker_id: str | None = attrs.field(default=None, validator=_worker_id)
    #: Keep the files uploaded for an input after its task ended (by default they are deleted: the
    #: Files API keeps 100 files per key; the fleet's workers share the quota through the journal).
    keep_uploads: bool = False
    #: Seconds the journal may stay unreachable (retried, tasks still watched) before the worker stops.
    journal_outage: float = attrs.field(default=60.0, validator=SECONDS.validator())
    #: Seconds an ``uncertain`` input keeps its slot under ``max_in_flight`` (its task may be running),
    #: batch-wide like ``max_in_flight``; None: what the journal holds (1800 unless set).
    uncertain_slot_hold: float | None = attrs.field(default=None, validator=SECONDS.optional())
    #: The write-ahead file of task ids (local, fsynced); None: none (a crash between a submit and
    #: its record then leaves the input ``uncertain``). The CLI gives one per journal by default.
    wal: Path | None = attrs.field(default=None, converter=_wal)


@attrs.define(kw_only=True)
class WorkerSummary:
    """What one worker did."""

    worker: str = ""
    claimed: int = 0
    #: Claims made (calls of the journal's claim), and those that took nothing.
    claims: int = 0
    empty_claims: int = 0
    submitted: int = 0
    reattached: int = 0
    completed: int = 0
    downloaded: int = 0
    failed: int = 0
    uncertain: int = 0
    released: int = 0
    lost_leases: int = 0
    not_submitted: int = 0
    #: What the server's answers reserved; None where the protocol never says (a Midjourney proxy).
    credits_reserved: float | None = 0.0
    #: Writes about an input refused because another worker held it by then (fencing).
    fenced_writes_refused: int = 0
    #: Task ids recorded from the write-ahead file (paid for by an earlier run, watched again).
    recovered_task_ids: int = 0
    #: Submits whose answer was lost, settled by their callback (the fan-out's recover path) instead
    #: of being sent again or left ``uncertain``; only with a client that takes callbacks.
    recovered_submits: int = 0
    #: Uploaded files this worker deleted (its inputs' and those dead workers left), and uploads that
    #: waited because the Files API said the quota was full (another client of the key).
    uploads_deleted: int = 0
    quota_waits: int = 0
    journal_outages: int = 0
    seconds_without_journal: float = 0.0
    interrupted: bool = False
    #: Why this worker stopped submitting (the server refused for now: credits exhausted), if it did.
    stopped_reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)
