"""``evolink.events.dropped``: each progress event replaced before its consumer took it is counted."""

from __future__ import annotations

from evolink_async import EvolinkClient, QwenImageEdit
from evolink_async._models.events import EventKind, TaskEvent
from evolink_async._models.task import Task, TaskStatus
from evolink_async._watching.mailbox import Mailbox
from evolink_async.sandbox import Sandbox

from .conftest import Otel


def event(kind: EventKind, progress: int) -> TaskEvent:
    status = TaskStatus.COMPLETED if kind is EventKind.COMPLETED else TaskStatus.PROCESSING
    return TaskEvent(kind=kind, task=Task(id="t", status=status, progress=progress), key=None, at=0.0)


def test_the_mailbox_reports_each_replaced_progress_event() -> None:
    dropped: list[None] = []
    mailbox = Mailbox(on_drop=lambda: dropped.append(None))
    for progress in (10, 20, 30):
        mailbox.deliver(event(EventKind.PROGRESS, progress))
    assert len(dropped) == 2  # 10 and 20 were replaced by 30
    mailbox.deliver(event(EventKind.COMPLETED, 100))
    assert len(dropped) == 3  # the waiting 30 replaced by the end
    first = mailbox.take()
    assert first is not None
    assert first.kind is EventKind.COMPLETED
    assert mailbox.take() is None


async def test_a_streams_replaced_events_reach_the_metric(evolink_sandbox: Sandbox, otel: Otel) -> None:
    async with EvolinkClient(
        evolink_sandbox.api_key, base_url=evolink_sandbox.base_url, files_base_url=evolink_sandbox.files_base_url,
        tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider,
    ) as client:
        task = await client.images.submit(QwenImageEdit(prompt="x", image_urls=["https://example.com/a.png"]))
        stream = client.tasks.stream(task)
        # The tracker delivers into the stream's mailbox; two unread progress events: one replaced.
        stream._mailbox.deliver(event(EventKind.PROGRESS, 10))
        stream._mailbox.deliver(event(EventKind.PROGRESS, 20))
    assert otel.total("evolink.events.dropped") == 1
