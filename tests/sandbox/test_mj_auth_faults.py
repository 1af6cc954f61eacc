"""MJ auth (mj-api-secret / Authorization, 401 bodies) and the shared fault injection and ledger."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from evolink_async.sandbox import Faults, MidjourneyOptions, Sandbox

SCALE = {"time_scale": 0.01, "seed": 9}


@pytest.mark.parametrize(
    ("auth", "headers", "status"),
    [
        ("any", {"mj-api-secret": "K"}, 200),
        ("any", {"Authorization": "Bearer K"}, 200),
        ("any", {"Authorization": "K"}, 200),
        ("any", {"mj-api-secret": "wrong"}, 401),
        ("any", {}, 401),
        ("mj-api-secret", {"Authorization": "Bearer K"}, 401),
        ("bearer", {"mj-api-secret": "K"}, 401),
        ("bearer", {"Authorization": "Bearer K"}, 200),
    ],
)
async def test_auth_modes(mj_for: Any, auth: str, headers: dict[str, str], status: int) -> None:
    options = MidjourneyOptions(api_key="K", auth=auth)  # type: ignore[arg-type]
    async with Sandbox(**SCALE, midjourney=options) as sandbox:
        mj = mj_for(sandbox, headers)
        answer, _, raw = await mj.call("POST", "/submit/imagine", {"prompt": "x"})
        assert answer == status
        if status == 401:
            assert raw == b""
            assert sandbox.ledger.billed == []
        for path, method in (("/task/1/fetch", "GET"), ("/task/list", "GET"), ("/task/list-by-condition", "POST")):
            assert (await mj.call(method, path, {"ids": []}))[0] in ((401,) if status == 401 else (200,))


async def test_default_secret_is_the_sandbox_key_and_trueai_401_text(mj_for: Any) -> None:
    async with Sandbox(**SCALE, api_key="sk-evo-x") as sandbox:
        assert sandbox.mj_api_key == "sk-evo-x"
    options = MidjourneyOptions(unauthorized_body="Authorization header missing.")
    async with Sandbox(**SCALE, midjourney=options) as sandbox:
        status, _, raw = await mj_for(sandbox, {}).call("GET", "/task/1/fetch")
        assert (status, raw) == (401, b"Authorization header missing.")


async def test_server_errors_hit_mj_routes(mj_for: Any) -> None:
    async with Sandbox(**SCALE, faults=Faults(server_error_rate=1.0)) as sandbox:
        mj = mj_for(sandbox)
        status, body, _ = await mj.call("POST", "/submit/imagine", {"prompt": "x"})
        assert status in (500, 502, 503)
        assert body["status"] == status
        assert body["path"] == "/mj/submit/imagine"
        assert (await mj.call("GET", "/task/1/fetch"))[0] >= 500
        assert sandbox.ledger.billed == []
        assert sandbox.ledger.faults["server_error"] == 2


async def test_reset_before_creates_nothing(mj_for: Any) -> None:
    async with Sandbox(**SCALE, faults=Faults(reset_before_rate=1.0)) as sandbox:
        with pytest.raises(aiohttp.ClientError):
            await mj_for(sandbox).call("POST", "/submit/imagine", {"prompt": "x"})
        assert sandbox.ledger.billed == []


async def test_reset_after_creates_the_task_once(mj_for: Any) -> None:
    async with Sandbox(**SCALE, faults=Faults(reset_after_rate=1.0)) as sandbox:
        mj = mj_for(sandbox)
        with pytest.raises(aiohttp.ClientError):
            await mj.call("POST", "/submit/imagine", {"prompt": "x", "state": "only-once"})
        assert len(sandbox.ledger.billed) == 1
        assert sandbox.ledger.faults["reset_after"] == 1
        created = sandbox.mj_task(sandbox.ledger.billed[0])
        assert created is not None
        assert created["state"] == "only-once"


async def test_malformed_and_rate_limited_answers(mj_for: Any) -> None:
    async with Sandbox(**SCALE, faults=Faults(malformed_rate=1.0)) as sandbox:
        status, body, raw = await mj_for(sandbox).call("POST", "/submit/imagine", {"prompt": "x"})
        assert status == 200
        assert body is None
        assert raw.startswith(b"{")
    async with Sandbox(**SCALE, faults=Faults(rate_limit_rate=1.0)) as sandbox:
        status, body, _ = await mj_for(sandbox).call("POST", "/submit/imagine", {"prompt": "x"})
        assert status == 429
        assert body["code"] == 30


async def test_token_bucket_applies_to_mj(mj_for: Any) -> None:
    async with Sandbox(time_scale=1.0, rate_limit=1.0) as sandbox:
        mj = mj_for(sandbox)
        statuses = [(await mj.call("GET", "/task/1/fetch"))[0] for _ in range(3)]
        assert 429 in statuses


async def test_ledger_json_has_mj_entries(mj_for: Any, http: aiohttp.ClientSession) -> None:
    async with Sandbox(**SCALE) as sandbox:
        mj = mj_for(sandbox)
        task_id = await mj.imagine()
        await mj.submit("imagine", {"prompt": ""})
        async with http.get(sandbox.base_url + "/_sandbox/ledger") as response:
            ledger = await response.json()
        assert ledger["billed"] == [task_id]
        assert ledger["mj_tasks"][0]["task_id"] == task_id
        assert ledger["mj_tasks"][0]["action"] == "IMAGINE"
        assert ledger["mj_refused"] == {"4": 1}
        assert ledger["requests"]["POST /mj/submit/imagine"] == 2
