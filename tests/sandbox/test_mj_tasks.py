"""MJ task endpoints: fetch and its quirks, list-by-condition, list, cancel, failures, timeouts."""

from __future__ import annotations

from typing import Any

import pytest

from evolink_async.sandbox import Faults, MidjourneyOptions, Sandbox

from .conftest import FakeClock

SCALE = {"time_scale": 0.01, "seed": 5}


async def test_lifecycle_in_order(mj_for: Any, clock: FakeClock) -> None:
    async with Sandbox(time_scale=1.0, seed=1, clock=clock) as sandbox:
        mj = mj_for(sandbox)
        task_id = await mj.imagine("a boat", notifyHook="https://example.com/hook")
        first = await mj.fetch(task_id)
        assert (first["status"], first["progress"], first["startTime"], first["imageUrl"]) == (
            "NOT_START",
            None,
            None,
            None,
        )
        assert first["properties"]["notifyHook"] == "https://example.com/hook"
        assert first["buttons"] == []
        seen = []
        for _ in range(200):
            task = await mj.fetch(task_id)
            seen.append((task["status"], task["progress"]))
            if task["status"] == "IN_PROGRESS":
                assert task["imageUrl"].endswith("/preview.png")
                assert task["startTime"] >= task["submitTime"]
            if task["status"] == "SUCCESS":
                break
            clock.advance(1.0)
        statuses = [s for s, _ in dict.fromkeys(seen)]
        assert [s for i, s in enumerate(statuses) if i == 0 or statuses[i - 1] != s] == [
            "NOT_START", "SUBMITTED", "IN_PROGRESS", "SUCCESS"]  # fmt: skip
        assert ("SUBMITTED", "0%") in seen
        assert seen[-1] == ("SUCCESS", "100%")
        percents = [int(p[:-1]) for s, p in seen if s == "IN_PROGRESS"]
        assert percents == sorted(percents)
        assert all(0 < p < 100 for p in percents)
        assert task["finishTime"] >= task["startTime"]
        assert task["imageUrl"].endswith("/result.png")
        assert task["properties"]["finalPrompt"] == "a boat"


@pytest.mark.parametrize(("quirk", "status"), [("empty", 200), ("no_content", 204), ("not_found", 404)])
async def test_unknown_fetch_quirks(mj_for: Any, quirk: str, status: int) -> None:
    async with Sandbox(**SCALE, midjourney=MidjourneyOptions(unknown_fetch=quirk)) as sandbox:  # type: ignore[arg-type]
        answer, _body, raw = await mj_for(sandbox).call("GET", "/task/1748339029401828/fetch")
        assert (answer, raw) == (status, b"")


async def test_list_by_condition_is_a_bare_array_without_unknown_ids(mj_for: Any) -> None:
    async with Sandbox(**SCALE) as sandbox:
        mj = mj_for(sandbox)
        ids = [await mj.imagine(f"p{i}") for i in range(3)]
        status, body, _ = await mj.call("POST", "/task/list-by-condition", {"ids": [ids[2], "404", ids[0]]})
        assert status == 200
        assert isinstance(body, list)
        assert {t["id"] for t in body} == {ids[0], ids[2]}
        assert (await mj.call("POST", "/task/list-by-condition", {"ids": []}))[1] == []
        assert (await mj.call("POST", "/task/list-by-condition", {}))[1] == []
        status, listed, _ = await mj.call("GET", "/task/list")
        assert [t["id"] for t in listed] == ids[::-1]
        await mj.fetch(ids[0])
        requests = sandbox.ledger.requests
        assert requests["POST /mj/task/list-by-condition"] == 3
        assert requests["GET /mj/task/{task_id}/fetch"] == 1
        assert requests["GET /mj/task/list"] == 1


async def test_list_limit(mj_for: Any) -> None:
    async with Sandbox(**SCALE, midjourney=MidjourneyOptions(list_limit=2)) as sandbox:
        mj = mj_for(sandbox)
        ids = [await mj.imagine(f"p{i}") for i in range(3)]
        assert [t["id"] for t in (await mj.call("GET", "/task/list"))[1]] == ids[:0:-1]


async def test_list_by_condition_and_cancel_can_be_switched_off(mj_for: Any) -> None:
    async with Sandbox(**SCALE, midjourney=MidjourneyOptions(list_by_condition=False, cancel=False)) as sandbox:
        mj = mj_for(sandbox)
        task_id = await mj.imagine()
        assert (await mj.call("POST", "/task/list-by-condition", {"ids": [task_id]}))[0] == 404
        assert (await mj.call("POST", f"/task/{task_id}/cancel"))[0] == 404
        assert (await mj.fetch(task_id))["id"] == task_id


