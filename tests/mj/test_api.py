"""Exact request and response shapes of the Midjourney-proxy protocol (aioresponses)."""

from __future__ import annotations

import asyncio
import base64
import logging
from pathlib import Path
from typing import Any

import pytest
from aioresponses import aioresponses
from yarl import URL

import evolink_async as evolink
from evolink_async import (
    AuthenticationError,
    BannedPromptError,
    Imagine,
    MidjourneyClient,
    MidjourneyError,
    NotFoundError,
    QueueFullError,
    Task,
    TaskStatus,
    UnsupportedOperationError,
)
from evolink_async._protocols.midjourney.tasks import structure_mj_task
from tests.conftest import wire_headers
from tests.helpers.images import png_bytes

from .conftest import MJ, MJ_BASE, MJ_KEY


def calls(mock_http: aioresponses, method: str, url: str) -> list[Any]:
    return list(mock_http.requests.get((method, URL(url)), []))


def submit_result(code: int, result: Any = "1712345678901123", description: str = "提交成功", **props: Any) -> dict[str, Any]:
    return {"code": code, "description": description, "properties": props, "result": result}


async def test_imagine_wire_shape(mock_http: aioresponses, mj: MidjourneyClient, tmp_path: Path) -> None:
    mock_http.post(MJ + "submit/imagine", payload=submit_result(1, 1712345678901123))
    ref = tmp_path / "ref.png"
    ref.write_bytes(png_bytes(8, 8))
    task = await mj.submit(Imagine(prompt="a red fox", images=[ref]), idempotency_key="evo-key-0123456789abcdef")
    assert task.id == "1712345678901123"
    assert task.status is TaskStatus.PENDING
    assert task.midjourney is not None
    assert task.midjourney.state == "evo-key-0123456789abcdef"
    (call,) = calls(mock_http, "POST", MJ + "submit/imagine")
    body = call.kwargs["json"]
    assert body["prompt"] == "a red fox"
    assert body["botType"] == "MID_JOURNEY"
    assert body["state"] == "evo-key-0123456789abcdef"
    (image,) = body["base64Array"]
    assert image.startswith("data:image/png;base64,")
    assert base64.b64decode(image.split(",", 1)[1]) == png_bytes(8, 8)
    assert (await wire_headers(call, MJ + "submit/imagine"))["Authorization"] == f"Bearer {MJ_KEY}"
    assert "Idempotency-Key" not in call.kwargs["headers"]


async def test_caller_state_is_kept(mock_http: aioresponses, mj: MidjourneyClient) -> None:
    mock_http.post(MJ + "submit/imagine", payload=submit_result(22, description="排队中, 前面还有1个任务"))
    task = await mj.submit(Imagine(prompt="p", state="order-17", notify_hook="https://hook.test/x"))
    assert task.status is TaskStatus.PENDING
    body = calls(mock_http, "POST", MJ + "submit/imagine")[0].kwargs["json"]
    assert body["state"] == "order-17"
    assert body["notifyHook"] == "https://hook.test/x"


async def test_mj_api_secret_header_and_prefix(mock_http: aioresponses) -> None:
    url = f"{MJ_BASE}/mj-fast/mj/submit/shorten"
    mock_http.post(url, payload=submit_result(1))
    async with MidjourneyClient(MJ_KEY, base_url=MJ_BASE, path_prefix="mj-fast/mj/", auth="mj-api-secret") as mj:
        await mj.submit(evolink.Shorten(prompt="long"))
    headers = await wire_headers(calls(mock_http, "POST", url)[0], url)
    assert headers["mj-api-secret"] == MJ_KEY
    assert "Authorization" not in headers


