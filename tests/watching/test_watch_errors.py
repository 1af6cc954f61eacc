"""Failing and hostile queries: a watch always ends, with a typed error."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp import web

import evolink_async as evolink
from evolink_async.sandbox import Faults, Sandbox
from tests.helpers.hostile import (
    QUERY_PREFIX,
    SUBMIT,
    client_for,
    drop_connection,
    edit,
    error_answer,
    hostile_server,
    json_answer,
    task_body,
)

TASK_ID = "task-unified-1757165031-watched"

# --- item 2: a query answering 400 / 5xx / no answer must not be polled forever -------------


async def test_wait_raises_bad_request_at_once_when_the_query_answers_400() -> None:
    """Item 2: a 400 on a task query ends ``wait`` at once with BadRequestError (one query, no polling loop)."""

    async def handler(request: web.Request) -> web.StreamResponse:
        return error_answer(400, "invalid_parameters", "task id rejected")

    async with hostile_server(handler) as server, client_for(server) as client:
        async with asyncio.timeout(10):
            with pytest.raises(evolink.BadRequestError):
                await client.tasks.wait(TASK_ID)
        assert server.count("GET", QUERY_PREFIX) == 1


async def test_stream_ends_with_bad_request_when_the_query_answers_400() -> None:
    """Item 2: ``tasks.stream`` ends on a query 400: either raises BadRequestError or yields a
    terminal FAILED event whose ``.error`` is the BadRequestError, after exactly one query."""

    async def handler(request: web.Request) -> web.StreamResponse:
        return error_answer(400, "invalid_parameters", "task id rejected")

    async with hostile_server(handler) as server, client_for(server) as client:
        events: list[evolink.TaskEvent] = []
        raised: BaseException | None = None
        async with asyncio.timeout(10):
            try:
                async with client.tasks.stream(TASK_ID) as stream:
                    async for event in stream:
                        events.append(event)
            except evolink.EvolinkError as exc:
                raised = exc
        if raised is None:
            assert events, "the stream ended without any event"
            last = events[-1]
            assert last.kind is evolink.EventKind.FAILED
            assert isinstance(last.error, evolink.BadRequestError)
        else:
            assert isinstance(raised, evolink.BadRequestError)
        assert server.count("GET", QUERY_PREFIX) == 1


@pytest.mark.parametrize(
    ("failure", "expected"),
    [("http500", evolink.ServerError), ("reset", evolink.APIConnectionError)],
)
async def test_wait_on_a_query_that_always_fails_ends_with_the_last_error(
    failure: str, expected: type[evolink.EvolinkError]
) -> None:
    """Item 2: a query that fails forever (500s, dropped connections) ends ``wait`` with that error
    after a bounded number of consecutive failures (fast PollPolicy, no client deadline)."""

    async def handler(request: web.Request) -> web.StreamResponse:
        if failure == "reset":
            return await drop_connection(request)
        return error_answer(500, "internal_error", "upstream exploded")

    async with hostile_server(handler) as server, client_for(server) as client:
        async with asyncio.timeout(20):
            with pytest.raises(expected):
                await client.tasks.wait(TASK_ID)
        assert server.count("GET", QUERY_PREFIX) >= 2  # retried a few times, but not forever


async def test_a_deadline_that_passes_while_queries_fail_says_why() -> None:
    """Queries answering 503 until the caller's deadline: ``TaskTimeoutError`` carries the last
    query's error (``last_error``, ``__cause__``, its message), and so does the stream's
    ``TIMED_OUT`` event; a deadline reached while queries answer carries none."""
    failing = True

    async def handler(request: web.Request) -> web.StreamResponse:
        if failing:
            return error_answer(503, "service_unavailable", "upstream is down")
        return json_answer(task_body(TASK_ID, status="processing"))

    # Error waits of 0.05, 0.1, 0.2, ... up to 1 s: about six failed queries in the 2 s, fewer
    # than the ten after which the watch would end with the error itself.
    patient = evolink.PollPolicy(min_interval=0.05, max_interval=0.1, max_error_interval=1.0, first_query=0.0)
    async with hostile_server(handler) as server, client_for(server, poll_policy=patient) as client:
        async with asyncio.timeout(20):
            with pytest.raises(evolink.TaskTimeoutError) as timed_out:
                await client.tasks.wait(TASK_ID, timeout=2.0)
            events = [event async for event in client.tasks.stream(TASK_ID, timeout=1.0)]
            failing = False
            with pytest.raises(evolink.TaskTimeoutError) as slow:
                await client.tasks.wait(TASK_ID, timeout=0.5)
    assert server.count("GET", QUERY_PREFIX) >= 2
    assert isinstance(timed_out.value.last_error, evolink.ServerError)
    assert timed_out.value.__cause__ is timed_out.value.last_error
    assert "upstream is down" in str(timed_out.value)
    assert events[-1].kind is evolink.EventKind.TIMED_OUT
    assert isinstance(events[-1].error, evolink.ServerError)
    assert slow.value.last_error is None
    assert slow.value.__cause__ is None


# --- item 5: an absurd estimated_time must not suspend polling ------------------------------


@pytest.mark.parametrize("estimated", [1e9, 1e308, "1e300"])
async def test_huge_estimated_time_does_not_suspend_polling(estimated: object) -> None:
    """Item 5: a submit answer with ``estimated_time`` 1e9 / 1e308 / "1e300": the first query
    still comes within the PollPolicy's ``max_interval`` and the completion is detected."""
    state = {"id": ""}

    async def handler(request: web.Request) -> web.StreamResponse:
        if request.method == "POST" and request.path == SUBMIT:
            body = task_body(task_info={"can_cancel": True, "estimated_time": estimated})
            state["id"] = body["id"]
            return json_answer(body)
        return json_answer(task_body(state["id"], status="completed"))

    policy = evolink.PollPolicy(min_interval=0.01, max_interval=0.2, default_estimated_time=0.05)
    async with hostile_server(handler) as server, client_for(server, poll_policy=policy) as client:
        task = await client.images.submit(edit())
        async with asyncio.timeout(10):
            done = await client.tasks.wait(task)
        assert done.status is evolink.TaskStatus.COMPLETED
        assert server.count("GET", QUERY_PREFIX) >= 1


