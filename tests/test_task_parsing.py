"""Parsing of the exact JSON examples in API.md, and tolerance of what the docs leave open."""

from __future__ import annotations

from typing import Any

import pytest

from evolink_async import ResponseFormatError, Task, TaskStatus
from evolink_async._models.converter import structure_task

SUBMITTED: dict[str, Any] = {
    "created": 1757165031, "id": "task-unified-1757165031-mjv7", "model": "mj-v7-retexture",
    "object": "image.generation.task", "progress": 0, "status": "pending",
    "task_info": {"can_cancel": True, "estimated_time": 45},
    "type": "image",
    "usage": {"billing_rule": "per_call", "credits_reserved": 1.8, "user_group": "default"},
}
COMPLETED: dict[str, Any] = {
    "created": 1756817821, "id": "task-unified-1756817821-4x3rx6ny", "model": "gpt-4o-image",
    "object": "image.generation.task", "progress": 100,
    "results": ["https://files.example/image.jpg"],
    "status": "completed", "task_info": {"can_cancel": False}, "type": "image",
}
FAILED: dict[str, Any] = {
    "id": "task-unified-1772618027-cmeisy8h", "object": "image.generation.task", "status": "failed",
    "model": "gemini-3.1-flash-image-preview", "progress": 0,
    "error": {"code": "content_policy_violation", "message": "Content policy violation. ..."},
}


def test_submit_answer() -> None:
    task = structure_task(SUBMITTED)
    assert task.id == "task-unified-1757165031-mjv7"
    assert task.status is TaskStatus.PENDING
    assert not task.is_terminal
    assert task.progress == 0
    assert task.created == 1757165031
    assert task.task_info.can_cancel is True
    assert task.estimated_time == 45.0
    assert task.usage is not None
    assert task.usage.credits_reserved == 1.8
    assert task.usage.billing_rule == "per_call"
    assert task.usage.user_group == "default"
    assert task.results == ()
    assert task.error is None
    assert task.raw == SUBMITTED


def test_completed_answer() -> None:
    task = structure_task(COMPLETED)
    assert task.status is TaskStatus.COMPLETED
    assert task.is_terminal
    assert task.results == ("https://files.example/image.jpg",)
    assert task.task_info.can_cancel is False
    assert task.task_info.estimated_time is None
    assert task.usage is None


def test_failed_answer() -> None:
    task = structure_task(FAILED)
    assert task.status is TaskStatus.FAILED
    assert task.error is not None
    assert task.error.code == "content_policy_violation"
    assert task.error.retryable is False
    assert task.created is None


@pytest.mark.parametrize(("code", "retryable"), [("service_error", True), ("generation_timeout", True),
                                                 ("invalid_parameters", False), ("image_dimension_mismatch", False)])
def test_error_retryability(code: str, retryable: bool) -> None:
    task = structure_task({**FAILED, "error": {"code": code, "message": "m"}})
    assert task.error is not None
    assert task.error.retryable is retryable


def test_integer_error_code_becomes_string() -> None:
    task = structure_task({**FAILED, "error": {"code": 1001, "message": "m", "suggestion": "try again"}})
    assert task.error is not None
    assert task.error.code == "1001"
    assert task.error.suggestion == "try again"


def test_unknown_fields_are_kept_in_raw() -> None:
    body = {**COMPLETED, "result_data": [{"image_url": "https://x/y.png"}], "request_id": "r1"}
    task = structure_task(body)
    assert task.raw["result_data"] == [{"image_url": "https://x/y.png"}]
    assert task.raw["request_id"] == "r1"


def test_unknown_status_maps_to_unknown() -> None:
    task = structure_task({**SUBMITTED, "status": "queued_upstream"})
    assert task.status is TaskStatus.UNKNOWN
    assert not task.is_terminal


def test_cancelled_is_terminal() -> None:
    assert structure_task({**SUBMITTED, "status": "cancelled"}).is_terminal


def test_missing_optional_blocks_and_nulls() -> None:
    task = structure_task({"id": "task-unified-1", "status": "processing", "task_info": None, "usage": None,
                           "error": None, "progress": None})
    assert task == Task(id="task-unified-1", status=TaskStatus.PROCESSING)


