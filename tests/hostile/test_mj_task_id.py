"""A Midjourney proxy that answers one submit with a task id that is not one URL path segment
(``"../../x"``, 300 digits): that input fails alone with a ``ResponseFormatError``; the others of
the fan-out finish. Before, the id was taken and the first query of it raised a ``ValidationError``
that ended the whole fan-out (and, from a journal, every re-run)."""

from __future__ import annotations

import itertools

import pytest
from aiohttp import web

import evolink_async as evolink
from tests.helpers.hostile import hostile_server, json_answer


@pytest.mark.parametrize("bad_id", ["../../x", "9" * 300, "a/b"])
async def test_a_submit_answered_with_an_unsafe_task_id_fails_that_input_alone(bad_id: str) -> None:
    ids = itertools.count(1712345678901001)
    submits = itertools.count(1)

    async def handler(request: web.Request) -> web.StreamResponse:
        if request.method == "POST" and request.path.endswith("/submit/imagine"):
            task_id = bad_id if next(submits) == 2 else str(next(ids))
            return json_answer({"code": 1, "description": "提交成功", "result": task_id})
        if request.path.endswith("/fetch"):
            task_id = request.path.split("/")[-2]
            return json_answer({"id": task_id, "action": "IMAGINE", "status": "SUCCESS", "progress": "100%",
                                "imageUrl": f"https://cdn.example.com/{task_id}.png"})  # fmt: skip
        return json_answer({"code": 404, "description": "no"}, status=404)

    poll = evolink.PollPolicy(min_interval=0.01, max_interval=0.05)
    async with hostile_server(handler) as server, evolink.MidjourneyClient(
        "mj-key", base_url=server.url, poll_policy=poll, max_retries=0
    ) as mj:
        events: list[evolink.TaskEvent] = []
        requests = [(f"p{n}", evolink.Imagine(prompt=f"a fox {n}")) for n in range(4)]
        async with mj.fan_out(requests, max_in_flight=4) as stream:
            async for event in stream:
                events.append(event)
    by_kind: dict[evolink.EventKind, list[evolink.TaskEvent]] = {}
    for event in events:
        by_kind.setdefault(event.kind, []).append(event)
    assert len(by_kind[evolink.EventKind.COMPLETED]) == 3
    (failed,) = by_kind[evolink.EventKind.SUBMIT_FAILED]
    assert isinstance(failed.error, evolink.ResponseFormatError)
    assert "path segment" in str(failed.error)
    assert server.count("POST", "/mj/submit/imagine") == 4  # the odd one is not sent again
