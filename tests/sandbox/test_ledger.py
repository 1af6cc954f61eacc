"""Billing, idempotency, credits, rate limiting, and the ledger that counts them."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from evolink_async.sandbox import Sandbox
from evolink_async.sandbox.evolink import _server as sandbox_server
from evolink_async.sandbox.evolink._media import image_intact

from .conftest import FakeClock, checker_png, qwen, retexture

KEY = "batch-7.item_0042-abcdef"


async def test_ledger_counts_billed_tasks_credits_and_requests(evolink_sandbox: Sandbox, api_for: Any) -> None:
    api = api_for(evolink_sandbox)
    ids = [
        (await api.submit(body))[2]["id"] for body in (retexture(), qwen(), retexture(model_params={"speed": "turbo"}))
    ]
    await api.task(ids[0])
    await api.task(ids[1])
    await api.submit({"model": "qwen-image-edit"})  # 400: not billed
    ledger = evolink_sandbox.ledger
    assert ledger.billed == ids
    assert ledger.charges == {ids[0]: 1.8, ids[1]: 1.0, ids[2]: 3.6}
    assert ledger.credits_charged == pytest.approx(6.4)
    assert ledger.requests["POST /v1/images/generations"] == 4
    assert ledger.requests["GET /v1/tasks/{task_id}"] == 2
    assert ledger.replays == 0


async def test_idempotent_replay_returns_the_same_task_unbilled(evolink_sandbox: Sandbox, api_for: Any) -> None:
    api = api_for(evolink_sandbox)
    status, headers, first = await api.submit(qwen(), idempotency_key=KEY)
    assert status == 200
    assert "idempotency-replayed" not in headers
    # Same body with keys in another order is the same request.
    reordered = dict(reversed(list(qwen().items())))
    status, headers, again = await api.submit(reordered, idempotency_key=KEY)
    assert status == 200
    assert headers["idempotency-replayed"] == "true"
    assert again["id"] == first["id"]
    assert evolink_sandbox.ledger.billed == [first["id"]]
    assert evolink_sandbox.ledger.replays == 1
    assert evolink_sandbox.ledger.replayed_ids == [first["id"]]


async def test_replay_reports_the_current_state(clock: FakeClock, api_for: Any) -> None:
    async with Sandbox(clock=clock) as sandbox:
        api = api_for(sandbox)
        _, _, _first = await api.submit(qwen(), idempotency_key=KEY)
        clock.advance(120)
        _, _, again = await api.submit(qwen(), idempotency_key=KEY)
        assert again["status"] == "completed"
        assert again["results"]


async def test_same_key_other_body_is_a_409_conflict(evolink_sandbox: Sandbox, api_for: Any) -> None:
    api = api_for(evolink_sandbox)
    await api.submit(qwen(), idempotency_key=KEY)
    status, headers, body = await api.submit(qwen(prompt="something else"), idempotency_key=KEY)
    assert status == 409
    assert headers["x-request-id"]
    assert body["error"]["code"] == "idempotency_conflict"
    assert len(evolink_sandbox.ledger.billed) == 1


async def test_idempotency_keys_are_scoped_per_api_key(evolink_sandbox_factory: Any, api_for: Any) -> None:
    sandbox = await evolink_sandbox_factory(extra_api_keys=["sk-evo-second"])
    _, _, one = await api_for(sandbox).submit(qwen(), idempotency_key=KEY)
    _, headers, two = await api_for(sandbox, "sk-evo-second").submit(qwen(), idempotency_key=KEY)
    assert one["id"] != two["id"]
    assert "idempotency-replayed" not in headers
    assert len(sandbox.ledger.billed) == 2


@pytest.mark.parametrize("key", ["short", "x" * 97, "has space in it 0123", "ünïcödé-0123456789"])
async def test_malformed_idempotency_keys_are_400(evolink_sandbox: Sandbox, api_for: Any, key: str) -> None:
    status, _, body = await api_for(evolink_sandbox).submit(qwen(), idempotency_key=key)
    assert status == 400
    assert body["error"]["code"] == "invalid_idempotency_key"
    assert evolink_sandbox.ledger.billed == []


async def test_credits_run_out_with_402(evolink_sandbox_factory: Any, api_for: Any) -> None:
    sandbox = await evolink_sandbox_factory(credits=4.0)
    api = api_for(sandbox)
    assert (await api.submit(retexture()))[0] == 200  # 1.8
    assert (await api.submit(retexture()))[0] == 200  # 3.6
    status, headers, body = await api.submit(retexture())  # would need 5.4
    assert status == 402
    assert headers["x-request-id"]
    assert body["error"] == {
        "code": "insufficient_quota",
        "message": body["error"]["message"],
        "type": "insufficient_quota_error",
    }
    assert sandbox.credits_remaining == pytest.approx(0.4)
    assert (await api.submit({"model": "mj-v7-remove-bg", "image_urls": ["https://e.com/a.png"]}))[0] == 402
    assert len(sandbox.ledger.billed) == 2
    assert sandbox.ledger.credits_charged == pytest.approx(3.6)


async def test_concurrent_submits_never_overdraw_the_credits(
    evolink_sandbox_factory: Any, api_for: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Submits whose inputs the sandbox reads at the same time are billed within the credits.

    Every submit's input check (run in a thread) waits at a barrier until all of them are inside
    it, so a credit check made before that read would pass for all six: the sandbox then billed
    more than it held (seen in CI: 4 billed on 3 credits), where the real service answers 402.
    """
    submits = 6
    barrier = threading.Barrier(submits, timeout=30)  # bounded: a broken barrier fails the submits

    def intact_after_all_arrived(data: bytes) -> bool:
        barrier.wait()
        return image_intact(data)

    monkeypatch.setattr(sandbox_server, "image_intact", intact_after_all_arrived)
    sandbox = await evolink_sandbox_factory(credits=3.0)
    api = api_for(sandbox)
    _, _, uploaded = await api.upload(checker_png())
    body = qwen(image_urls=[uploaded["data"]["file_url"]])  # 1 credit each
    answers = await asyncio.gather(*(api.submit(body) for _ in range(submits)))
    assert sorted(status for status, _, _ in answers) == [200, 200, 200, 402, 402, 402]
    assert len(sandbox.ledger.billed) == 3
    assert sandbox.credits_remaining == pytest.approx(0.0)


