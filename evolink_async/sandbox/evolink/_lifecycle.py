"""The timeline of one task, fixed at submit and read lazily from the clock.

A task is planned once, when it is accepted: its duration, outcome and failure code come from
a random stream seeded by ``(seed, task ordinal)``, never from timing, so the same seed and the
same sequence of submits give the same tasks. After that no coroutine runs per task: every
query computes the status and progress from the current time (``snapshot``), which is what
lets a sandbox hold 100k tasks for free.

Timeline (real seconds, from ``submitted``): ``pending`` for the first ``pending_fraction`` of
the duration, then ``processing`` with an integer progress rising from 1 to 99 (to a plateau of
85-93 for stuck tasks, which then sit there until their server timeout), then ``completed``
(progress 100, ``results``) or ``failed`` (progress 0 and an ``error``, as in API.md A3).
"""

from __future__ import annotations

import random
from typing import Any, Literal

import attrs

from ..._models.task import TaskStatus
from .._config import SandboxConfig, json_seconds

__all__ = ["ERROR_MESSAGES", "TaskRecord", "plan_task", "result_url", "snapshot"]

Outcome = Literal["completed", "failed", "stuck"]

ERROR_MESSAGES = {
    "content_policy_violation": "Content policy violation. Please modify your prompt or image and try again.",
    "invalid_parameters": "Invalid parameters for this model.",
    "image_processing_error": "The input image could not be downloaded or processed.",
    "image_dimension_mismatch": "The input image dimensions are not supported by this model.",
    "request_cancelled": "The request was cancelled.",
    "generation_failed_no_content": "Generation finished without producing an image.",
    "service_error": "The upstream service returned an error.",
    "generation_timeout": "Generation timed out.",
    "resource_exhausted": "Upstream resources are exhausted, please retry later.",
    "quota_exceeded": "Upstream quota exceeded, please retry later.",
    "service_unavailable": "The upstream service is unavailable.",
    "resource_not_found": "A resource needed by the task was not found.",
    "unknown_error": "Unknown error.",
}

# Stuck tasks freeze where real Midjourney jobs are seen to hang (API.md B2: 85-93 %).
_STUCK_PLATEAU = (85, 93)
_MAX_RESULTS = 10


@attrs.frozen(kw_only=True)
class TaskTimeline:
    """A task's planned life, in ``time.monotonic`` seconds of the sandbox's process.

    ``finishes`` is when it turns terminal (completed, or failed at its failure point); benchmarks
    subtract it from the moment a client saw the end, to measure detection latency.
    """

    submitted: float
    started: float
    finishes: float
    outcome: str


@attrs.frozen(kw_only=True)
class TaskRecord:
    """One accepted task and its whole planned timeline (times are ``time.monotonic`` seconds)."""

    id: str
    ordinal: int
    api_key: str
    model: str
    prompt: str | None
    created: int
    submitted: float
    started: float
    ramp_end: float
    finishes: float
    outcome: Outcome
    plateau: int
    error_code: str | None
    estimated_time: float
    credits: float
    result_count: int
    callback_url: str | None
    input_image: bytes | None = attrs.field(default=None, repr=False)

    @property
    def timeline(self) -> TaskTimeline:
        return TaskTimeline(
            submitted=self.submitted, started=self.started, finishes=self.finishes, outcome=self.outcome
        )

    @property
    def status_when_done(self) -> TaskStatus:
        return TaskStatus.COMPLETED if self.outcome == "completed" else TaskStatus.FAILED

    def is_finished(self, now: float) -> bool:
        return now >= self.finishes

    def state(self, now: float) -> tuple[TaskStatus, int]:
        """Status and progress at ``now``."""
        if now >= self.finishes:
            status = self.status_when_done
            return status, 100 if status is TaskStatus.COMPLETED else 0
        if now < self.started:
            return TaskStatus.PENDING, 0
        span = self.ramp_end - self.started
        fraction = 1.0 if span <= 0 else min(1.0, (now - self.started) / span)
        return TaskStatus.PROCESSING, max(1, int(fraction * self.plateau))


