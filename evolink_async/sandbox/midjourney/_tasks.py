"""MJ tasks: a planned list of status events per task, and the book that schedules them.

A task is planned once, when it is queued (at submit, or at ``submit/modal`` for a MODAL one):
NOT_START at submit, SUBMITTED ``"0%"`` when a Discord slot takes it, a few IN_PROGRESS steps
with a preview ``imageUrl``, then SUCCESS ``"100%"`` (buttons, finalPrompt) or a failure. Every
fetch reads the last event at or before now, and every event is one notifyHook POST, so what a
hook receiver sees and what polling sees are the same story. Outcomes and durations come from
a random stream seeded by ``(seed, ordinal)``; ``concurrency`` slots run jobs first come, first
served, and a job waits for a free slot (submit code 22) within a queue of ``queue_size``.
"""

from __future__ import annotations

import heapq
import random
import time
import uuid
from typing import Any

import attrs

from .._config import SandboxConfig
from ._buttons import buttons_for

__all__ = ["CANCEL_REASON", "MjBook", "MjEvent", "MjTask", "QueueFull"]

DISCORD_INSTANCE_ID = "1118138338562560102"
CANCEL_REASON = "取消任务"
TIMEOUT_REASON = "任务超时"
BANNED_REASON = "可能包含敏感词"
FAIL_REASONS = (
    "[Invalid parameter] Invalid value for parameter --ar",
    "[Job action restricted] Sorry! Our AI moderators feel your prompt might be against our community standards.",
    "Failed to process your command",
)
_STUCK_PLATEAU = (85, 93)


class QueueFull(Exception):
    """Every slot is busy and the queue holds ``queue_size`` jobs already."""


@attrs.frozen(kw_only=True)
class MjEvent:
    """One state of a task from ``at`` (the sandbox clock's seconds) on."""

    at: float
    status: str
    progress: str | None
    image: str | None = None  # "preview" or "result"
    fail_reason: str | None = None


@attrs.define(kw_only=True, eq=False)
class MjTask:
    id: str
    ordinal: int
    action: str
    prompt: str
    description: str
    state: Any
    notify_hook: str | None
    bot_type: str
    submitted: float
    submit_ms: int
    job: str
    nonce: str
    parent_id: str | None = None
    index: int = 0
    tile_of: tuple[str, str, int] | None = None  # (task id, prompt, tile) an upscale shows
    final_prompt: str | None = None
    banned: bool = False
    events: list[MjEvent] = attrs.field(factory=list)
    generation: int = 0

    def event_at(self, now: float) -> MjEvent | None:
        current = None
        for event in self.events:
            if event.at > now:
                break
            current = event
        return current

    @property
    def modal(self) -> bool:
        return not self.events

    @property
    def finishes(self) -> float:
        return self.events[-1].at if self.events else float("inf")

    def is_finished(self, now: float) -> bool:
        return now >= self.finishes

    def epoch_ms(self, at: float) -> int:
        return self.submit_ms + round((at - self.submitted) * 1000)


def _fraction_steps(rng: random.Random, count: int, top: int) -> list[tuple[float, int]]:
    fractions = sorted(rng.uniform(0.1, 0.95) for _ in range(count))
    percents = sorted(rng.sample(range(1, top + 1), count))
    return list(zip(fractions, percents, strict=True))


