"""The task endpoints against the shapes of API.md A1, A3 and A4."""

from __future__ import annotations

import re
from typing import Any

import pytest

from evolink_async.sandbox import Sandbox
from evolink_async.sandbox._png import decode

from .conftest import REMOTE_IMAGE, FakeClock, qwen, retexture

TASK_ID = re.compile(r"^task-unified-\d{10}-[a-z0-9]{8}$")


async def test_submit_answers_the_a1_shape(evolink_sandbox_factory: Any, api_for: Any) -> None:
    sandbox = await evolink_sandbox_factory(time_scale=1.0)
    status, headers, body = await api_for(sandbox).submit(retexture(model_params={"speed": "fast"}))
    assert status == 200
    assert headers["x-request-id"]
    assert TASK_ID.match(body["id"])
    assert body == {
        "created": body["created"],
        "id": body["id"],
        "model": "mj-v7-retexture",
        "object": "image.generation.task",
        "progress": 0,
        "status": "pending",
        "task_info": {"can_cancel": True, "estimated_time": 45},
        "type": "image",
        "usage": {"billing_rule": "per_call", "credits_reserved": 1.8, "user_group": "default"},
    }
    assert isinstance(body["created"], int)


@pytest.mark.parametrize(
    ("body", "estimated", "credits"),
    [
        (retexture(model_params={"speed": "turbo"}), 45, 3.6),
        ({"model": "mj-v7-remove-bg", "image_urls": [REMOTE_IMAGE]}, 30, 1.8),
        (qwen(), 30, 1.0),
        ({"model": "gpt-image-1.5", "prompt": "a lighthouse", "size": "1024x1024"}, 20, 1.0),
    ],
)
async def test_per_model_estimates_and_costs(
    evolink_sandbox_factory: Any, api_for: Any, body: dict[str, Any], estimated: int, credits: float
) -> None:
    sandbox = await evolink_sandbox_factory(time_scale=1.0)
    status, _, answer = await api_for(sandbox).submit(body)
    assert status == 200
    assert answer["task_info"]["estimated_time"] == estimated
    assert answer["usage"]["credits_reserved"] == credits


async def test_estimated_time_is_scaled_as_a_float(evolink_sandbox_factory: Any, api_for: Any) -> None:
    sandbox = await evolink_sandbox_factory(time_scale=0.01)
    _, _, body = await api_for(sandbox).submit(retexture())
    assert body["task_info"]["estimated_time"] == pytest.approx(0.45)


async def test_lifecycle_pending_processing_completed(clock: FakeClock, api_for: Any) -> None:
    # Fixed duration: 45 s at scale 1, the first 15 % pending.
    async with Sandbox(clock=clock, duration_spread=(1.0, 1.0), seed=1) as sandbox:
        api = api_for(sandbox)
        _, _, body = await api.submit(retexture())
        task_id = body["id"]
        seen: list[tuple[str, int]] = []
        for _ in range(12):
            _, _, task = await api.task(task_id)
            seen.append((task["status"], task["progress"]))
            clock.advance(4.5)
        statuses = [s for s, _ in seen]
        assert statuses[0] == "pending"
        assert "processing" in statuses
        assert statuses[-1] == "completed"
        progress = [p for s, p in seen if s == "processing"]
        assert progress == sorted(progress)
        assert len(set(progress)) == len(progress)
        assert all(isinstance(p, int) and 1 <= p <= 99 for p in progress)
        status, headers, done = await api.task(task_id)
        assert status == 200
        assert headers["x-request-id"]
        assert done == {
            "created": body["created"],
            "id": task_id,
            "model": "mj-v7-retexture",
            "object": "image.generation.task",
            "progress": 100,
            "results": [f"{sandbox.base_url}/files/results/{task_id}/0.png"],
            "result_data": [{"image_url": f"{sandbox.base_url}/files/results/{task_id}/0.png"}],
            "status": "completed",
            "task_info": {"can_cancel": False},
            "type": "image",
            "usage": {"billing_rule": "per_call", "credits_reserved": 1.8, "user_group": "default"},
        }


async def test_timeline_tells_when_a_task_starts_and_finishes(clock: FakeClock, api_for: Any) -> None:
    async with Sandbox(clock=clock, duration_spread=(1.0, 1.0), seed=1) as sandbox:
        api = api_for(sandbox)
        _, _, body = await api.submit(retexture())  # 45 s, the first 15 % pending
        planned = sandbox.timeline(body["id"])
        assert planned is not None
        assert (planned.submitted, planned.outcome) == (1000.0, "completed")
        assert planned.started == pytest.approx(1000.0 + 45 * 0.15)
        assert planned.finishes == pytest.approx(1045.0)
        clock.now = planned.finishes - 0.01
        assert (await api.task(body["id"]))[2]["status"] == "processing"
        clock.now = planned.finishes
        assert (await api.task(body["id"]))[2]["status"] == "completed"
        assert sandbox.timeline("task-unified-0000000000-unknown1") is None


async def test_completes_in_scaled_time(clock: FakeClock, api_for: Any) -> None:
    # On the sandbox's own clock, so a busy machine cannot finish the task before the first look.
    async with Sandbox(clock=clock, time_scale=0.002, duration_spread=(1.0, 1.0)) as sandbox:
        api = api_for(sandbox)
        _, _, body = await api.submit(retexture())  # 45 s -> 0.09 s
        clock.advance(0.089)
        _, _, task = await api.task(body["id"])
        assert task["status"] in ("pending", "processing")
        clock.advance(0.002)  # just past 0.09 s
        _, _, task = await api.task(body["id"])
        assert task["status"] == "completed"


