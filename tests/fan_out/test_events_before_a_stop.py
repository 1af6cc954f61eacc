"""A fan-out stopped by an error that ends it (a key refused mid-run) first hands over the events it
had already made: a task it submitted reaches the consumer, which records its id, instead of being
known only as a submit that began (``uncertain`` in a journal, its input never sent again)."""

from __future__ import annotations

import anyio
import pytest
from aiohttp import web

import evolink_async as evolink
from tests.helpers.hostile import SUBMIT, client_for, edit, error_answer, hostile_server, json_answer, task_body

ACCEPTED = 3


async def test_the_submitted_events_made_before_a_fatal_refusal_are_read_before_it() -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        if request.method == "POST" and request.path == SUBMIT:
            if server.count("POST", SUBMIT) <= ACCEPTED:
                return json_answer(task_body())
            return error_answer(401, code="invalid_api_key", message="key revoked", type="authentication_error")
        return json_answer(task_body(request.path.rsplit("/", 1)[-1], status="completed"))  # frees the slot

    async with hostile_server(handler) as server, client_for(server) as client:
        events: list[evolink.TaskEvent] = []
        with pytest.raises(evolink.AuthenticationError):
            async with client.fan_out((edit(n) for n in range(10)), max_in_flight=1, buffer_size=100) as stream:
                # Read nothing until the refusal has stopped it: the events wait in the buffer.
                with anyio.fail_after(30):
                    while stream.summary.stopped_reason is None:
                        await anyio.sleep(0.01)
                async for event in stream:
                    events.append(event)
    submitted = [event for event in events if event.kind is evolink.EventKind.SUBMITTED]
    assert len(submitted) == ACCEPTED
    assert len({event.task.id for event in submitted if event.task is not None}) == ACCEPTED


@pytest.mark.parametrize(("bad", "field"), [
    ({"idempotency_key": "short"}, "idempotency_key"),
    ({"task_id": ""}, "task_id"),
    ({"task_id": "../../admin"}, "task_id"),
])  # fmt: skip
async def test_an_input_with_a_malformed_idempotency_key_or_task_id_fails_alone(bad: dict[str, str], field: str) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        if request.method == "POST":
            return json_answer(task_body())
        return json_answer(task_body(request.path.rsplit("/", 1)[-1], status="completed"))

    async with hostile_server(handler) as server, client_for(server) as client:
        items: list[evolink.FanOutItem[evolink.QwenImageEdit]] = [
            evolink.FanOutItem(key="before", request=edit(0)),
            evolink.FanOutItem(key="broken", request=None if "task_id" in bad else edit(1), **bad),
            evolink.FanOutItem(key="after", request=edit(2)),
        ]
        async with client.fan_out(items, max_in_flight=2) as stream:
            ends = {event.key: event async for event in stream if event.is_terminal}
        assert server.count("POST", SUBMIT) == 2  # nothing sent for the broken one
    assert ends["before"].kind is ends["after"].kind is evolink.EventKind.COMPLETED
    assert ends["broken"].kind is evolink.EventKind.SUBMIT_FAILED
    assert isinstance(ends["broken"].error, evolink.ValidationError)
    assert ends["broken"].error.field == field
    assert stream.summary.not_submitted == 0  # refused for itself, not because submitting stopped
