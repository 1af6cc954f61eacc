"""How ``fan_out`` must be used: an ``async with`` owns its work, so iterating it without one
fails at once with a ``TypeError`` that shows the right form, instead of waiting for ever."""

from __future__ import annotations

from collections.abc import Callable

import anyio
import pytest

from evolink_async import EvolinkClient, QwenImageEdit
from evolink_async.sandbox import Sandbox

Build = Callable[..., EvolinkClient]
REQUEST = QwenImageEdit(prompt="make it autumn", image_urls=["https://example.com/in.png"])


async def test_iterating_fan_out_without_async_with_raises_type_error_and_submits_nothing(
    evolink_sandbox: Sandbox, scaled_client: Build
) -> None:
    async with scaled_client(evolink_sandbox) as client:
        with anyio.fail_after(10), pytest.raises(TypeError, match=r"async with client\.fan_out\(requests\)"):
            async for _ in client.fan_out([REQUEST, REQUEST]):
                pass
        # The same object is usable the right way afterwards.
        fan_out = client.fan_out([REQUEST])
        async with fan_out as events:
            kinds = [event.kind.value async for event in events]
    assert (kinds[0], kinds[-1]) == ("submitted", "completed")
    assert evolink_sandbox.ledger.requests["POST /v1/images/generations"] == 1
