"""Every status, progress form and id shape a Midjourney proxy sends maps onto the unified Task."""

from __future__ import annotations

from typing import Any

import pytest

from evolink_async import Task, TaskStatus
from evolink_async._models.events import EventKind, kind_for
from evolink_async._protocols.midjourney.tasks import parse_progress, structure_mj_task
from evolink_async.errors import ResponseFormatError


def task(**fields: Any) -> Task:
    return structure_mj_task({"id": "1712345678901123", **fields})


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("NOT_START", TaskStatus.PENDING),
        ("SUBMITTED", TaskStatus.PENDING),
        ("", TaskStatus.PENDING),
        (None, TaskStatus.PENDING),
        ("IN_PROGRESS", TaskStatus.PROCESSING),
        ("SUCCESS", TaskStatus.COMPLETED),
        ("FAILURE", TaskStatus.FAILED),
        ("FAILED", TaskStatus.FAILED),
        ("CANCEL", TaskStatus.CANCELLED),
        ("MODAL", TaskStatus.MODAL),
        ("PAUSED", TaskStatus.UNKNOWN),
        (7, TaskStatus.UNKNOWN),
    ],
)
def test_status(status: Any, expected: TaskStatus) -> None:
    assert task(status=status).status is expected


def test_modal_is_visible_and_not_terminal() -> None:
    modal = task(status="MODAL")
    assert not modal.is_terminal
    assert kind_for(modal) is EventKind.PROGRESS


def test_success_results_and_details() -> None:
    body = {
        "id": 1748339029401828, "action": "IMAGINE", "status": "SUCCESS", "prompt": "dog", "promptEn": "Dog",
        "description": "/imagine dog", "state": "s1", "submitTime": 1748339029401, "startTime": 1748339030665,
        "finishTime": 1748339072775, "progress": "100%", "imageUrl": "https://cdn/x.png", "failReason": None,
        "properties": {"finalPrompt": "Dog --v 7"}, "extra": {"kept": True},
        "buttons": [{"customId": "MJ::JOB::upsample::1::h", "emoji": "", "label": "U1", "type": 2, "style": 2},
                    {"customId": "MJ::JOB::reroll::0::h::SOLO", "emoji": "🔄", "label": "", "type": 2, "style": 2},
                    {"label": "broken"}],
    }  # fmt: skip
    done = structure_mj_task(body)
    assert done.id == "1748339029401828"
    assert done.status is TaskStatus.COMPLETED
    assert done.progress == 100
    assert done.results == ("https://cdn/x.png",)
    assert done.created == 1748339029
    assert done.raw["extra"] == {"kept": True}
    details = done.midjourney
    assert details is not None
    assert (details.action, details.prompt, details.prompt_en, details.state) == ("IMAGINE", "dog", "Dog", "s1")
    assert (details.submit_time, details.start_time, details.finish_time) == (1748339029401, 1748339030665, 1748339072775)
    assert [b.label or b.emoji for b in details.buttons] == ["U1", "🔄"]
    assert details.final_prompt == "Dog --v 7"


def test_several_image_urls() -> None:
    done = task(status="SUCCESS", imageUrl="https://a", imageUrls=[{"url": "https://a"}, {"url": "https://b"}, "https://c"])
    assert done.results == ("https://a", "https://b", "https://c")


def test_preview_image_is_not_a_result() -> None:
    assert task(status="IN_PROGRESS", progress="40%", imageUrl="https://preview").results == ()


def test_failure_with_100_percent_is_a_failure() -> None:
    failed = task(status="FAILURE", progress="100%", failReason="[Banned] nope", imageUrl="https://x")
    assert failed.status is TaskStatus.FAILED
    assert failed.results == ()
    assert failed.error is not None
    assert failed.error.message == "[Banned] nope"
    assert task(status="FAILED", progress="100%").status is TaskStatus.FAILED


def test_failure_reasons() -> None:
    banned = task(status="FAILURE", failReason="可能包含敏感词", progress="")
    assert banned.error is not None
    assert banned.error.code == "content_policy_violation"
    assert not banned.error.retryable
    timeout = task(status="FAILURE", failReason="任务超时")
    assert timeout.error is not None
    assert timeout.error.retryable
    plain = task(status="FAILURE")
    assert plain.error is not None
    assert plain.error.message


def test_trueai_cancel_is_cancelled() -> None:
    cancelled = task(status="FAILURE", failReason="取消任务", progress="")
    assert cancelled.status is TaskStatus.CANCELLED
    assert cancelled.error is not None
    assert cancelled.error.code == "request_cancelled"


@pytest.mark.parametrize(
    ("progress", "expected"),
    [(None, 0), ("", 0), ("0%", 0), ("31%", 31), ("100%", 100), ("99.5%", 99), ("Waiting to start", 0),
     ("fast", 0), ("fast, stealth", 0), ("45", 45), (" 7 % ", 7), ("250%", 100), (-3, 0), (12, 12), (True, 0),
     ([], 0), ("nan%", 0)],
)  # fmt: skip
def test_progress_forms(progress: Any, expected: int) -> None:
    assert parse_progress(progress) == expected
    assert task(status="IN_PROGRESS", progress=progress).progress == expected


def test_ids() -> None:
    assert task().id == "1712345678901123"
    assert structure_mj_task({"id": 17, "status": "NOT_START"}).id == "17"
    for bad in ({"status": "SUCCESS"}, {"id": None}, {"id": ""}, {"id": True}, [], None, "x"):
        with pytest.raises(ResponseFormatError):
            structure_mj_task(bad)


def test_times_may_be_null_or_zero() -> None:
    details = task(status="NOT_START", submitTime=0, startTime=None, finishTime="x", buttons=None, properties=None).midjourney
    assert details is not None
    assert (details.submit_time, details.start_time, details.finish_time, details.buttons) == (None, None, None, ())


def test_evolink_tasks_have_no_midjourney_view() -> None:
    assert Task(id="task-unified-1", status=TaskStatus.PENDING).midjourney is None
