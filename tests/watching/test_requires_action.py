"""A task that waits for the caller (``TaskStatus.REQUIRES_ACTION``; a Midjourney ``MODAL``) and
the typed extension slot ``Task.details``: the watching layer ends such a task with the error its
protocol's details name, without knowing the protocol."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import anyio
import attrs
import pytest

from evolink_async import (
    EventKind,
    MidjourneyDetails,
    PollPolicy,
    Task,
    TaskDetails,
    TaskNeedsModalError,
    TaskRequiresActionError,
    TaskStatus,
)
from evolink_async._clients.tasks import Tasks
from evolink_async._protocols.midjourney.tasks import structure_mj_task
from evolink_async._protocols.task_api import Cancel, FetchMany, Recover, ReleaseUploads
from evolink_async._watching.fan_out import FanOut, FanOutItem
from evolink_async._watching.tracker import Tracker


@pytest.mark.parametrize("wire", ["requires_action", "modal", "MODAL", " Requires_Action "])
def test_requires_action_parses_from_its_name_and_its_earlier_one(wire: str) -> None:
    assert TaskStatus.parse(wire) is TaskStatus.REQUIRES_ACTION
    assert TaskStatus.MODAL is TaskStatus.REQUIRES_ACTION  # the earlier name is the same member
    assert not TaskStatus.REQUIRES_ACTION.is_terminal


def test_a_midjourney_modal_task_requires_action_and_carries_typed_details() -> None:
    task = structure_mj_task({"id": 1712345678901, "status": "MODAL", "prompt": "a fox", "state": "s-1"})
    assert task.status is TaskStatus.REQUIRES_ACTION
    assert isinstance(task.details, MidjourneyDetails)
    assert task.midjourney is task.details
    assert (task.details.status, task.details.prompt, task.details.state) == ("MODAL", "a fox", "s-1")
    assert isinstance(task.details.requires_action_error(task), TaskNeedsModalError)
    # Details come from the body: two snapshots of the same body are equal, as before.
    assert task == structure_mj_task({"id": 1712345678901, "status": "MODAL", "prompt": "a fox", "state": "s-1"})


class NeedsApproval(TaskRequiresActionError):
    """The toy protocol's word for waiting: someone must approve the task."""


@attrs.frozen(kw_only=True)
class ToyDetails(TaskDetails):
    approver: str = "ops"

    def requires_action_error(self, task: Task) -> TaskRequiresActionError:
        return NeedsApproval(task, f"task {task.id} waits for approval by {self.approver}")


class ToyAPI:
    """A protocol the SDK has never heard of: every task it creates stops to wait for approval."""

    fetch_many_limit = 1

    def __init__(self) -> None:
        self.fetches = 0

    async def submit(self, request: Any, *, idempotency_key: str) -> Task:
        return Task(id=f"toy-{request}", status=TaskStatus.PENDING, details=ToyDetails())

    async def fetch(self, task_id: str) -> Task:
        self.fetches += 1
        return Task(id=task_id, status=TaskStatus.REQUIRES_ACTION, details=ToyDetails(approver="alice"))

    @property
    def fetch_many(self) -> FetchMany | None:
        return None

    @property
    def cancel(self) -> Cancel | None:
        return None

    @property
    def recover(self) -> Recover | None:
        return None

    @property
    def release_uploads(self) -> ReleaseUploads | None:
        return None


async def _with_tracker(api: ToyAPI, body: Any) -> Any:
    tracker = Tracker(api.fetch, policy=PollPolicy(min_interval=0.01, max_interval=0.01, jitter=0.0))
    async with anyio.create_task_group() as group:
        tracker.open()
        group.start_soon(tracker.run)
        with anyio.fail_after(10):
            result = await body(tracker)
        group.cancel_scope.cancel()
    return result


async def test_wait_ends_with_the_protocols_own_error() -> None:
    api = ToyAPI()

    async def wait(tracker: Tracker) -> BaseException:
        with pytest.raises(NeedsApproval) as raised:
            await Tasks(api, tracker).wait("toy-1", timeout=5)
        return raised.value

    error = await _with_tracker(api, wait)
    assert "approval by alice" in str(error)
    assert error.task.status is TaskStatus.REQUIRES_ACTION
    assert api.fetches == 1  # it stopped at once instead of polling a task that waits


async def test_a_fan_out_input_that_requires_action_fails_with_the_protocols_error() -> None:
    api = ToyAPI()

    async def fan_out(tracker: Tracker) -> Sequence[Any]:
        items = [FanOutItem(key=index, request=index) for index in range(3)]  # type: ignore[arg-type]
        run = FanOut(api, tracker, items, max_in_flight=2, max_submits_per_second=None, buffer_size=8, timeout=5)
        async with run as events:
            return [event async for event in events]

    events = await _with_tracker(api, fan_out)
    ends = {event.key: event for event in events if event.is_terminal}
    assert sorted(ends) == [0, 1, 2]
    assert all(event.kind is EventKind.FAILED and isinstance(event.error, NeedsApproval) for event in ends.values())
