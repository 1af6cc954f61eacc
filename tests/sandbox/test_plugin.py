"""The pytest plugin's fixtures, used exactly as a user's test suite would."""

from __future__ import annotations

import os
from typing import Any

import pytest

from evolink_async.sandbox import Faults, Sandbox
from evolink_async.testing import DEFAULT_OPTIONS

from .conftest import qwen


async def test_default_fixture_is_fast_and_seeded(evolink_sandbox: Sandbox) -> None:
    assert evolink_sandbox.config.time_scale == DEFAULT_OPTIONS["time_scale"] == 0.01
    assert evolink_sandbox.seed == 0
    assert evolink_sandbox.base_url.startswith("http://127.0.0.1:")


@pytest.mark.evolink_sandbox(time_scale=0.5, faults=Faults(server_error_rate=1.0), credits=3)
async def test_marker_configures_the_fixture(evolink_sandbox: Sandbox, api_for: Any) -> None:
    assert evolink_sandbox.config.time_scale == 0.5
    assert evolink_sandbox.credits_remaining == 3
    status, _, _ = await api_for(evolink_sandbox).submit(qwen())
    assert status >= 500


async def test_factory_starts_independent_sandboxes(evolink_sandbox_factory: Any) -> None:
    one = await evolink_sandbox_factory(seed=1)
    two = await evolink_sandbox_factory(time_scale=1.0)
    assert one.base_url != two.base_url
    assert (one.seed, two.config.time_scale) == (1, 1.0)


def test_env_fixture_points_the_client_at_the_sandbox(evolink_sandbox_env: Sandbox) -> None:
    assert os.environ["EVOLINK_BASE_URL"] == evolink_sandbox_env.base_url
    assert os.environ["EVOLINK_FILES_BASE_URL"] == evolink_sandbox_env.files_base_url
    assert os.environ["EVOLINK_API_KEY"] == evolink_sandbox_env.api_key


async def test_the_ledger_stays_readable_after_exit(api_for: Any) -> None:
    sandbox = Sandbox()
    with pytest.raises(RuntimeError, match="never started"):
        _ = sandbox.base_url
    async with sandbox:
        _, _, body = await api_for(sandbox).submit(qwen())
        with pytest.raises(RuntimeError, match="once at a time"):
            await sandbox.__aenter__()
    assert sandbox.ledger.billed == [body["id"]]
    async with sandbox:  # a second run starts afresh
        assert sandbox.ledger.billed == []