class MjBook:
    """Every MJ task of one sandbox (the proxies keep one store per secret: no per-key scoping)."""

    def __init__(self, config: SandboxConfig) -> None:
        self._config = config
        self.options = config.midjourney
        self._tasks: dict[str, MjTask] = {}
        self._rng = random.Random(f"{config.seed}/mj/ids")
        self._slots: list[float] = [float("-inf")] * self.options.concurrency
        self._queued_starts: list[float] = []  # start times of jobs that had to wait
        self._open: set[MjTask] = set()  # planned tasks that may still be unfinished

    def __len__(self) -> int:
        return len(self._tasks)

    def get(self, task_id: str) -> MjTask | None:
        return self._tasks.get(task_id)

    def many(self, ids: list[str]) -> list[MjTask]:
        return [t for t in (self._tasks.get(str(i).strip()) for i in ids) if t is not None]

    def recent(self, limit: int | None) -> list[MjTask]:
        newest = sorted(self._tasks.values(), key=lambda t: (t.submit_ms, t.ordinal), reverse=True)
        return newest if limit is None else newest[:limit]

    def unfinished(self, now: float) -> int:
        """Planned tasks not terminal at ``now`` (MODAL ones wait for the client, not the server)."""
        self._open = {t for t in self._open if not t.is_finished(now)}
        return len(self._open)

    def waiting(self, now: float) -> int:
        self._queued_starts = [s for s in self._queued_starts if s > now]
        return len(self._queued_starts)

    def new_task(
        self, *, action: str, prompt: str, description: str, body: dict[str, Any], now: float, **extra: Any
    ) -> MjTask:
        """A task, not yet stored nor planned (``add`` stores it, ``plan`` queues it)."""
        ordinal = len(self._tasks)
        submit_ms = int(time.time() * 1000)
        while True:
            task_id = f"{submit_ms}{self._rng.randrange(1000):03d}"
            if task_id not in self._tasks:
                break
            submit_ms += 1
        hook = body.get("notifyHook")
        bot = body.get("botType")
        return MjTask(
            id=task_id,
            ordinal=ordinal,
            action=action,
            prompt=prompt,
            description=description.replace("{id}", task_id),
            state=body.get("state"),
            notify_hook=hook if isinstance(hook, str) and hook else None,
            bot_type="NIJI_JOURNEY" if bot in ("NIJI_JOURNEY", "niji") else "MID_JOURNEY",
            submitted=now,
            submit_ms=submit_ms,
            job=str(uuid.UUID(int=self._rng.getrandbits(128), version=4)),
            nonce=str(self._rng.randrange(10**18, 10**19)),
            **extra,
        )

    def add(self, task: MjTask) -> None:
        self._tasks[task.id] = task

    def check_room(self, now: float) -> int | None:
        """None when a new job would start at once, else how many jobs wait ahead of it.

        Raises QueueFull when ``queue_size`` jobs wait already.
        """
        earliest = now + self._config.real(self.options.dispatch_delay)
        if self._slots[0] <= earliest:
            return None
        waiting = self.waiting(now)
        if waiting >= self.options.queue_size:
            raise QueueFull
        return waiting

    def plan(self, task: MjTask, now: float) -> None:
        """Queue ``task`` at ``now``: take the earliest free slot and fix its whole life."""
        config, options = self._config, self.options
        rng = random.Random(f"{config.seed}/mj/task/{task.ordinal}")
        factor = rng.uniform(*config.duration_spread)
        outcome_draw = rng.random()
        fail_point = rng.uniform(0.3, 0.9)
        plateau = rng.randint(*_STUCK_PLATEAU)
        reason = FAIL_REASONS[rng.randrange(len(FAIL_REASONS))]
        steps = _fraction_steps(rng, rng.randint(3, 5), 99)

        earliest = now + config.real(options.dispatch_delay)
        free = heapq.heappop(self._slots)
        start = max(earliest, free)
        if start > earliest:
            self._queued_starts.append(start)
        duration = config.real(options.duration(task.action) * factor)
        faults = config.faults
        events = [
            MjEvent(at=now, status="NOT_START", progress=None),
            MjEvent(at=start, status="SUBMITTED", progress="0%"),
        ]
        if task.banned:
            end, fail = start, BANNED_REASON
        elif outcome_draw < faults.task_failure_rate:
            end, fail = start + duration * fail_point, reason
            steps = [(f, p) for f, p in steps if f < fail_point]
        elif outcome_draw < faults.task_failure_rate + faults.stuck_rate:
            end, fail = start + config.real(options.timeout), TIMEOUT_REASON
            stuck = random.Random(f"{config.seed}/mj/stuck/{task.ordinal}")
            steps = [*_fraction_steps(stuck, 3, plateau - 1), (0.95, plateau)]
        else:
            end, fail = start + duration, None
        if not task.banned:
            events += [
                MjEvent(at=start + duration * f, status="IN_PROGRESS", progress=f"{p}%", image="preview")
                for f, p in steps
            ]
        if fail is None:
            events.append(MjEvent(at=end, status="SUCCESS", progress="100%", image="result"))
        else:
            events.append(self._failure(end, fail))
        task.events = events
        task.generation += 1
        heapq.heappush(self._slots, end)
        self._open.add(task)

    def _failure(self, at: float, reason: str) -> MjEvent:
        return MjEvent(
            at=at, status=self.options.failure_status, progress=self.options.failure_progress, fail_reason=reason
        )

    def cancel(self, task: MjTask, now: float) -> bool:
        """trueai's cancel: an unfinished task fails now with "取消任务"; True if it changed."""
        if task.events and task.is_finished(now):
            return False
        task.events = [e for e in task.events if e.at <= now] + [self._failure(now, CANCEL_REASON)]
        task.generation += 1
        return True

    def snapshot(self, task: MjTask, now: float, *, images_url: str) -> dict[str, Any]:
        """The task as ``task/{id}/fetch`` answers it at ``now`` (mj_protocol.md §3)."""
        event = task.event_at(now)
        status = "MODAL" if event is None else event.status
        progress = None if event is None else event.progress
        if event is not None and now < task.submitted + self._config.real(self.options.blank_status_for):
            status, progress = "", "0%"
        done = event is not None and event is task.events[-1]
        success = done and event is not None and event.status == "SUCCESS"
        start = task.events[1].at if len(task.events) > 1 and task.events[1].at <= now else None
        image = event.image if event is not None else None
        if image == "result" and task.action == "SHORTEN":
            image = None
        properties: dict[str, Any] = {
            "notifyHook": task.notify_hook,
            "nonce": task.nonce,
            "botType": task.bot_type,
            "discordInstanceId": DISCORD_INSTANCE_ID,
            "discordChannelId": DISCORD_INSTANCE_ID,
        }
        if success or task.modal:
            properties["finalPrompt"] = task.final_prompt or task.prompt
        if task.modal:
            properties["remix"] = True
        if success:
            properties["messageHash"] = task.job
        return {
            "id": task.id,
            "action": task.action,
            "status": status,
            "prompt": task.prompt,
            "promptEn": task.prompt,
            "description": task.description,
            "state": task.state,
            "submitTime": task.submit_ms,
            "startTime": task.epoch_ms(start) if start is not None else None,
            "finishTime": task.epoch_ms(task.finishes) if done else None,
            "imageUrl": f"{images_url}/{task.id}/{image}.png" if image else None,
            "progress": progress,
            "failReason": event.fail_reason if event is not None else None,
            "properties": properties,
            "buttons": buttons_for(task.action, task.job) if success else [],
            "botType": task.bot_type,
            "parentId": task.parent_id,
        }
