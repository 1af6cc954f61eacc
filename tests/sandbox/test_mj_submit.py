"""MJ submit endpoints: envelopes, codes 1/4/21/22/23/24, actions, changes and modals."""

from __future__ import annotations

import re
from typing import Any

import pytest

from evolink_async.sandbox import MidjourneyOptions, Sandbox
from tests.helpers.mj_sandbox import PNG_DATA_URL

SCALE = {"time_scale": 0.01, "seed": 3}


async def test_imagine_answers_code_1_with_a_numeric_string_id(mj_for: Any) -> None:
    async with Sandbox(**SCALE) as sandbox:
        mj = mj_for(sandbox)
        result = await mj.submit("imagine", {"prompt": "a cat", "state": "order-7", "botType": "MID_JOURNEY"})
        assert result["code"] == 1
        assert result["description"] == "提交成功"
        assert re.fullmatch(r"\d{16}", result["result"])
        assert result["properties"]["discordInstanceId"]
        task = await mj.fetch(result["result"])
        assert task["state"] == "order-7"
        assert task["description"] == "/imagine a cat"
        assert task["status"] in ("NOT_START", "SUBMITTED", "IN_PROGRESS")
        assert [e.task_id for e in sandbox.ledger.mj_tasks] == sandbox.ledger.billed == [result["result"]]
        assert sandbox.ledger.mj_tasks[0].code == 1
        assert sandbox.ledger.mj_tasks[0].endpoint == "imagine"


@pytest.mark.parametrize(
    ("endpoint", "body", "description"),
    [
        ("imagine", {"prompt": "  "}, "prompt不能为空"),
        ("imagine", {"prompt": "x", "base64Array": ["not a data url"]}, "base64格式错误"),
        ("blend", {"base64Array": [PNG_DATA_URL]}, "base64List参数错误"),
        ("blend", {"base64Array": [PNG_DATA_URL] * 2, "dimensions": None}, "dimensions参数错误"),
        ("describe", {}, "base64不能为空"),
        ("shorten", {"prompt": ""}, "prompt不能为空"),
        ("change", {"taskId": "", "action": "UPSCALE", "index": 1}, "taskId不能为空"),
        ("change", {"taskId": "1", "action": "ZOOM", "index": 1}, "action参数错误"),
        ("simple-change", {"content": "123 U9"}, "content参数错误"),
        ("action", {"taskId": "1"}, "参数错误"),
    ],
)
async def test_validation_errors_are_code_4_without_a_task(
    mj_for: Any, endpoint: str, body: dict[str, Any], description: str
) -> None:
    async with Sandbox(**SCALE) as sandbox:
        result = await mj_for(sandbox).submit(endpoint, body)
        assert result == {"code": 4, "description": description, "properties": {}, "result": None}
        assert sandbox.ledger.billed == []
        assert sandbox.ledger.mj_refused[4] == 1


async def test_invalid_json_is_a_spring_400(mj_for: Any) -> None:
    async with Sandbox(**SCALE) as sandbox:
        status, body, _ = await mj_for(sandbox).call("POST", "/submit/imagine", data=b"{nope", headers={
            "mj-api-secret": sandbox.mj_api_key, "Content-Type": "application/json"})  # fmt: skip
        assert status == 400
        assert body["error"] == "Bad Request"


async def test_busy_executor_queues_with_code_22_then_refuses_with_23(mj_for: Any) -> None:
    options = MidjourneyOptions(concurrency=1, queue_size=2)
    async with Sandbox(**SCALE, midjourney=options) as sandbox:
        mj = mj_for(sandbox)
        answers = [await mj.submit("imagine", {"prompt": f"job {i}"}) for i in range(4)]
        assert [a["code"] for a in answers] == [1, 22, 22, 23]
        assert answers[1]["properties"]["numberOfQueues"] == 0
        assert answers[2]["properties"]["numberOfQueues"] == 1
        assert answers[2]["description"] == "排队中\uff0c前面还有1个任务"
        assert answers[3]["result"] is None
        assert answers[3]["description"] == "队列已满\uff0c请稍后尝试"
        assert len(sandbox.ledger.billed) == 3
        assert sandbox.ledger.mj_refused[23] == 1
        assert [e.code for e in sandbox.ledger.mj_tasks] == [1, 22, 22]
        # The queued job runs after the first: it is still NOT_START while the first runs.
        assert (await mj.fetch(answers[2]["result"]))["status"] == "NOT_START"
        assert (await mj.wait(answers[2]["result"]))["status"] == "SUCCESS"
        assert sandbox.ledger.peak_unfinished_by_key[f"mj:{sandbox.mj_api_key}"] == 3


