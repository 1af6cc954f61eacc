from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from evolink_async import MidjourneyClient, PollPolicy, RetryPolicy

MJ_KEY = "mj-secret-KEY0123456789abcdef"
MJ_BASE = "https://mj.test"
MJ = f"{MJ_BASE}/mj/"


@pytest.fixture
async def mj() -> AsyncIterator[MidjourneyClient]:
    retry = RetryPolicy(max_retries=3, initial_delay=0.0, max_delay=0.0, max_retry_after=5.0)
    async with MidjourneyClient(MJ_KEY, base_url=MJ_BASE, retry=retry, poll_policy=PollPolicy().scaled(0.01)) as c:
        yield c