# --- item 6: a JSON body nested 100,000 deep ------------------------------------------------

DEEP = ('{"a":' + "[" * 100_000 + "]" * 100_000 + "}").encode()


def _deep_answer() -> web.Response:
    return web.Response(status=200, body=DEEP, content_type="application/json")


async def test_deeply_nested_query_answer_is_a_response_format_error() -> None:
    """Item 6: a query answer nested 100,000 deep gives ResponseFormatError from ``tasks.get``
    (not RecursionError), and ends ``tasks.wait`` with ResponseFormatError."""

    async def handler(request: web.Request) -> web.StreamResponse:
        return _deep_answer()

    async with hostile_server(handler) as server, client_for(server) as client:
        async with asyncio.timeout(20):
            with pytest.raises(evolink.ResponseFormatError):
                await client.tasks.get(TASK_ID)
            with pytest.raises(evolink.ResponseFormatError):
                await client.tasks.wait(TASK_ID)


async def test_deeply_nested_query_answer_fails_only_its_fan_out_input() -> None:
    """Item 6: in a fan_out of 4 inputs where one task's query answers a 100,000-deep body, that
    input alone ends FAILED with a ResponseFormatError; the others complete; no ExceptionGroup."""
    ids: dict[str, str] = {}  # task id -> prompt

    async def handler(request: web.Request) -> web.StreamResponse:
        if request.method == "POST" and request.path == SUBMIT:
            prompt = (await request.json())["prompt"]
            body = task_body()
            ids[body["id"]] = prompt
            return json_answer(body)
        task_id = request.path.removeprefix(QUERY_PREFIX)
        if ids.get(task_id) == "make it blue 2":
            return _deep_answer()
        return json_answer(task_body(task_id, status="completed"))

    terminal: dict[object, evolink.TaskEvent] = {}
    async with hostile_server(handler) as server, client_for(server) as client:
        async with asyncio.timeout(20):
            async with client.fan_out([(f"in-{n}", edit(n)) for n in range(4)], max_in_flight=4) as events:
                async for event in events:
                    if event.is_terminal:
                        assert event.key not in terminal
                        terminal[event.key] = event
    assert set(terminal) == {"in-0", "in-1", "in-2", "in-3"}
    bad = terminal["in-2"]
    assert bad.kind is evolink.EventKind.FAILED
    assert isinstance(bad.error, evolink.ResponseFormatError)
    for key in ("in-0", "in-1", "in-3"):
        assert terminal[key].kind is evolink.EventKind.COMPLETED


# --- item 7: "created": 10**400 --------------------------------------------------------------

HUGE_CREATED = 10**400


def _with_huge_created(body: dict[str, object]) -> bytes:
    text = json.dumps({**body, "created": 0})
    return text.replace('"created": 0', f'"created": {HUGE_CREATED}').encode()


async def test_huge_created_in_submit_answer_raises_no_overflow_error() -> None:
    """Item 7: ``"created": 10**400`` in a submit answer: no OverflowError. Either the submit
    raises ResponseFormatError, or the task is parsed tolerantly and ``wait`` completes."""
    state = {"id": ""}

    async def handler(request: web.Request) -> web.StreamResponse:
        if request.method == "POST" and request.path == SUBMIT:
            body = task_body()
            state["id"] = body["id"]
            return web.Response(body=_with_huge_created(body), content_type="application/json")
        return json_answer(task_body(state["id"], status="completed"))

    async with hostile_server(handler) as server, client_for(server) as client:
        async with asyncio.timeout(10):
            try:
                task = await client.images.submit(edit())
            except evolink.ResponseFormatError:
                return
            done = await client.tasks.wait(task)
        assert done.status is evolink.TaskStatus.COMPLETED