async def test_result_is_a_png_served_until_it_expires(clock: FakeClock, api_for: Any) -> None:
    async with Sandbox(clock=clock, time_scale=0.5, duration_spread=(1.0, 1.0)) as sandbox:
        api = api_for(sandbox)
        _, _, body = await api.submit(qwen(n=2))
        early, _ = await api.download(f"{sandbox.base_url}/files/results/{body['id']}/0.png")
        assert early == 404  # not completed yet
        clock.advance(15.0)  # 30 s * 0.5
        _, _, task = await api.task(body["id"])
        assert len(task["results"]) == 2
        images = []
        for url in task["results"]:
            status, data = await api.download(url)
            assert status == 200
            image = decode(data)
            assert image is not None
            assert image.width > 0
            images.append(data)
        assert images[0] != images[1]
        again = await api.download(task["results"][0])
        assert again == (200, images[0])  # deterministic bytes
        clock.advance(24 * 3600 * 0.5 - 1)
        assert (await api.download(task["results"][0]))[0] == 200
        clock.advance(1)
        status, _ = await api.download(task["results"][0])
        assert status == 404
        _, _, task = await api.task(body["id"])
        assert task["status"] == "completed"  # the task stays; only its links expire


async def test_invalid_and_unknown_task_ids(evolink_sandbox: Sandbox, api_for: Any) -> None:
    api = api_for(evolink_sandbox)
    status, headers, body = await api.task("abc123")
    assert status == 400
    assert headers["x-request-id"]
    assert body == {
        "error": {
            "code": "invalid_task_id",
            "message": "Invalid task ID format, must start with 'task-unified-'",
            "type": "invalid_request_error",
            "param": "task_id",
        }
    }
    status, _, body = await api.task("task-unified-1757165031-nothere1")
    assert status == 404
    assert body["error"]["type"] == "not_found_error"


async def test_tasks_are_private_to_their_key(evolink_sandbox_factory: Any, api_for: Any) -> None:
    sandbox = await evolink_sandbox_factory(extra_api_keys=["sk-evo-other"])
    _, _, body = await api_for(sandbox).submit(retexture())
    status, _, _ = await api_for(sandbox, "sk-evo-other").task(body["id"])
    assert status == 404


async def test_wrong_key_is_401(evolink_sandbox: Sandbox, api_for: Any, http: Any) -> None:
    api = api_for(evolink_sandbox, "sk-evo-wrong")
    for status, headers, body in (await api.submit(retexture()), await api.task("task-unified-1-abcdefgh")):
        assert status == 401
        assert headers["x-request-id"]
        assert body["error"]["type"] == "authentication_error"
    async with http.get(evolink_sandbox.base_url + "/v1/tasks/task-unified-1-abcdefgh") as response:
        assert response.status == 401  # no Authorization header at all
    assert evolink_sandbox.ledger.billed == []


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "mj-v7-retexture", "image_urls": [REMOTE_IMAGE]}, "prompt"),
        (retexture(image_urls=[REMOTE_IMAGE, REMOTE_IMAGE]), "image_urls"),
        (retexture(model_params={"speed": "draft"}), "speed"),
        ({"model": "mj-v7-remove-bg", "prompt": "x", "image_urls": [REMOTE_IMAGE]}, "prompt"),
        ({"model": "mj-v7-remove-bg", "image_urls": ["https://example.com/a.tiff"]}, "image_urls[0]"),
        (qwen(prompt="x" * 1001), "prompt"),
        (qwen(image_urls=[REMOTE_IMAGE] * 4), "image_urls"),
        (qwen(image_urls=["ftp://example.com/a.png"]), "image_urls[0]"),
        (qwen(callback_url="http://example.com/hook"), "callback_url"),
        ({"prompt": "no model"}, "model"),
    ],
)
async def test_validation_errors_are_400_with_param(
    evolink_sandbox: Sandbox, api_for: Any, body: dict[str, Any], param: str
) -> None:
    status, headers, answer = await api_for(evolink_sandbox).submit(body)
    assert status == 400
    assert headers["x-request-id"]
    assert answer["error"]["type"] == "invalid_request_error"
    assert answer["error"]["code"] == "invalid_parameters"
    assert answer["error"]["param"] == param
    assert answer["error"]["message"]
    assert evolink_sandbox.ledger.billed == []


async def test_non_json_body_and_unknown_route(evolink_sandbox: Sandbox, api_for: Any, http: Any) -> None:
    api = api_for(evolink_sandbox)
    async with http.post(
        evolink_sandbox.base_url + "/v1/images/generations", data=b"{nope", headers=api.headers()
    ) as r:
        assert r.status == 400
        assert (await r.json())["error"]["type"] == "invalid_request_error"
    async with http.get(evolink_sandbox.base_url + "/v1/nothing", headers=api.headers()) as r:
        assert r.status == 404
        assert r.headers["x-request-id"]
        assert (await r.json())["error"]["type"] == "not_found_error"


async def test_loopback_http_callback_is_accepted_only_in_the_sandbox(evolink_sandbox: Sandbox, api_for: Any) -> None:
    status, _, _ = await api_for(evolink_sandbox).submit(qwen(callback_url="http://127.0.0.1:9/hook"))
    assert status == 200