async def test_trueai_queue_full_is_code_9(mj_for: Any) -> None:
    async with Sandbox(
        **SCALE, midjourney=MidjourneyOptions(concurrency=1, queue_size=0, queue_full_code=9)
    ) as sandbox:
        mj = mj_for(sandbox)
        assert (await mj.submit("imagine", {"prompt": "a"}))["code"] == 1
        assert (await mj.submit("imagine", {"prompt": "b"}))["code"] == 9


async def test_banned_word_is_code_24_and_creates_nothing(mj_for: Any) -> None:
    async with Sandbox(**SCALE, midjourney=MidjourneyOptions(banned_words=("Blood",))) as sandbox:
        mj = mj_for(sandbox)
        result = await mj.submit("imagine", {"prompt": "a BLOOD moon"})
        assert result["code"] == 24
        assert result["result"] is None
        assert result["properties"] == {"promptEn": "a BLOOD moon", "bannedWord": "blood"}
        assert (await mj.submit("imagine", {"prompt": "bloodhound"}))["code"] == 1  # whole words only
        assert len(sandbox.ledger.billed) == 1
        assert sandbox.ledger.mj_refused[24] == 1


async def test_banned_word_checked_at_execution_fails_the_task(mj_for: Any) -> None:
    async with Sandbox(**SCALE, midjourney=MidjourneyOptions(banned_check="execute")) as sandbox:
        mj = mj_for(sandbox)
        task_id = await mj.imagine("a nude statue")
        task = await mj.wait(task_id)
        assert task["status"] == "FAILURE"
        assert task["failReason"] == "可能包含敏感词"
        assert task["progress"] == ""


async def test_blend_describe_shorten(mj_for: Any) -> None:
    async with Sandbox(**SCALE) as sandbox:
        mj = mj_for(sandbox)
        blend = await mj.submit("blend", {"base64Array": [PNG_DATA_URL] * 3, "dimensions": "PORTRAIT"})
        describe = await mj.submit("describe", {"base64": PNG_DATA_URL})
        shorten = await mj.submit("shorten", {"prompt": "a very long and winding prompt"})
        done = {name: await mj.wait(r["result"]) for name, r in
                (("blend", blend), ("describe", describe), ("shorten", shorten))}  # fmt: skip
        assert done["blend"]["action"] == "BLEND"
        assert done["blend"]["description"] == f"/blend {blend['result']} 3"
        assert len(done["blend"]["buttons"]) == 9
        assert done["describe"]["properties"]["finalPrompt"].count("\ufe0f\u20e3") == 4
        assert done["describe"]["buttons"][0]["customId"] == "MJ::Job::PicReader::1"
        assert done["shorten"]["imageUrl"] is None
        assert done["shorten"]["description"].startswith("/shorten ")


async def test_action_chain_imagine_then_u2(mj_for: Any) -> None:
    async with Sandbox(**SCALE) as sandbox:
        mj = mj_for(sandbox)
        parent = await mj.wait(await mj.imagine("a lighthouse", state="s1"))
        labels = [b["label"] or b["emoji"] for b in parent["buttons"]]
        assert labels == ["U1", "U2", "U3", "U4", "🔄", "V1", "V2", "V3", "V4"]
        u2 = next(b for b in parent["buttons"] if b["label"] == "U2")
        assert u2["customId"] == f"MJ::JOB::upsample::2::{parent['properties']['messageHash']}"
        assert u2["type"] == 2
        assert u2["style"] == 2
        result = await mj.submit("action", {"taskId": parent["id"], "customId": u2["customId"], "state": "s2"})
        assert result["code"] == 1
        child = await mj.wait(result["result"])
        assert child["action"] == "UPSCALE"
        assert child["status"] == "SUCCESS"
        assert child["state"] == "s2"
        assert child["parentId"] == parent["id"]
        assert any(b["label"] == "Vary (Region)" for b in child["buttons"])
        reroll = next(b for b in parent["buttons"] if b["emoji"] == "🔄")
        again = await mj.submit("action", {"taskId": parent["id"], "customId": reroll["customId"]})
        assert (await mj.fetch(again["result"]))["action"] == "IMAGINE"
        assert [e.endpoint for e in sandbox.ledger.mj_tasks] == ["imagine", "action", "action"]