async def test_huge_created_fails_at_most_its_own_fan_out_input() -> None:
    """Item 7: in a fan_out, a submit answer with ``"created": 10**400`` affects that input only
    (SUBMIT_FAILED with ResponseFormatError, or completed); every other input completes."""

    async def handler(request: web.Request) -> web.StreamResponse:
        if request.method == "POST" and request.path == SUBMIT:
            prompt = (await request.json())["prompt"]
            body = task_body()
            if prompt == "make it blue 1":
                return web.Response(body=_with_huge_created(body), content_type="application/json")
            return json_answer(body)
        return json_answer(task_body(request.path.removeprefix(QUERY_PREFIX), status="completed"))

    terminal: dict[object, evolink.TaskEvent] = {}
    async with hostile_server(handler) as server, client_for(server) as client:
        async with asyncio.timeout(20):
            async with client.fan_out([(f"in-{n}", edit(n)) for n in range(3)], max_in_flight=3) as events:
                async for event in events:
                    if event.is_terminal:
                        terminal[event.key] = event
    assert set(terminal) == {"in-0", "in-1", "in-2"}
    odd = terminal["in-1"]
    assert odd.kind is evolink.EventKind.COMPLETED or (
        odd.kind is evolink.EventKind.SUBMIT_FAILED and isinstance(odd.error, evolink.ResponseFormatError)
    )
    assert terminal["in-0"].kind is evolink.EventKind.COMPLETED
    assert terminal["in-2"].kind is evolink.EventKind.COMPLETED


# --- item 20: a server-side failure carries a TaskFailedError ---------------------------------


def _sandbox_client(sandbox: Sandbox) -> evolink.EvolinkClient:
    return evolink.EvolinkClient(
        sandbox.api_key,
        base_url=sandbox.base_url,
        files_base_url=sandbox.files_base_url,
        poll_policy=evolink.PollPolicy().scaled(0.01),
        retry=evolink.RetryPolicy(max_retries=4, initial_delay=0.01, max_delay=0.05),
    )


@pytest.mark.evolink_sandbox(faults=Faults(task_failure_rate=1.0, failure_codes=("service_error",)))
async def test_failed_stream_event_carries_task_failed_error(evolink_sandbox: Sandbox) -> None:
    """Item 20: the FAILED event of a task that failed on the server has ``event.error`` set to a
    TaskFailedError with the task's error code and message."""
    async with _sandbox_client(evolink_sandbox) as client:
        task = await client.images.submit(edit())
        async with asyncio.timeout(20):
            events = [event async for event in client.tasks.stream(task)]
    last = events[-1]
    assert last.kind is evolink.EventKind.FAILED
    assert last.task is not None
    assert last.task.error is not None
    assert isinstance(last.error, evolink.TaskFailedError)
    assert last.error.code == last.task.error.code == "service_error"
    assert last.error.message == last.task.error.message


@pytest.mark.evolink_sandbox(faults=Faults(task_failure_rate=1.0, failure_codes=("content_policy_violation",)))
async def test_failed_fan_out_event_carries_task_failed_error(evolink_sandbox: Sandbox) -> None:
    """Item 20: in a fan_out too, a FAILED event for a server-side failure carries a TaskFailedError."""
    failed: list[evolink.TaskEvent] = []
    async with _sandbox_client(evolink_sandbox) as client:
        async with asyncio.timeout(20):
            async with client.fan_out([edit(n) for n in range(3)], max_in_flight=3) as events:
                async for event in events:
                    if event.is_terminal:
                        failed.append(event)
    assert len(failed) == 3
    for event in failed:
        assert event.kind is evolink.EventKind.FAILED
        assert isinstance(event.error, evolink.TaskFailedError)
        assert event.error.code == "content_policy_violation"
        assert event.error.retryable is False


# --- same class elsewhere: hostile query bodies end the watch ---------------------------------


@pytest.mark.parametrize("body", [b"[]", b"null"], ids=["list", "null"])
async def test_wait_on_a_query_answering_a_non_task_body_ends_with_response_format_error(body: bytes) -> None:
    """Extra (items 2/6 class): a query that answers 200 with a body that is no task (``[]``,
    ``null``, ...) forever ends ``wait`` with ResponseFormatError in bounded time, not a poll loop."""

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(status=200, body=body, content_type="application/json")

    async with hostile_server(handler) as server, client_for(server) as client:
        async with asyncio.timeout(20):
            with pytest.raises(evolink.ResponseFormatError):
                await client.tasks.wait(TASK_ID)


async def test_wait_on_a_50_mb_query_answer_ends_with_response_format_error() -> None:
    """Extra (items 2/6 class): a 50 MB query answer, forever, ends ``wait`` with ResponseFormatError."""
    big = b'{"id": "' + b"x" * (50 * 1024 * 1024) + b'"}'

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(status=200, body=big, content_type="application/json")

    async with hostile_server(handler) as server, client_for(server) as client:
        async with asyncio.timeout(20):
            with pytest.raises(evolink.ResponseFormatError):
                await client.tasks.wait(TASK_ID)
