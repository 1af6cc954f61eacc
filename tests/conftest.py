"""Fixtures shared by the whole suite, and the number of parallel workers.

The suite runs under pytest-xdist (``-n auto`` in pyproject.toml); tests/README.md lists the
rules that keep a test safe to run next to others in parallel.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import ClientResponse
from aioresponses import aioresponses
from multidict import CIMultiDict
from yarl import URL

from evolink_async import EvolinkClient, PollPolicy, RetryPolicy
from evolink_async.sandbox import Sandbox

# `-n auto`: most tests spend their time waiting (on sandboxes, CLI subprocesses, PostgreSQL,
# scaled timers), not computing: a one-worker-per-core count leaves a 2-core machine mostly idle.
# Three workers per core, at least 6, at most 8 (to bound the sandbox processes and the per-worker
# PostgreSQL clusters started at once). Measured on the 2-core VM with the other core busy
# (`python3 -c 'while True: pass' &`): 4 workers 341 s, 6 workers 308 s for the same 2,745 tests.
MIN_WORKERS, MAX_WORKERS = 6, 8


def pytest_configure(config: pytest.Config) -> None:
    """Compile the package, the tests and the benchmarks once, before the workers start.

    Hundreds of tests start the command line or a fleet worker as a new Python process; where
    ``PYTHONDONTWRITEBYTECODE`` is set (as on the CI machine), no import ever leaves a ``.pyc``
    behind, and each of those processes compiled the package from source again: 0.1-0.17 s of CPU
    out of 0.3-0.5 s per process start, a sixth of the suite's CPU. Compiling writes what any
    Python would write without that variable (``__pycache__``, ignored by git); reading it is
    allowed either way. Nothing is compiled by the workers themselves (``workerinput``).
    """
    if hasattr(config, "workerinput"):
        return
    import compileall
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    for folder in ("evolink_async", "tests", "benchmarks"):
        # A folder it cannot write (a read-only checkout) is skipped quietly: processes compile as before.
        compileall.compile_dir(root / folder, quiet=2, workers=0)


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    chosen = os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS", "")  # xdist's own override, kept
    if chosen.strip().isdigit():
        return int(chosen)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(MIN_WORKERS, min(MAX_WORKERS, 3 * cores))


API_KEY = "sk-evo-TESTKEY0123456789abcdef"
BASE = "https://api.test"


@pytest.fixture
def fast_retry() -> RetryPolicy:
    """Retries with no real waiting, so retry tests take milliseconds."""
    return RetryPolicy(max_retries=3, initial_delay=0.0, max_delay=0.0, max_retry_after=5.0)


@pytest.fixture
async def client(fast_retry: RetryPolicy) -> AsyncIterator[EvolinkClient]:
    async with EvolinkClient(API_KEY, base_url=BASE, files_base_url="https://files.test", retry=fast_retry) as c:
        yield c


class _SentRequest:
    """Stands in for the stream writer aiohttp >= 3.14 wants; aioresponses (0.7.x) gives none."""

    output_size = 0


@pytest.fixture
def mock_http(monkeypatch: pytest.MonkeyPatch) -> Iterator[aioresponses]:
    """``aioresponses`` made to work with aiohttp 3.14 (upstream issue pnuckowski/aioresponses#289)."""
    original = ClientResponse.__init__

    def init(self: ClientResponse, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", _SentRequest())
        original(self, *args, **kwargs)

    monkeypatch.setattr(ClientResponse, "__init__", init)
    with aioresponses() as mocked:
        yield mocked


SCALE = 0.01  # sandbox and poll policy run 100x faster than the real service


@pytest.fixture
def scaled_client() -> Callable[..., EvolinkClient]:
    """Build a client for a sandbox, with poll policy and retries on the sandbox's clock."""

    def build(sandbox: Sandbox, **options: Any) -> EvolinkClient:
        options.setdefault("poll_policy", PollPolicy().scaled(SCALE))
        options.setdefault("retry", RetryPolicy(max_retries=8, initial_delay=0.01, max_delay=0.05, max_retry_after=5))
        return EvolinkClient(
            options.pop("api_key", sandbox.api_key),
            base_url=sandbox.base_url,
            files_base_url=sandbox.files_base_url,
            **options,
        )

    return build


async def wire_headers(call: Any, url: str) -> CIMultiDict[str]:
    """The headers a call recorded by ``aioresponses`` sends to ``url``: its own, plus what its
    middlewares put on the hop (the client's credentials are attached there, and aioresponses
    answers before any middleware runs)."""
    request = SimpleNamespace(url=URL(url), headers=CIMultiDict(call.kwargs.get("headers") or {}))

    async def answered(_: Any) -> None:
        return None

    for middleware in call.kwargs.get("middlewares") or ():
        await middleware(request, answered)
    return request.headers
