"""The sandbox's ``honor_idempotency_keys`` switch: on by default, off emulates a server that ignores the key."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import evolink_async as evolink
from evolink_async.testing import SandboxFactory
from tests.helpers.hostile import edit

RETRY = evolink.RetryPolicy(max_retries=4, initial_delay=0.01, max_delay=0.05)


async def test_sandbox_can_ignore_idempotency_keys(
    evolink_sandbox_factory: SandboxFactory, scaled_client: Callable[..., evolink.EvolinkClient]
) -> None:
    """Item 24: ``Sandbox(honor_idempotency_keys=False)`` emulates a server that ignores the
    Idempotency-Key: the same key submitted twice creates and bills two tasks."""
    sandbox = await evolink_sandbox_factory(honor_idempotency_keys=False)
    assert sandbox.config.honor_idempotency_keys is False
    key = "trust-idempotency-key-0001"
    async with scaled_client(sandbox, retry=RETRY) as client:
        async with asyncio.timeout(10):
            first = await client.images.submit(edit(), idempotency_key=key)
            second = await client.images.submit(edit(), idempotency_key=key)
    assert first.id != second.id
    assert sandbox.ledger.billed == [first.id, second.id]
    assert sandbox.ledger.replays == 0


async def test_sandbox_honors_idempotency_keys_by_default(
    evolink_sandbox_factory: SandboxFactory, scaled_client: Callable[..., evolink.EvolinkClient]
) -> None:
    """Item 24: the switch exists and defaults to True (the same key twice is one billed task)."""
    sandbox = await evolink_sandbox_factory()
    assert sandbox.config.honor_idempotency_keys is True
    key = "trust-idempotency-key-0002"
    async with scaled_client(sandbox, retry=RETRY) as client:
        async with asyncio.timeout(10):
            first = await client.images.submit(edit(), idempotency_key=key)
            second = await client.images.submit(edit(), idempotency_key=key)
    assert first.id == second.id
    assert sandbox.ledger.billed == [first.id]
