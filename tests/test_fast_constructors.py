"""The hot paths build ``Task`` and ``TaskEvent`` by setting their slots on a bare instance
instead of calling attrs' ``__init__`` (about half the cost). That is sound only while the
``__init__`` does nothing but store each field; these tests fail as soon as that stops being true."""

from __future__ import annotations

import copy
import pickle
from typing import Any

import attrs
import pytest

from evolink_async import EventKind, Task, TaskEvent, TaskFailedError
from evolink_async._models import converter
from evolink_async._models.events import make_event
from tests.test_task_parsing import COMPLETED, FAILED, SUBMITTED


def _plain_fields(cls: type, names: list[str]) -> tuple[attrs.Attribute[Any], ...]:
    fields = attrs.fields(cls)
    assert [field.name for field in fields] == names  # the fast builder sets exactly these
    for field in fields:
        assert field.validator is None
        assert field.converter is None
        assert field.on_setattr is None
    assert not hasattr(cls, "__attrs_post_init__")
    assert not hasattr(cls, "__attrs_pre_init__")
    return fields


def _same(fast: object, built: object) -> None:
    assert type(fast) is type(built)
    assert fast == built
    assert repr(fast) == repr(built)
    assert hash(fast) == hash(built)
    assert pickle.loads(pickle.dumps(fast)) == built
    assert copy.copy(fast) == built
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        setattr(fast, attrs.fields(type(fast))[0].name, None)


WITH_RESULT_DATA = {**COMPLETED, "result_data": [{"image_url": "https://files.example/image.jpg", "extra": 1}]}


@pytest.mark.parametrize(
    "body", [SUBMITTED, COMPLETED, FAILED, WITH_RESULT_DATA, {"id": "task-unified-1", "status": "processing"}]
)
def test_the_parser_builds_the_task_that_task_init_builds(body: dict[str, Any]) -> None:
    fields = _plain_fields(
        Task,
        ["id", "status", "model", "progress", "created", "results", "result_data", "task_info", "usage", "error",
         "type", "object", "raw"],
    )  # fmt: skip
    parsed = converter._task(body)
    built = Task(**{field.name: getattr(parsed, field.name) for field in fields if field.name != "raw"}, raw=body)
    _same(parsed, built)
    assert parsed.raw is body


def test_make_event_builds_the_event_that_task_event_init_builds() -> None:
    _plain_fields(TaskEvent, ["kind", "task", "at", "key", "error"])
    task = converter._task(FAILED)
    error = TaskFailedError(task)
    fast = make_event(EventKind.FAILED, task, 12.5, ("input", 3), error)
    built = TaskEvent(kind=EventKind.FAILED, task=task, at=12.5, key=("input", 3), error=error)
    assert fast.error is error
    assert fast.is_terminal
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        fast.kind = EventKind.PROGRESS  # type: ignore[misc]
    assert fast == built
    assert repr(fast) == repr(built)
    _same(make_event(EventKind.PROGRESS, task, 1.0, None, None), TaskEvent(kind=EventKind.PROGRESS, task=task, at=1.0))
