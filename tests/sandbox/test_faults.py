"""Each fault knob does what it says, and only on the two task endpoints."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import anyio
import pytest

from evolink_async.sandbox import FAILURE_CODES, Faults, Sandbox

from .conftest import SUBMIT, FakeClock, qwen, retexture

KEY = "idem-key-0123456789abcdef"


async def test_server_errors_are_500_502_503_with_the_a4_shape(evolink_sandbox_factory: Any, api_for: Any) -> None:
    sandbox = await evolink_sandbox_factory(faults=Faults(server_error_rate=1.0), time_scale=0.01)
    api = api_for(sandbox)
    seen = {}
    for _ in range(30):
        status, headers, body = await api.submit(qwen())
        seen[status] = body["error"]["type"]
        assert headers["x-request-id"]
        if status == 503:
            assert float(headers["Retry-After"]) <= 0.05  # (1-5 s) * 0.01
    assert seen == {500: "internal_server_error", 502: "upstream_error", 503: "service_unavailable_error"}
    assert sandbox.ledger.billed == []
    assert sandbox.ledger.faults["server_error"] == 30
    status, _, _ = await api.task("task-unified-1-abcdefgh")
    assert status >= 500  # queries are hit too


async def test_rate_limit_fault_is_429_with_a_scaled_retry_after(evolink_sandbox_factory: Any, api_for: Any) -> None:
    sandbox = await evolink_sandbox_factory(faults=Faults(rate_limit_rate=1.0, retry_after=(2.0, 2.0)), time_scale=0.01)
    status, headers, body = await api_for(sandbox).submit(qwen())
    assert status == 429
    assert body["error"]["type"] == "rate_limit_error"
    assert headers["Retry-After"] == "0.02"
    assert sandbox.ledger.billed == []


async def test_reset_before_drops_the_connection_and_creates_nothing(
    evolink_sandbox_factory: Any, api_for: Any
) -> None:
    sandbox = await evolink_sandbox_factory(faults=Faults(reset_before_rate=1.0))
    with pytest.raises(aiohttp.ClientConnectionError):
        await api_for(sandbox).submit(qwen(), idempotency_key=KEY)
    assert sandbox.ledger.billed == []
    assert sandbox.ledger.faults["reset_before"] == 1
    assert sandbox.ledger.requests["POST /v1/images/generations"] == 1


async def test_reset_after_bills_the_task_and_a_retry_replays_it(evolink_sandbox_factory: Any, api_for: Any) -> None:
    sandbox = await evolink_sandbox_factory(faults=Faults(reset_after_rate=0.5), seed=3)
    api = api_for(sandbox)
    answers: list[Any] = []
    for _ in range(10):  # the client's retry loop, with one key for one logical submit
        try:
            answers.append(await api.submit(qwen(), idempotency_key=KEY))
        except aiohttp.ClientConnectionError:
            continue
        break
    status, headers, body = answers[-1]
    assert status == 200
    assert sandbox.ledger.faults["reset_after"] >= 1, "seed 3 must reset the first attempt"
    assert headers["idempotency-replayed"] == "true"
    assert sandbox.ledger.billed == [body["id"]]
    # Every attempt after the first was a replay, the dropped ones included.
    assert sandbox.ledger.replays == sandbox.ledger.faults["reset_after"]


async def test_reset_after_without_a_key_pays_twice(evolink_sandbox_factory: Any, api_for: Any) -> None:
    # Why clients must send Idempotency-Key: the emulator charges a blind resubmit again.
    sandbox = await evolink_sandbox_factory(faults=Faults(reset_after_rate=1.0))
    for _ in range(2):
        with pytest.raises(aiohttp.ClientConnectionError):
            await api_for(sandbox).submit(qwen())
    assert len(sandbox.ledger.billed) == 2


async def test_slow_answers_wait_the_scaled_delay(
    evolink_sandbox_factory: Any, api_for: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The delay the sandbox asks for, not a stopwatch: a busy machine only ever makes it longer.
    asked: list[float] = []
    real_sleep = anyio.sleep

    async def recorded_sleep(delay: float) -> None:
        asked.append(delay)
        await real_sleep(delay)

    sandbox = await evolink_sandbox_factory(faults=Faults(slow_rate=1.0, slow_delay=10.0), time_scale=0.02)
    monkeypatch.setattr(anyio, "sleep", recorded_sleep)
    status, _, _ = await api_for(sandbox).submit(qwen())
    assert status == 200
    assert asked == [pytest.approx(0.2)]  # 10 API seconds at time_scale 0.02
    assert sandbox.ledger.faults["slow"] == 1


async def test_a_slow_submit_takes_effect_even_if_the_client_gives_up(
    evolink_sandbox_factory: Any, api_for: Any
) -> None:
    sandbox = await evolink_sandbox_factory(faults=Faults(slow_rate=1.0, slow_delay=50.0), time_scale=0.01)
    submit = asyncio.ensure_future(api_for(sandbox).submit(qwen()))
    # Give up once the sandbox holds the request (its slow answer has begun), however long the
    # request took to get there on a busy machine; the answer itself is 0.5 s away.
    async with asyncio.timeout(10):
        while not sandbox.ledger.faults["slow"]:
            await asyncio.sleep(0.005)
    assert not submit.done()
    submit.cancel()
    with pytest.raises(asyncio.CancelledError):
        await submit
    assert not sandbox.ledger.billed  # not yet: the sandbox is still in its slow delay
    # The handler goes on after the client left: wait for it (bounded), not a fixed sleep that a
    # busy machine outruns.
    async with asyncio.timeout(10):
        while not sandbox.ledger.billed:
            await asyncio.sleep(0.01)
    assert len(sandbox.ledger.billed) == 1


async def test_malformed_answers_are_broken_json_after_the_task_exists(
    evolink_sandbox_factory: Any, api_for: Any, http: aiohttp.ClientSession
) -> None:
    sandbox = await evolink_sandbox_factory(faults=Faults(malformed_rate=1.0))
    api = api_for(sandbox)
    async with http.post(sandbox.base_url + SUBMIT, json=qwen(), headers=api.headers()) as response:
        assert response.status == 200
        assert response.content_type == "application/json"
        raw = await response.read()
    with pytest.raises(ValueError, match=r"."):
        json.loads(raw)
    assert len(sandbox.ledger.billed) == 1
    assert sandbox.ledger.billed[0].encode() in raw or raw.startswith(b"{")


async def test_task_failures_use_the_a3_codes(clock: FakeClock, api_for: Any) -> None:
    async with Sandbox(clock=clock, faults=Faults(task_failure_rate=1.0), seed=5) as sandbox:
        api = api_for(sandbox)
        ids = [(await api.submit(qwen()))[2]["id"] for _ in range(20)]
        clock.advance(60)
        codes = set()
        for task_id in ids:
            _, _, task = await api.task(task_id)
            assert task["status"] == "failed"
            assert task["progress"] == 0
            assert "results" not in task
            assert set(task["error"]) == {"code", "message"}
            codes.add(task["error"]["code"])
        assert codes <= set(FAILURE_CODES)
        assert len(codes) > 3


async def test_task_failures_by_chosen_code(clock: FakeClock, api_for: Any) -> None:
    faults = Faults(task_failure_rate=1.0, failure_codes=("content_policy_violation",))
    async with Sandbox(clock=clock, faults=faults) as sandbox:
        api = api_for(sandbox)
        _, _, body = await api.submit(retexture())
        clock.advance(100)
        _, _, task = await api.task(body["id"])
        assert task["error"]["code"] == "content_policy_violation"
        assert sandbox.ledger.billed == [body["id"]]  # failed tasks are still charged (A1)


async def test_stuck_tasks_plateau_then_time_out(clock: FakeClock, api_for: Any) -> None:
    async with Sandbox(clock=clock, faults=Faults(stuck_rate=1.0), duration_spread=(1.0, 1.0)) as sandbox:
        api = api_for(sandbox)
        _, _, body = await api.submit(retexture())
        clock.advance(60)
        _, _, first = await api.task(body["id"])
        clock.advance(600)
        _, _, later = await api.task(body["id"])
        assert first["status"] == later["status"] == "processing"
        assert 85 <= first["progress"] == later["progress"] <= 93
        clock.advance(20 * 60 - 660)
        _, _, done = await api.task(body["id"])
        assert done["status"] == "failed"
        assert done["error"]["code"] == "generation_timeout"


async def test_faults_spare_other_endpoints(evolink_sandbox_factory: Any, api_for: Any) -> None:
    sandbox = await evolink_sandbox_factory(faults=Faults(server_error_rate=1.0))
    status, _, body = await api_for(sandbox).files("GET", "/quota")
    assert status == 200
    assert body["success"] is True


def test_fault_rates_are_checked() -> None:
    with pytest.raises(ValueError, match="server_error_rate: must be at most 1"):
        Faults(server_error_rate=1.5)
    with pytest.raises(ValueError, match="add up"):
        Faults(server_error_rate=0.6, reset_after_rate=0.6)
    with pytest.raises(ValueError, match="stuck_rate"):
        Faults(task_failure_rate=0.7, stuck_rate=0.7)
    with pytest.raises(ValueError, match="failure_codes"):
        Faults(failure_codes=())


async def test_fault_rates_are_roughly_honoured(evolink_sandbox_factory: Any, api_for: Any) -> None:
    sandbox = await evolink_sandbox_factory(faults=Faults(server_error_rate=0.3, malformed_rate=0.2), seed=11)
    api = api_for(sandbox)
    for _ in range(200):
        await api.task("task-unified-1-abcdefgh")
    faults = sandbox.ledger.faults
    assert 40 <= faults["server_error"] <= 80
    assert 20 <= faults["malformed"] <= 60
