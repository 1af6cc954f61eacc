"""The one cattrs converter that turns wire JSON into response types.

Liberal in what it accepts: unknown fields are kept in ``Task.raw``, unknown statuses become
``UNKNOWN``, an integer ``error.code`` becomes a string, and missing optional blocks are fine.
A body that is not a task at all raises :class:`~evolink_async.ResponseFormatError`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import cattrs

from ..errors import ResponseFormatError
from .task import _STATUS_BY_WIRE, ResultItem, Task, TaskError, TaskInfo, TaskStatus, Usage
from .task_ids import is_safe_task_id

__all__ = ["converter", "structure_task"]

# detailed_validation off: it wraps every field in bookkeeping that costs about a third of the
# parse, on a path that runs once per query; malformed bodies still raise, with a plainer message.
converter = cattrs.Converter(forbid_extra_keys=False, detailed_validation=False)


# Every hook takes (value, type), the signature cattrs calls with, so that none needs a lambda
# around it: this runs once per query, and each layer showed in the lifecycle benchmark.


def _optional_str(value: Any, _: Any = None) -> str | None:
    if value is None:
        return None
    return str(value)


def _optional_float(value: Any, _: Any = None) -> float | None:
    kind = type(value)
    if kind is float:
        return value if math.isfinite(value) else None
    if value is None or kind is bool:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def _optional_credits(value: Any) -> float | None:
    # A negative cost is no cost a server can mean: taken as one, it would lower the credits a
    # fan-out counts as reserved and let ``max_credits`` pass every submit. Unknown instead, which
    # the budget treats with care (one submit at a time, or ``credits_per_task``).
    number = _optional_float(value)
    return number if number is None or number >= 0 else None


def _progress(value: Any, _: Any = None) -> int:
    # The protocol says 0-100 integers; tolerate floats, numeric strings and "45%".
    if type(value) is int:
        return value if 0 <= value <= 100 else 0 if value < 0 else 100
    if isinstance(value, str):
        value = value.strip().rstrip("%")
    number = _optional_float(value)
    if number is None:
        return 0
    return max(0, min(100, int(number)))


# Times and counts beyond 64 bits are nonsense from a server; as Python ints they would only fail
# later, in float arithmetic (``"created": 10**400`` raised OverflowError in wait()).
_INT_LIMIT = 2**63


def _optional_int(value: Any, _: Any = None) -> int | None:
    if type(value) is int:
        return value if -_INT_LIMIT < value < _INT_LIMIT else None
    number = _optional_float(value)
    return None if number is None or not -_INT_LIMIT < number < _INT_LIMIT else int(number)


def _bool_or_none(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


# A hostile answer could list millions of items; a real one has a few (``n`` is at most 10). For
# ``results`` the bound is also one on downloads: 20 000 URLs in one answer were 20 000 files saved.
_MAX_RESULT_ITEMS = 1000


def _results(value: Any, _: Any = None) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:  # no generator for the empty list of a running task
        return ()
    return tuple(v for v in value[:_MAX_RESULT_ITEMS] if isinstance(v, str))


def _result_item(value: Mapping[str, Any]) -> ResultItem:
    duration = _optional_float(value.get("duration"))
    return ResultItem(
        image_url=_optional_url(value.get("image_url")),
        video_url=_optional_url(value.get("video_url")),
        audio_url=_optional_url(value.get("audio_url")),
        title=_optional_str(value.get("title")),
        duration=duration if duration is not None and duration >= 0 else None,
        raw=value,
    )


def _optional_url(value: Any) -> str | None:
    return value if type(value) is str and value else None


def _result_data(value: Any, _: Any = None) -> tuple[ResultItem, ...]:
    if type(value) is not list or not value:  # absent on most answers: no work at all
        return ()
    return tuple(_result_item(v) for v in value[:_MAX_RESULT_ITEMS] if type(v) is dict or isinstance(v, Mapping))


# ``type(value) is dict`` first: JSON objects are dicts, and ``isinstance(value, Mapping)`` is an
# ABC check (a Python-level ``__instancecheck__`` call) that ran several times per query.


def _task_error(value: Any, _: Any = None) -> TaskError | None:
    if value is None:
        return None
    if type(value) is not dict and not isinstance(value, Mapping):
        return TaskError(message=str(value))
    return TaskError(
        code=_optional_str(value.get("code")),
        message=str(value.get("message") or ""),
        # Evolink's clients read ``suggestion`` on task errors and ``fallback_suggestion`` on HTTP
        # errors (API.md A3, A6): either is the hint for the person.
        suggestion=_optional_str(value.get("suggestion") or value.get("fallback_suggestion")),
    )


# A batch's tasks share their scheduling hints and their billing block (same model, same
# price), and these values are frozen: equal blocks are built once and shared. The caches are
# bounded (cleared when full) so that a server sending ever-new numbers cannot grow them.
_SHARED_LIMIT = 256
_SHARED_TEXT_LIMIT = 128
_task_infos: dict[tuple[bool | None, float | None], TaskInfo] = {}
_usages: dict[tuple[str | None, str | None, float | None, float | None, float | None], Usage] = {}
_NO_TASK_INFO = TaskInfo()


def _remember(cache: dict[Any, Any], key: Any, value: Any) -> None:
    """Keep ``value`` for the next equal block, within the bound."""
    if len(cache) >= _SHARED_LIMIT:
        cache.clear()
    cache[key] = value


def _task_info(value: Any, _: Any = None) -> TaskInfo:
    if type(value) is not dict and not isinstance(value, Mapping):
        return _NO_TASK_INFO
    key = (_bool_or_none(value.get("can_cancel")), _optional_float(value.get("estimated_time")))
    info = _task_infos.get(key)
    if info is None:
        info = TaskInfo(can_cancel=key[0], estimated_time=key[1])
        _remember(_task_infos, key, info)
    return info


def _usage(value: Any, _: Any = None) -> Usage | None:
    if type(value) is not dict and not isinstance(value, Mapping):
        return None
    key = (
        _optional_str(value.get("billing_rule")),
        _optional_str(value.get("user_group")),
        _optional_credits(value.get("credits_reserved")),
        _optional_credits(value.get("credits_used")),
        _optional_credits(value.get("estimated_cost")),
    )
    usage = _usages.get(key)
    if usage is None:
        usage = Usage(
            billing_rule=key[0], user_group=key[1], credits_reserved=key[2], credits_used=key[3], estimated_cost=key[4]
        )
        # Short labels only: a server sending huge strings must not park them here after its
        # tasks are gone.
        if len(key[0] or "") + len(key[1] or "") <= _SHARED_TEXT_LIMIT:
            _remember(_usages, key, usage)
    return usage


def _status(value: Any, _: Any = None) -> TaskStatus:
    # The exact wire values without the classmethod call; ``parse`` handles everything else.
    if type(value) is str:
        member = _STATUS_BY_WIRE.get(value)
        if member is not None:
            return member
    return TaskStatus.parse(value)


converter.register_structure_hook(TaskStatus, _status)
converter.register_structure_hook(TaskError, _task_error)
converter.register_structure_hook(TaskInfo, _task_info)
converter.register_structure_hook(Usage, _usage)


def _task(body: Mapping[str, Any], _: Any = None) -> Task:
    # Written out rather than generated by ``make_dict_structure_fn``: the generated function
    # needed a copy of the body (to add ``raw``) and a keyword dict per call, on a path that runs
    # once per query. Every field goes through the hook registered for it above; a missing key
    # reads as None, which each hook turns into the field's default.
    get = body.get
    task_id, status = body["id"], _status(body["status"])
    model, progress, created = _optional_str(get("model")), _progress(get("progress")), _optional_int(get("created"))
    results, result_data = _results(get("results")), _result_data(get("result_data"))
    task_info, usage = _task_info(get("task_info")), _usage(get("usage"))
    error, type_, object_ = _task_error(get("error")), _optional_str(get("type")), _optional_str(get("object"))
    # The body itself, not a copy: it was decoded for this task alone and nothing else keeps it.
    return Task(id=task_id, status=status, model=model, progress=progress, created=created, results=results,
                result_data=result_data, task_info=task_info, usage=usage, error=error, type=type_, object=object_,
                raw=body)  # fmt: skip


converter.register_structure_hook(Task, _task)


def structure_task(body: object, *, request_id: str | None = None, expected_id: str | None = None) -> Task:
    """Parse one task body (submit answer, query answer or callback).

    ``expected_id`` is the id a query asked for (already checked to be safe, an exact ``str``):
    an answer about any other task is a ``ResponseFormatError``, not that task's state.
    """
    if type(body) is not dict and not isinstance(body, Mapping):
        raise ResponseFormatError(f"expected a task object, got {type(body).__name__}", request_id=request_id)
    task_id = body.get("id")
    if expected_id is not None:
        # Exact ``str`` on both sides: a subclass could answer the comparison any way it likes.
        if type(task_id) is not str or type(expected_id) is not str or task_id != expected_id:
            other = f" ({task_id})" if is_safe_task_id(task_id) else ""
            raise ResponseFormatError(
                f"the answer to a query of task {expected_id} is about another task{other}", request_id=request_id
            )
    elif not is_safe_task_id(task_id):
        raise ResponseFormatError("task body has no 'id' that is one safe path segment", request_id=request_id)
    if body.get("status") is None:
        raise ResponseFormatError(f"task body {task_id} has no 'status'", request_id=request_id)
    try:
        # The hooks read a null block ("error": null) as absent.
        return _task(body)
    except (TypeError, ValueError, AttributeError) as exc:
        raise ResponseFormatError(f"task body {task_id} is malformed: {exc}", request_id=request_id) from None