async def test_cancel_fails_the_task_trueai_style(mj_for: Any) -> None:
    async with Sandbox(**SCALE) as sandbox:
        mj = mj_for(sandbox)
        task_id = await mj.imagine()
        assert (await mj.call("POST", f"/task/{task_id}/cancel"))[0:3:2] == (200, b"")
        task = await mj.fetch(task_id)
        assert (task["status"], task["failReason"], task["progress"]) == ("FAILURE", "取消任务", "")
        assert task["finishTime"] is not None
        assert (await mj.call("POST", "/task/0/cancel"))[0:3:2] == (200, b"")  # unknown: 200, empty
        done = await mj.wait(await mj.imagine())
        await mj.call("POST", f"/task/{done['id']}/cancel")
        assert (await mj.fetch(done["id"]))["status"] == "SUCCESS"  # finished tasks stay as they are


async def test_failure_spelling_and_progress_quirks(mj_for: Any) -> None:
    options = MidjourneyOptions(failure_status="FAILED", failure_progress="100%")
    async with Sandbox(**SCALE, faults=Faults(task_failure_rate=1.0), midjourney=options) as sandbox:
        mj = mj_for(sandbox)
        task = await mj.wait(await mj.imagine())
        assert (task["status"], task["progress"]) == ("FAILED", "100%")
        assert task["failReason"]
        assert task["buttons"] == []


async def test_default_failure_is_failure_with_empty_progress(mj_for: Any) -> None:
    async with Sandbox(**SCALE, faults=Faults(task_failure_rate=1.0)) as sandbox:
        task = await mj_for(sandbox).wait(await mj_for(sandbox).imagine())
        assert (task["status"], task["progress"]) == ("FAILURE", "")


async def test_stuck_task_stalls_at_85_to_93_then_times_out(mj_for: Any, clock: FakeClock) -> None:
    async with Sandbox(time_scale=1.0, seed=2, clock=clock, faults=Faults(stuck_rate=1.0)) as sandbox:
        mj = mj_for(sandbox)
        task_id = await mj.imagine()
        clock.advance(200)
        stalled = await mj.fetch(task_id)
        assert stalled["status"] == "IN_PROGRESS"
        assert 85 <= int(stalled["progress"][:-1]) <= 93
        clock.advance(60)
        assert (await mj.fetch(task_id))["progress"] == stalled["progress"]
        clock.advance(300)
        failed = await mj.fetch(task_id)
        assert (failed["status"], failed["failReason"]) == ("FAILURE", "任务超时")


async def test_blank_status_before_the_first_upstream_poll(mj_for: Any, clock: FakeClock) -> None:
    async with Sandbox(time_scale=1.0, clock=clock, midjourney=MidjourneyOptions(blank_status_for=15)) as sandbox:
        mj = mj_for(sandbox)
        task_id = await mj.imagine()
        clock.advance(10)
        assert (await mj.fetch(task_id))["status"] == ""
        clock.advance(10)
        assert (await mj.fetch(task_id))["status"] in ("SUBMITTED", "IN_PROGRESS")


async def test_image_seed(mj_for: Any) -> None:
    async with Sandbox(**SCALE) as sandbox:
        mj = mj_for(sandbox)
        assert (await mj.call("GET", "/task/1/image-seed"))[0] == 404
        task_id = await mj.imagine()
        assert (await mj.call("GET", f"/task/{task_id}/image-seed"))[0] == 400
        await mj.wait(task_id)
        status, body, _ = await mj.call("GET", f"/task/{task_id}/image-seed")
        assert status == 200
        assert body["code"] == 1
        assert body["result"].isdigit()


async def test_mj_task_accessor_and_prefix(mj_for: Any) -> None:
    async with Sandbox(**SCALE, midjourney=MidjourneyOptions(prefix="/v1/mj")) as sandbox:
        assert sandbox.mj_base_url == sandbox.base_url + "/v1"
        assert sandbox.mj_url == sandbox.base_url + "/v1/mj"
        mj = mj_for(sandbox)
        task_id = await mj.imagine()
        snapshot = sandbox.mj_task(task_id)
        assert snapshot is not None
        assert snapshot["id"] == task_id
        assert sandbox.mj_task("0") is None
        assert sandbox.ledger.requests["POST /v1/mj/submit/imagine"] == 1


async def test_mj_routes_can_be_disabled(http: Any) -> None:
    async with Sandbox(**SCALE, midjourney=MidjourneyOptions(enabled=False)) as sandbox:
        async with http.post(sandbox.base_url + "/mj/submit/imagine", json={"prompt": "x"}) as response:
            assert response.status == 404