async def test_a_replay_is_answered_even_when_credits_are_exhausted(evolink_sandbox_factory: Any, api_for: Any) -> None:
    sandbox = await evolink_sandbox_factory(credits=1.0)
    api = api_for(sandbox)
    _, _, first = await api.submit(qwen(), idempotency_key=KEY)
    status, _, again = await api.submit(qwen(), idempotency_key=KEY)
    assert status == 200
    assert again["id"] == first["id"]


async def test_token_bucket_rate_limit_answers_429_with_retry_after(clock: FakeClock, api_for: Any) -> None:
    async with Sandbox(clock=clock, rate_limit=2.0, time_scale=0.5) as sandbox:
        api = api_for(sandbox)
        assert [(await api.task("task-unified-1-abcdefgh"))[0] for _ in range(2)] == [404, 404]  # burst of 2
        status, headers, body = await api.task("task-unified-1-abcdefgh")
        assert status == 429
        assert body["error"]["type"] == "rate_limit_error"
        # 2 per API second at scale 0.5 is 4 per real second: the next token is 0.25 s away.
        assert float(headers["Retry-After"]) == pytest.approx(0.25)
        clock.advance(0.25)
        assert (await api.submit(qwen()))[0] == 200
        assert (await api.submit(qwen()))[0] == 429
        assert len(sandbox.ledger.billed) == 1


async def test_rate_limit_is_per_api_key(clock: FakeClock, api_for: Any) -> None:
    async with Sandbox(clock=clock, rate_limit=1.0, extra_api_keys=["sk-evo-b"]) as sandbox:
        assert (await api_for(sandbox).submit(qwen()))[0] == 200
        assert (await api_for(sandbox).submit(qwen()))[0] == 429
        assert (await api_for(sandbox, "sk-evo-b").submit(qwen()))[0] == 200


async def test_peak_unfinished_per_key(clock: FakeClock, api_for: Any) -> None:
    # Fixed 30 s qwen tasks: three overlap, then all finish, then two overlap.
    async with Sandbox(clock=clock, duration_spread=(1.0, 1.0), extra_api_keys=["sk-evo-b"]) as sandbox:
        api = api_for(sandbox)
        for _ in range(3):
            await api.submit(qwen())
            clock.advance(5)
        clock.advance(60)
        for _ in range(2):
            await api.submit(qwen())
        await api_for(sandbox, "sk-evo-b").submit(qwen())
        await api.submit(qwen(), idempotency_key=KEY)
        await api.submit(qwen(), idempotency_key=KEY)  # a replay adds nothing
        assert sandbox.ledger.peak_unfinished == 3
        assert sandbox.ledger.peak_unfinished_by_key == {sandbox.api_key: 3, "sk-evo-b": 1}


async def test_ledger_is_served_as_json(evolink_sandbox: Sandbox, api_for: Any, http: Any) -> None:
    _, _, body = await api_for(evolink_sandbox).submit(qwen())
    async with http.get(evolink_sandbox.base_url + "/_sandbox/ledger") as response:
        ledger = await response.json()
    assert ledger["billed"] == [body["id"]]
    assert ledger["requests"]["POST /v1/images/generations"] == 1