def _result_count(body: dict[str, Any]) -> int:
    n = body.get("n")
    if isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= _MAX_RESULTS:
        return n
    return 1


def plan_task(
    config: SandboxConfig,
    *,
    task_id: str,
    ordinal: int,
    api_key: str,
    body: dict[str, Any],
    created: int,
    now: float,
    credits: float,
    input_image: bytes | None,
    input_missing: bool,
) -> TaskRecord:
    """Fix the timeline and outcome of a newly accepted task.

    ``input_missing`` marks an input URL that points at this sandbox but names no file (deleted,
    expired or never uploaded) or a file that is no whole image (truncated, corrupt): the task
    then fails with ``image_processing_error``, as the real service fails when it cannot download
    or read an input.
    """
    rng = random.Random(f"{config.seed}/task/{ordinal}")
    faults = config.faults
    # Draw every value in a fixed order whatever is used, so changing one knob (say the failure
    # rate) does not shift the durations of the other tasks of a seeded run.
    factor = rng.uniform(*config.duration_spread)
    outcome_draw = rng.random()
    code_draw = rng.randrange(len(faults.failure_codes))
    fail_point = rng.uniform(0.3, 1.0)
    plateau = rng.randint(*_STUCK_PLATEAU)

    model = str(body["model"])
    estimated = config.estimated_time(model)
    duration = config.real(estimated * factor)
    started = now + duration * config.pending_fraction
    ramp_end = now + duration
    outcome: Outcome = "completed"
    error_code: str | None = None
    finishes = ramp_end
    if input_missing:
        outcome, error_code = "failed", "image_processing_error"
        finishes = started
    elif outcome_draw < faults.task_failure_rate:
        outcome, error_code = "failed", faults.failure_codes[code_draw]
        finishes = started + (ramp_end - started) * fail_point
    elif outcome_draw < faults.task_failure_rate + faults.stuck_rate:
        outcome, error_code = "stuck", "generation_timeout"
        finishes = max(ramp_end, now + config.real(faults.stuck_timeout))
    prompt = body.get("prompt")
    return TaskRecord(
        id=task_id,
        ordinal=ordinal,
        api_key=api_key,
        model=model,
        prompt=prompt if isinstance(prompt, str) else None,
        created=created,
        submitted=now,
        started=started,
        ramp_end=ramp_end,
        finishes=finishes,
        outcome=outcome,
        plateau=plateau if outcome == "stuck" else 99,
        error_code=error_code,
        estimated_time=config.real(estimated),
        credits=credits,
        result_count=_result_count(body),
        callback_url=body.get("callback_url"),
        input_image=input_image,
    )


def result_url(base_url: str, task_id: str, index: int) -> str:
    return f"{base_url}/files/results/{task_id}/{index}.png"


def snapshot(record: TaskRecord, now: float, *, base_url: str, user_group: str = "default") -> dict[str, Any]:
    """The task as ``GET /v1/tasks/{id}`` answers it at ``now`` (API.md A1/A3 shapes)."""
    status, progress = record.state(now)
    terminal = status.is_terminal
    body: dict[str, Any] = {
        "created": record.created,
        "id": record.id,
        "model": record.model,
        "object": "image.generation.task",
        "progress": progress,
        "status": status.value,
        "task_info": {"can_cancel": not terminal},
        "type": "image",
        "usage": {"billing_rule": "per_call", "credits_reserved": record.credits, "user_group": user_group},
    }
    if not terminal:
        body["task_info"]["estimated_time"] = json_seconds(record.estimated_time)
    if status is TaskStatus.COMPLETED:
        body["results"] = [result_url(base_url, record.id, i) for i in range(record.result_count)]
        # Evolink's answers carry the same outcome as typed items beside ``results`` (API.md A6).
        body["result_data"] = [{"image_url": url} for url in body["results"]]
    elif status is TaskStatus.FAILED:
        code = record.error_code or "unknown_error"
        body["error"] = {"code": code, "message": ERROR_MESSAGES.get(code, "Task failed.")}
    return body
