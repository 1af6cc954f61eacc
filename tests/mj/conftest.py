from __future__ import annotations

import asyncio
import functools
import inspect
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

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


# Every await in these tests is bounded: each async test as a whole runs under a deadline. A bound
# against hangs, not a speed check: generous, since a loaded 2-core machine running the suite in
# parallel stretches the 500-task test from ~6 s to over 30 s.
TEST_DEADLINE = float(os.environ.get("MJ_TEST_DEADLINE", "120"))


def _bounded(test: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(test)
    async def run(*args: Any, **kwargs: Any) -> Any:
        async with asyncio.timeout(TEST_DEADLINE):
            return await test(*args, **kwargs)

    return run


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if isinstance(item, pytest.Function) and here in item.path.parents and inspect.iscoroutinefunction(item.obj):
            item.obj = _bounded(item.obj)