@pytest.mark.parametrize(
    ("wire", "parsed"),
    [(45.7, 45), ("45", 45), ("45%", 45), (150, 100), (-3, 0), ("x", 0), (True, 0), (10**400, 100), (float("nan"), 0)],
)
def test_progress_is_tolerant(wire: object, parsed: int) -> None:
    assert structure_task({**SUBMITTED, "progress": wire}).progress == parsed


@pytest.mark.parametrize(
    "body",
    [None, [], "task", {"status": "pending"}, {"id": "", "status": "pending"}, {"id": 5, "status": "pending"},
     {"id": "task-unified-1"}, {"id": "task-unified-1", "status": None},
     {"error": {"code": "x", "message": "not a task"}}],
)
def test_not_a_task_raises_response_format_error(body: object) -> None:
    with pytest.raises(ResponseFormatError):
        structure_task(body, request_id="req-1")


def test_malformed_block_types_are_tolerated() -> None:
    task = structure_task({**COMPLETED, "results": "https://x", "task_info": [1], "usage": "free"})
    assert task.results == ()
    assert task.task_info.estimated_time is None
    assert task.usage is None


def test_out_of_range_numbers_are_dropped_not_raised() -> None:
    task = structure_task(
        {**SUBMITTED, "created": 1e400, "task_info": {"estimated_time": 10**400}, "usage": {"credits_reserved": "inf"}}
    )
    assert task.created is None
    assert task.task_info.estimated_time is None
    assert task.usage is not None
    assert task.usage.credits_reserved is None


def test_huge_usage_labels_are_not_kept_after_their_task() -> None:
    """Equal billing blocks are shared between tasks, but only short ones: a server sending huge
    labels must not leave them held by the parser once its tasks are gone."""
    from evolink_async._models import converter

    huge = "x" * 100_000
    task = structure_task({**SUBMITTED, "usage": {"billing_rule": huge, "credits_reserved": 1.0}})
    assert task.usage is not None
    assert task.usage.billing_rule == huge
    assert all(len(key[0] or "") < 1000 for key in converter._usages)
    again = structure_task(SUBMITTED)
    assert again.usage is structure_task(SUBMITTED).usage  # short labels: one shared value


def test_a_query_answer_about_another_task_is_refused() -> None:
    """A query's answer must be about the task asked for: a server answering with another task
    (its results included) must not make ``wait()`` return that task."""
    ok = structure_task(SUBMITTED, expected_id=SUBMITTED["id"])
    assert ok.id == SUBMITTED["id"]
    for other in ("task-unified-9-other", "../etc/passwd", 5, None, "x" * 5000):
        with pytest.raises(ResponseFormatError, match="about another task"):
            structure_task({**SUBMITTED, "id": other}, expected_id=SUBMITTED["id"])

    class AgreesWithEverything(str):
        def __eq__(self, other: object) -> bool:
            return True

        def __ne__(self, other: object) -> bool:
            return False

        __hash__ = str.__hash__

    with pytest.raises(ResponseFormatError):
        structure_task({**SUBMITTED, "id": AgreesWithEverything("../../v1/x")}, expected_id="abc")
    with pytest.raises(ResponseFormatError):
        structure_task({**SUBMITTED, "id": "../../v1/x"}, expected_id=AgreesWithEverything("abc"))


def test_results_that_are_not_a_list_are_empty_whatever_they_are() -> None:
    class Unjudgeable:
        def __bool__(self) -> bool:
            raise ValueError("no truth value")

    assert structure_task({**SUBMITTED, "results": Unjudgeable()}).results == ()


def test_a_task_error_hint_is_read_under_either_name() -> None:
    for name in ("suggestion", "fallback_suggestion"):
        task = structure_task({**FAILED, "error": {"code": "service_error", "message": "m", name: "retry later"}})
        assert task.error is not None
        assert task.error.suggestion == "retry later", name


def test_hostile_result_data_is_bounded_and_typed() -> None:
    items = [{"image_url": 5, "duration": -3, "title": "t"}, "not an object", *[{"image_url": "u"}] * 5000]
    task = structure_task({**COMPLETED, "result_data": items})
    assert len(task.result_data) == 999  # the first 1000 entries are read; the string among them is dropped
    first = task.result_data[0]
    assert (first.image_url, first.duration, first.title, first.url) == (None, None, "t", None)
    assert task.result_data[1].url == "u"
