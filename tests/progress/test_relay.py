"""ProgressRelay over real HTTP: tokens, the event stream, resuming, and shared watches."""

from __future__ import annotations

import asyncio
import json
import types
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

import evolink_async as evolink
from evolink_async import ProgressRelay, QwenImageEdit
from evolink_async._relay import tokens as tokens_module
from evolink_async.sandbox import Sandbox

from .conftest import client_for, read_frames

TIMEOUT = aiohttp.ClientTimeout(total=30)
SECRET = "relay-secret-0123456789abcdef"


def edit(i: int = 0) -> QwenImageEdit:
    return QwenImageEdit(prompt=f"edit {i}", image_urls=[f"https://example.com/{i}.png"])


@pytest.fixture(params=["aiohttp", "asgi"])
def serve(request: pytest.FixtureRequest) -> Callable[[ProgressRelay], Any]:
    fixture: Callable[[ProgressRelay], Any] = request.getfixturevalue(f"serve_{request.param}")
    return fixture


@pytest.mark.evolink_sandbox(time_scale=0.02)
async def test_a_page_gets_progress_then_the_terminal_event_and_the_stream_ends(
    evolink_sandbox: Sandbox, serve: Callable[[ProgressRelay], Any]
) -> None:
    async with client_for(evolink_sandbox) as client, ProgressRelay(client, secret=SECRET) as relay:
        base = await serve(relay)
        task = await client.images.submit(edit())
        url = f"{base}/{task.id}?token={relay.token_for(task)}"
        async with aiohttp.ClientSession(timeout=TIMEOUT) as http, http.get(url) as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/event-stream")
            frames = [frame async for frame in read_frames(response)]
    assert frames[0].retry == 3000
    events = frames[1:]
    assert [f.event for f in events][-1] == "completed"
    assert all(f.event == "progress" for f in events[:-1])
    assert len(events) >= 3  # a few distinct progress steps at this cadence
    ids = [f.id for f in events]
    assert ids == sorted(set(ids))  # strictly increasing
    last = events[-1].data
    assert last["task_id"] == task.id
    assert last["status"] == "completed"
    assert last["progress"] == 100
    assert last["results"]
    assert last["error"] is None
    assert all(e.data["kind"] == e.event for e in events)