async def test_no_key_sends_no_auth(mock_http: aioresponses, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MJ_PROXY_BASE_URL", MJ_BASE)
    monkeypatch.delenv("MJ_PROXY_API_KEY", raising=False)
    with pytest.raises(evolink.MissingAPIKeyError):
        MidjourneyClient()
    mock_http.post(MJ + "submit/shorten", payload=submit_result(1))
    async with MidjourneyClient("") as mj:
        await mj.submit(evolink.Shorten(prompt="long"))
    headers = await wire_headers(calls(mock_http, "POST", MJ + "submit/shorten")[0], MJ + "submit/shorten")
    assert "Authorization" not in headers
    assert "mj-api-secret" not in headers
    with pytest.raises(evolink.ValidationError):
        MidjourneyClient("k", base_url="mj.test")


@pytest.mark.parametrize("result", [1712345678901123, "1712345678901123", ["1712345678901123"], "1712345678901123,9"])
async def test_result_id_shapes(mock_http: aioresponses, mj: MidjourneyClient, result: Any) -> None:
    mock_http.post(MJ + "submit/imagine", payload=submit_result(1, result))
    assert (await mj.submit(Imagine(prompt="p"))).id == "1712345678901123"


async def test_code_21_is_a_modal_task(mock_http: aioresponses, mj: MidjourneyClient) -> None:
    mock_http.post(MJ + "submit/action", payload=submit_result(21, "77", "Waiting for window confirm", remix=True))
    task = await mj.submit(evolink.Action(task="5", custom_id="MJ::CustomZoom::1::h"))
    assert task.id == "77"
    assert task.status is TaskStatus.MODAL
    with pytest.raises(evolink.TaskNeedsModalError, match="Modal"):
        await mj.tasks.wait(task, timeout=5)


async def test_code_21_existing_task_keeps_its_status(mock_http: aioresponses, mj: MidjourneyClient) -> None:
    mock_http.post(MJ + "submit/imagine", payload=submit_result(21, "88", "任务已存在", status="IN_PROGRESS"))
    assert (await mj.submit(Imagine(prompt="p"))).status is TaskStatus.PROCESSING


@pytest.mark.parametrize("code", [23, 9])
async def test_queue_full_is_retried(mock_http: aioresponses, mj: MidjourneyClient, code: int) -> None:
    mock_http.post(MJ + "submit/imagine", payload=submit_result(code, None, "提交失败, 队列已满, 请稍后重试"))
    mock_http.post(MJ + "submit/imagine", payload=submit_result(1, "5"))
    assert (await mj.submit(Imagine(prompt="p"))).id == "5"
    assert len(calls(mock_http, "POST", MJ + "submit/imagine")) == 2


async def test_queue_full_after_every_retry(mock_http: aioresponses, mj: MidjourneyClient) -> None:
    mock_http.post(MJ + "submit/imagine", payload=submit_result(23, None, "队列已满, 请稍后尝试"), repeat=True)
    with pytest.raises(QueueFullError) as info:
        await mj.submit(Imagine(prompt="p"))
    assert info.value.code == 23
    assert len(calls(mock_http, "POST", MJ + "submit/imagine")) == 4  # 1 + max_retries


async def test_http_429_is_retried(mock_http: aioresponses, mj: MidjourneyClient) -> None:
    mock_http.post(MJ + "submit/imagine", status=429, payload={"code": 30, "description": "rate limited"})
    mock_http.post(MJ + "submit/imagine", payload=submit_result(1, "6"))
    assert (await mj.submit(Imagine(prompt="p"))).id == "6"


async def test_banned_prompt(mock_http: aioresponses, mj: MidjourneyClient) -> None:
    mock_http.post(MJ + "submit/imagine", payload=submit_result(24, None, "可能包含敏感词", promptEn="nude", bannedWord="nude"))
    with pytest.raises(BannedPromptError) as info:
        await mj.submit(Imagine(prompt="nude"))
    assert info.value.banned_word == "nude"
    assert info.value.code == 24
    assert len(calls(mock_http, "POST", MJ + "submit/imagine")) == 1


@pytest.mark.parametrize(
    ("status", "body", "code"),
    [
        (200, submit_result(3, None, "关联任务不存在或已失效"), 3),
        (200, submit_result(4, None, "prompt不能为空"), 4),
        (200, submit_result(9, None, "提交失败, 系统异常"), 9),
        (200, submit_result(42, None, "something new"), 42),
        (200, {"success": False, "code": -1, "message": "并发数已达上限", "timestamp": "1"}, -1),
        (404, submit_result(3, None, "关联任务不存在或已失效"), 3),
        (400, {"description": "task_status_not_success ", "type": "upstream_error", "code": 4}, 4),
    ],
)
async def test_error_codes(mock_http: aioresponses, mj: MidjourneyClient, status: int, body: Any, code: int) -> None:
    mock_http.post(MJ + "submit/action", status=status, payload=body)
    with pytest.raises(MidjourneyError) as info:
        await mj.submit(evolink.Action(task="5", custom_id="MJ::JOB::upsample::1::h"))
    assert info.value.code == code
    assert info.value.description
    assert type(info.value) is MidjourneyError
    assert len(calls(mock_http, "POST", MJ + "submit/action")) == 1


async def test_missing_submit_endpoint(mock_http: aioresponses, mj: MidjourneyClient) -> None:
    mock_http.post(MJ + "submit/action", status=404, body="")
    with pytest.raises(UnsupportedOperationError):
        await mj.submit(evolink.Action(task="5", custom_id="MJ::JOB::upsample::1::h"))


@pytest.mark.parametrize("body", ["", "Authorization header missing."])
async def test_wrong_key(mock_http: aioresponses, mj: MidjourneyClient, body: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="evolink_async")
    mock_http.post(MJ + "submit/imagine", status=401, body=body)
    with pytest.raises(AuthenticationError) as info:
        await mj.submit(Imagine(prompt="p"))
    assert MJ_KEY not in str(info.value)
    assert MJ_KEY not in repr(info.value)
    assert MJ_KEY not in caplog.text


def test_key_never_in_reprs() -> None:
    mj = MidjourneyClient(MJ_KEY, base_url=MJ_BASE, auth="mj-api-secret")
    for text in (repr(mj), str(mj), repr(mj.config), str(mj.config.api_key), repr(mj.tasks), repr(mj.tracker)):
        assert MJ_KEY not in text
    with pytest.raises(TypeError):
        __import__("pickle").dumps(mj)


@pytest.mark.parametrize(
    ("status", "kwargs"),
    [(200, {"body": ""}), (204, {"body": ""}), (200, {"body": "null"}), (404, {"body": ""}),
     (400, {"payload": {"description": "task_no_found ", "type": "upstream_error", "code": 4}})],
)  # fmt: skip
async def test_fetch_unknown_id(mock_http: aioresponses, mj: MidjourneyClient, status: int, kwargs: Any) -> None:
    mock_http.get(MJ + "task/404/fetch", status=status, **kwargs)
    with pytest.raises(NotFoundError):
        await mj.tasks.get("404")


async def test_fetch(mock_http: aioresponses, mj: MidjourneyClient) -> None:
    mock_http.get(MJ + "task/1/fetch", payload={"id": 1, "status": "IN_PROGRESS", "progress": "31%"})
    task = await mj.tasks.get("1")
    assert (task.id, task.status, task.progress) == ("1", TaskStatus.PROCESSING, 31)


async def test_a_fetch_answered_with_another_task_is_refused(mock_http: aioresponses, mj: MidjourneyClient) -> None:
    mock_http.get(MJ + "task/1/fetch", payload={"id": "2", "status": "SUCCESS", "imageUrl": "https://cdn.example/2.png"})
    with pytest.raises(evolink.ResponseFormatError, match="about another task"):
        await mj.tasks.get("1")


async def test_get_many(mock_http: aioresponses, mj: MidjourneyClient) -> None:
    mock_http.post(MJ + "task/list-by-condition", payload=[{"id": "2", "status": "SUCCESS"}, {"id": 1, "status": ""},
                                                           {"bad": True}])  # fmt: skip
    tasks = await mj.tasks.get_many(["1", "2", "3"])
    assert [t.id for t in tasks] == ["1", "2"]
    assert calls(mock_http, "POST", MJ + "task/list-by-condition")[0].kwargs["json"] == {"ids": ["1", "2", "3"]}


async def test_get_many_without_endpoint(mock_http: aioresponses, mj: MidjourneyClient) -> None:
    mock_http.post(MJ + "task/list-by-condition", status=404)
    mock_http.get(MJ + "task/1/fetch", payload={"id": "1", "status": "SUCCESS"})
    mock_http.get(MJ + "task/2/fetch", status=204)
    assert [t.id for t in await mj.tasks.get_many(["1", "2"])] == ["1"]
    assert mj._api.fetch_many is None  # remembered: not asked again
    mock_http.get(MJ + "task/1/fetch", payload={"id": "1", "status": "SUCCESS"})
    assert [t.id for t in await mj.tasks.get_many(["1"])] == ["1"]
    assert len(calls(mock_http, "POST", MJ + "task/list-by-condition")) == 1


async def test_get_many_is_chunked(mock_http: aioresponses, mj: MidjourneyClient) -> None:
    mock_http.post(MJ + "task/list-by-condition", payload=[], repeat=True)
    await mj.tasks.get_many([str(i) for i in range(120)])
    sizes = [len(c.kwargs["json"]["ids"]) for c in calls(mock_http, "POST", MJ + "task/list-by-condition")]
    assert sizes == [50, 50, 20]


async def test_cancel(mock_http: aioresponses, mj: MidjourneyClient) -> None:
    mock_http.post(MJ + "task/7/cancel", status=200, body="")
    mock_http.get(MJ + "task/7/fetch", payload={"id": "7", "status": "FAILURE", "failReason": "取消任务", "progress": ""})
    assert (await mj.tasks.cancel(Task(id="7", status=TaskStatus.PENDING))).status is TaskStatus.CANCELLED


@pytest.mark.parametrize(("status", "body"), [(404, ""), (405, ""), (400, "演示模式, 禁止操作")])
async def test_cancel_unsupported(mock_http: aioresponses, mj: MidjourneyClient, status: int, body: str) -> None:
    mock_http.post(MJ + "task/7/cancel", status=status, body=body)
    with pytest.raises(UnsupportedOperationError):
        await mj.tasks.cancel("7")


async def test_cancel_remembered_missing(mock_http: aioresponses, mj: MidjourneyClient) -> None:
    mock_http.post(MJ + "task/7/cancel", status=405)
    for _ in range(2):
        with pytest.raises(UnsupportedOperationError):
            await mj.tasks.cancel("7")
    assert len(calls(mock_http, "POST", MJ + "task/7/cancel")) == 1


async def test_action_by_label(mock_http: aioresponses, mj: MidjourneyClient) -> None:
    done = {"id": "1", "status": "SUCCESS", "progress": "100%", "imageUrl": "https://x", "buttons": [
        {"customId": "MJ::JOB::upsample::2::h", "emoji": "", "label": "U2", "type": 2, "style": 2},
        {"customId": "MJ::JOB::reroll::0::h::SOLO", "emoji": "🔄", "label": "", "type": 2, "style": 2}]}  # fmt: skip
    mock_http.get(MJ + "task/1/fetch", payload=done)
    mock_http.post(MJ + "submit/action", payload=submit_result(1, "2"), repeat=True)
    upscaled = await mj.action("1", "U2")
    assert upscaled.id == "2"
    sent = [c.kwargs["json"] for c in calls(mock_http, "POST", MJ + "submit/action")]
    assert sent[0]["taskId"] == "1"
    assert sent[0]["customId"] == "MJ::JOB::upsample::2::h"
    snapshot = structure_mj_task(done)
    await mj.action(snapshot, "🔄")
    await mj.action(snapshot, "MJ::JOB::variation::1::h")
    sent = [c.kwargs["json"]["customId"] for c in calls(mock_http, "POST", MJ + "submit/action")]
    assert sent[1:] == ["MJ::JOB::reroll::0::h::SOLO", "MJ::JOB::variation::1::h"]
    with pytest.raises(evolink.ValidationError, match="U2"):
        await mj.action(snapshot, "V3")


async def test_action_without_buttons_uses_change(mock_http: aioresponses, mj: MidjourneyClient) -> None:
    mock_http.get(MJ + "task/1/fetch", payload={"id": "1", "status": "SUCCESS", "imageUrl": "https://x"})
    mock_http.post(MJ + "submit/change", payload=submit_result(1, "3"))
    assert (await mj.action("1", "V3")).id == "3"
    body = calls(mock_http, "POST", MJ + "submit/change")[0].kwargs["json"]
    assert {k: body[k] for k in ("taskId", "action", "index")} == {"taskId": "1", "action": "VARIATION", "index": 3}
    assert body["state"].startswith("evo-")


async def test_action_needs_a_finished_task(mock_http: aioresponses, mj: MidjourneyClient) -> None:
    mock_http.get(MJ + "task/1/fetch", payload={"id": "1", "status": "IN_PROGRESS", "progress": "100%"})
    with pytest.raises(evolink.ValidationError, match="succeeded"):
        await mj.action("1", "U1")


async def test_download(mock_http: aioresponses, mj: MidjourneyClient, tmp_path: Path) -> None:
    mock_http.get("https://cdn.test/x.png", body=png_bytes(8, 8))
    done = mj.parse_task({"id": 5, "status": "SUCCESS", "imageUrl": "https://cdn.test/x.png"})
    (path,) = await mj.download(done, tmp_path, name="fox")
    assert path.name == "fox.result-0.png"
    assert path.read_bytes() == png_bytes(8, 8)
    assert "Authorization" not in (calls(mock_http, "GET", "https://cdn.test/x.png")[0].kwargs.get("headers") or {})
    with pytest.raises(evolink.ValidationError):
        await mj.download(mj.parse_task({"id": 5, "status": "IN_PROGRESS"}), tmp_path)


async def test_pushed_notify_body_ends_a_wait(mock_http: aioresponses, mj: MidjourneyClient) -> None:
    mock_http.get(MJ + "task/9/fetch", payload={"id": "9", "status": "IN_PROGRESS", "progress": "10%"}, repeat=True)
    pending = mj.parse_task({"id": "9", "status": "SUBMITTED", "progress": "0%"})
    waiter = asyncio.ensure_future(mj.tasks.wait(pending, timeout=10))
    await asyncio.sleep(0.01)
    mj.tracker.push(mj.parse_task({"id": "9", "status": "SUCCESS", "progress": "100%", "imageUrl": "https://x"}))
    done = await asyncio.wait_for(waiter, 5)
    assert done.results == ("https://x",)