async def test_action_errors(mj_for: Any) -> None:
    async with Sandbox(**SCALE) as sandbox:
        mj = mj_for(sandbox)
        status, body, _ = await mj.call(
            "POST", "/submit/action", {"taskId": "999", "customId": "MJ::JOB::upsample::1::x"}
        )
        assert status == 404
        assert body["code"] == 3
        assert body["description"] == "关联任务不存在或已失效"
        running = await mj.imagine()
        early = await mj.submit("action", {"taskId": running, "customId": "MJ::JOB::upsample::1::x"})
        assert early["code"] == 4
        assert early["description"] == "关联任务状态错误"
        await mj.wait(running)
        unknown = await mj.submit("action", {"taskId": running, "customId": "MJ::Nope::1"})
        assert unknown["code"] == 4
        assert unknown["description"] == "未知的 Action 类型"
        assert len(sandbox.ledger.billed) == 1


async def test_change_and_simple_change(mj_for: Any) -> None:
    async with Sandbox(**SCALE) as sandbox:
        mj = mj_for(sandbox)
        missing = await mj.submit("change", {"taskId": "42", "action": "UPSCALE", "index": 1})
        assert missing["code"] == 3  # NZ: HTTP 200 with code 3
        parent = await mj.wait(await mj.imagine())
        change = await mj.submit("change", {"taskId": parent["id"], "action": "VARIATION", "index": 3})
        simple = await mj.submit("simple-change", {"content": f"{parent['id']} U4"})
        reroll = await mj.submit("simple-change", {"content": f"{parent['id']} R"})
        tasks = [await mj.fetch(r["result"]) for r in (change, simple, reroll)]
        assert [t["action"] for t in tasks] == ["VARIATION", "UPSCALE", "IMAGINE"]
        assert tasks[1]["description"] == f"/up {parent['id']} U4"
        upscale = await mj.wait(simple["result"])
        refused = await mj.submit("change", {"taskId": upscale["id"], "action": "UPSCALE", "index": 1})
        assert refused == {"code": 4, "description": "关联任务不允许执行变化", "properties": {}, "result": None}


async def test_custom_zoom_is_code_21_then_modal(mj_for: Any) -> None:
    async with Sandbox(**SCALE) as sandbox:
        mj = mj_for(sandbox)
        grid = await mj.wait(await mj.imagine("a tree"))
        upscale = await mj.wait(
            (await mj.submit("action", {"taskId": grid["id"], "customId": grid["buttons"][0]["customId"]}))["result"]
        )
        zoom = next(b for b in upscale["buttons"] if b["label"] == "Custom Zoom")
        result = await mj.submit("action", {"taskId": upscale["id"], "customId": zoom["customId"]})
        assert result["code"] == 21
        assert result["properties"] == {"finalPrompt": "a tree", "remix": True}
        modal = await mj.fetch(result["result"])
        assert modal["status"] == "MODAL"
        assert modal["action"] == "ZOOM"
        status, body, _ = await mj.call("POST", "/submit/modal", {"taskId": "0"})
        assert status == 404
        assert body["code"] == 3
        queued = await mj.submit("modal", {"taskId": result["result"], "prompt": "a tree --zoom 2"})
        assert queued["code"] == 1
        assert queued["result"] == result["result"]
        done = await mj.wait(result["result"])
        assert done["status"] == "SUCCESS"
        assert done["prompt"] == "a tree --zoom 2"
        again = await mj.submit("modal", {"taskId": result["result"]})
        assert again["code"] == 4
        region = next(b for b in upscale["buttons"] if b["label"] == "Vary (Region)")
        assert (await mj.submit("action", {"taskId": upscale["id"], "customId": region["customId"]}))["code"] == 21
        assert [e.code for e in sandbox.ledger.mj_tasks] == [1, 1, 21, 21]


async def test_enable_remix_makes_variations_modal(mj_for: Any) -> None:
    async with Sandbox(**SCALE) as sandbox:
        mj = mj_for(sandbox)
        grid = await mj.wait(await mj.imagine())
        v1 = next(b for b in grid["buttons"] if b["label"] == "V1")
        remix = await mj.submit("action", {"taskId": grid["id"], "customId": v1["customId"], "enableRemix": True})
        plain = await mj.submit("action", {"taskId": grid["id"], "customId": v1["customId"]})
        assert (remix["code"], plain["code"]) == (21, 1)