@pytest.mark.evolink_sandbox(time_scale=0.02)
async def test_forged_foreign_and_expired_tokens_are_403_before_any_body(
    evolink_sandbox: Sandbox, serve: Callable[[ProgressRelay], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    async with client_for(evolink_sandbox) as client, ProgressRelay(client, secret=SECRET) as relay:
        base = await serve(relay)
        mine, other = await client.images.submit(edit(1)), await client.images.submit(edit(2))
        good = relay.token_for(mine)
        expiry, _, signature = good.partition(".")
        # An expired token: signed for the right task, an hour ago, for a minute.
        an_hour_ago = tokens_module.time.time() - 3600
        monkeypatch.setattr(tokens_module, "time", types.SimpleNamespace(time=lambda: an_hour_ago))
        expired = relay.token_for(mine, ttl=60)
        monkeypatch.undo()
        other_relay = ProgressRelay(client, secret="another-secret-0123456789")
        bad = {
            "no token": f"{base}/{mine.id}",
            "empty": f"{base}/{mine.id}?token=",
            "random": f"{base}/{mine.id}?token=123.abc",
            "another task's token": f"{base}/{mine.id}?token={relay.token_for(other)}",
            "token moved to another task": f"{base}/{other.id}?token={good}",
            "expiry pushed forward": f"{base}/{mine.id}?token={int(expiry) + 10**6}.{signature}",
            "another relay's secret": f"{base}/{mine.id}?token={other_relay.token_for(mine)}",
            "expired": f"{base}/{mine.id}?token={expired}",
            "huge": f"{base}/{mine.id}?token={'9' * 5000}.x",
        }
        async with aiohttp.ClientSession(timeout=TIMEOUT) as http:
            for name, url in bad.items():
                async with http.get(url) as response:
                    assert response.status == 403, name
                    assert response.content_type == "application/json", name
                    assert "error" in json.loads(await response.read()), name
            async with http.post(f"{base}/{mine.id}?token={good}") as response:
                assert response.status == 405
        assert relay.watching == 0  # nothing refused started a watch


@pytest.mark.evolink_sandbox(time_scale=0.05)
async def test_last_event_id_resumes_without_repeats(evolink_sandbox: Sandbox, serve_aiohttp: Any) -> None:
    async with client_for(evolink_sandbox) as client, ProgressRelay(client, secret=SECRET) as relay:
        base = await serve_aiohttp(relay)
        task = await client.images.submit(edit())
        url = f"{base}/{task.id}?token={relay.token_for(task)}"
        async with aiohttp.ClientSession(timeout=TIMEOUT) as http:
            async with http.get(url) as response:
                first = [f async for f in read_frames(response, limit=3)]  # retry + two events
            seen = first[-1].id
            assert seen is not None
            async with http.get(url, headers={"Last-Event-ID": str(seen)}) as response:
                rest = [f async for f in read_frames(response)]
    events = [f for f in rest if f.id is not None]
    assert events[-1].event == "completed"
    assert all(f.id is not None and f.id > seen for f in events)  # nothing the page already had
    assert len({f.id for f in events}) == len(events)


@pytest.mark.evolink_sandbox(time_scale=0.02)
async def test_a_resume_after_the_end_gets_nothing_again(evolink_sandbox: Sandbox, serve_aiohttp: Any) -> None:
    async with client_for(evolink_sandbox) as client, ProgressRelay(client, secret=SECRET) as relay:
        base = await serve_aiohttp(relay)
        task = await client.images.submit(edit())
        url = f"{base}/{task.id}?token={relay.token_for(task)}"
        async with aiohttp.ClientSession(timeout=TIMEOUT) as http:
            async with http.get(url) as response:
                frames = [f async for f in read_frames(response)]
            last = frames[-1]
            assert last.event == "completed"
            async with http.get(url, headers={"Last-Event-ID": str(last.id)}) as response:
                again = [f async for f in read_frames(response)]
    assert [f.event for f in again if f.id is not None] == []  # the stream just ends


async def test_an_unknown_task_is_an_error_event_not_an_exception(
    evolink_sandbox: Sandbox, serve: Callable[[ProgressRelay], Any]
) -> None:
    async with client_for(evolink_sandbox) as client, ProgressRelay(client, secret=SECRET) as relay:
        base = await serve(relay)
        missing = "task-unified-1700000000-nosuchtask"
        url = f"{base}/{missing}?token={relay.token_for(missing)}"
        async with aiohttp.ClientSession(timeout=TIMEOUT) as http, http.get(url) as response:
            assert response.status == 200
            frames = [f async for f in read_frames(response)]
        events = [f for f in frames if f.event is not None]
        assert [f.event for f in events] == ["error"]
        assert events[0].data["reason"] == "not_found"
        assert events[0].data["task_id"] == missing
        assert evolink_sandbox.api_key not in json.dumps(events[0].data)
        # The relay keeps serving other tasks.
        task = await client.images.submit(edit())
        async with aiohttp.ClientSession(timeout=TIMEOUT) as http:
            async with http.get(f"{base}/{task.id}?token={relay.token_for(task)}") as response:
                assert [f async for f in read_frames(response)][-1].event == "completed"


@pytest.mark.evolink_sandbox(time_scale=0.05)
async def test_two_hundred_viewers_of_one_task_cost_one_watch(evolink_sandbox: Sandbox, serve_aiohttp: Any) -> None:
    viewers = 200
    async with client_for(evolink_sandbox) as client, ProgressRelay(client, secret=SECRET) as relay:
        base = await serve_aiohttp(relay)
        task = await client.images.submit(edit())
        url = f"{base}/{task.id}?token={relay.token_for(task)}"
        most_watched = 0
        connected = 0

        async def view(http: aiohttp.ClientSession) -> list[str | None]:
            nonlocal most_watched, connected
            async with http.get(url) as response:
                assert response.status == 200
                connected += 1
                kinds = []
                async for frame in read_frames(response):
                    most_watched = max(most_watched, client.tracker.watched, relay.watching)
                    kinds.append(frame.event)
                return kinds

        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(timeout=TIMEOUT, connector=connector) as http:
            results = await asyncio.gather(*(view(http) for _ in range(viewers)))
    assert connected == viewers
    assert all(kinds[-1] == "completed" for kinds in results)
    assert most_watched == 1
    # One watch's queries, not 200 watches' (a single stream at this cadence makes a few dozen).
    assert evolink_sandbox.ledger.requests["GET /v1/tasks/{task_id}"] < 100


def test_bad_relay_arguments_are_validation_errors() -> None:
    class NoTasks:
        pass

    with pytest.raises(evolink.ValidationError, match="client"):
        ProgressRelay(NoTasks())  # type: ignore[arg-type]
    client = evolink.EvolinkClient("sk-evo-TESTKEY0123456789abcdef", base_url="http://127.0.0.1:9")
    for name, value in [
        ("heartbeat", float("nan")),
        ("heartbeat", 0),
        ("retry", float("inf")),
        ("min_gap", -1.0),
        ("linger", "soon"),
        ("max_viewers", 0),
        ("max_viewers", True),
        ("secret", "short"),
        ("secret", 12345),
    ]:
        with pytest.raises(evolink.ValidationError) as caught:
            ProgressRelay(client, **{name: value})
        assert caught.value.field == name
    relay = ProgressRelay(client, secret=SECRET)
    for ttl in [0, -5, float("nan"), float("inf"), 10**9, "600", True]:
        with pytest.raises(evolink.ValidationError) as caught:
            relay.token_for("task-unified-1", ttl=ttl)  # type: ignore[arg-type]
        assert caught.value.field == "ttl"
    with pytest.raises(evolink.ValidationError):
        relay.token_for("", ttl=60)
    assert SECRET not in repr(relay)
    assert SECRET not in repr(relay._signer)
