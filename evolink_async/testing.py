"""pytest plugin: an Evolink sandbox for your own test suite (registered as ``pytest11``).

Fixtures (they need pytest-asyncio):

- ``evolink_sandbox``: a running :class:`~evolink_async.sandbox.Sandbox`, configured by an
  optional ``@pytest.mark.evolink_sandbox(**options)`` marker (``Sandbox`` keyword arguments);
- ``evolink_sandbox_factory``: ``await factory(**options)`` starts another sandbox, stopped at
  teardown, for a test that needs several or decides its options at run time;
- ``evolink_sandbox_env``: the ``evolink_sandbox``, with ``EVOLINK_API_KEY``,
  ``EVOLINK_BASE_URL`` and ``EVOLINK_FILES_BASE_URL`` pointing at it for the test's duration;
- ``mj_sandbox``: the same sandbox, named for Midjourney-proxy tests (its MJ routes are at
  ``mj_sandbox.mj_base_url + "/mj/..."``, secret ``mj_sandbox.mj_api_key``; quirks through
  ``@pytest.mark.evolink_sandbox(midjourney=MidjourneyOptions(...))``);
- ``mj_sandbox_env``: ``mj_sandbox`` with ``MJ_PROXY_BASE_URL`` and ``MJ_PROXY_API_KEY`` set.

Unless a test says otherwise, sandboxes run 100x faster than the real service
(``time_scale=0.01``) with ``seed=0``, so a test is fast and repeats exactly.

>>> @pytest.mark.evolink_sandbox(faults=Faults(server_error_rate=0.2))
... async def test_survives_errors(evolink_sandbox):
...     ...

This module is imported by every pytest run in an environment where evolink-async is
installed, so it imports nothing heavy up front and degrades to a clear skip without
pytest-asyncio instead of breaking unrelated test suites.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .sandbox import Sandbox

__all__ = [
    "DEFAULT_OPTIONS",
    "SandboxFactory",
    "evolink_sandbox",
    "evolink_sandbox_env",
    "evolink_sandbox_factory",
    "mj_sandbox",
    "mj_sandbox_env",
]

MARKER = "evolink_sandbox"
#: Options every fixture-made sandbox starts from; a marker or factory call overrides them.
DEFAULT_OPTIONS: dict[str, Any] = {"time_scale": 0.01, "seed": 0}

SandboxFactory = Callable[..., Awaitable["Sandbox"]]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{MARKER}(**options): Sandbox keyword arguments for the evolink_sandbox fixture"
    )


try:
    import pytest_asyncio

    _HAVE_PYTEST_ASYNCIO = True
except ImportError:  # pragma: no cover - exercised only without pytest-asyncio
    _HAVE_PYTEST_ASYNCIO = False


def _options(request: pytest.FixtureRequest) -> dict[str, Any]:
    marker = request.node.get_closest_marker(MARKER)
    if marker is not None and marker.args:
        raise TypeError(f"@pytest.mark.{MARKER} takes keyword arguments only (Sandbox options)")
    return dict(marker.kwargs) if marker is not None else {}


if _HAVE_PYTEST_ASYNCIO:

    @pytest_asyncio.fixture
    async def evolink_sandbox_factory() -> AsyncIterator[SandboxFactory]:
        """Start sandboxes with ``await evolink_sandbox_factory(**options)``; all stop at teardown."""
        from .sandbox import Sandbox

        async with contextlib.AsyncExitStack() as stack:

            async def start(**options: Any) -> Sandbox:
                return await stack.enter_async_context(Sandbox(**{**DEFAULT_OPTIONS, **options}))

            yield start

    @pytest_asyncio.fixture
    async def evolink_sandbox(request: pytest.FixtureRequest, evolink_sandbox_factory: SandboxFactory) -> Sandbox:
        """A running sandbox; options from ``@pytest.mark.evolink_sandbox(...)``."""
        return await evolink_sandbox_factory(**_options(request))

else:  # pragma: no cover

    @pytest.fixture
    def evolink_sandbox_factory() -> SandboxFactory:
        pytest.skip("the evolink_sandbox fixtures need pytest-asyncio (pip install pytest-asyncio)")

    @pytest.fixture
    def evolink_sandbox() -> Sandbox:
        pytest.skip("the evolink_sandbox fixtures need pytest-asyncio (pip install pytest-asyncio)")


@pytest.fixture
def evolink_sandbox_env(evolink_sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    """``evolink_sandbox`` with the client's environment variables pointing at it."""
    monkeypatch.setenv("EVOLINK_API_KEY", evolink_sandbox.api_key)
    monkeypatch.setenv("EVOLINK_BASE_URL", evolink_sandbox.base_url)
    monkeypatch.setenv("EVOLINK_FILES_BASE_URL", evolink_sandbox.files_base_url)
    return evolink_sandbox


@pytest.fixture
def mj_sandbox(evolink_sandbox: Sandbox) -> Sandbox:
    """``evolink_sandbox``, for Midjourney-proxy tests: ``mj_base_url``, ``mj_api_key``, ``mj_task(id)``."""
    return evolink_sandbox


@pytest.fixture
def mj_sandbox_env(mj_sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    """``mj_sandbox`` with ``MJ_PROXY_BASE_URL`` and ``MJ_PROXY_API_KEY`` pointing at it."""
    monkeypatch.setenv("MJ_PROXY_BASE_URL", mj_sandbox.mj_base_url)
    monkeypatch.setenv("MJ_PROXY_API_KEY", mj_sandbox.mj_api_key)
    return mj_sandbox
