"""``trace_configs=``: aiohttp's own tracing sees every request the client sends, downloads included."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest

from evolink_async import EvolinkClient, QwenImageEdit, ValidationError
from evolink_async.sandbox import Sandbox


def recording_trace_config() -> tuple[aiohttp.TraceConfig, Counter[str]]:
    seen: Counter[str] = Counter()

    async def on_request_start(session: Any, context: SimpleNamespace, params: aiohttp.TraceRequestStartParams) -> None:
        path = params.url.path
        route = "/v1/tasks/*" if path.startswith("/v1/tasks/") else "/files/results/*" if "/results/" in path else path
        seen[f"{params.method} {route}"] += 1

    config = aiohttp.TraceConfig()
    config.on_request_start.append(on_request_start)
    return config, seen


async def test_trace_configs_see_submits_queries_and_downloads(evolink_sandbox: Sandbox, tmp_path: Path) -> None:
    config, seen = recording_trace_config()
    async with EvolinkClient(
        evolink_sandbox.api_key, base_url=evolink_sandbox.base_url, files_base_url=evolink_sandbox.files_base_url,
        trace_configs=[config],
    ) as client:
        done = await client.images.generate(QwenImageEdit(prompt="x", image_urls=["https://example.com/a.png"]),
                                            timeout=60)
        paths = await client.download(done, tmp_path)
    ledger = evolink_sandbox.ledger
    assert seen["POST /v1/images/generations"] == ledger.requests["POST /v1/images/generations"] == 1
    assert seen["GET /v1/tasks/*"] == ledger.requests["GET /v1/tasks/{task_id}"] >= 1
    assert seen["GET /files/results/*"] == len(paths) >= 1


async def test_trace_configs_with_a_callers_session_are_refused() -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(ValidationError, match="trace_configs"):
            EvolinkClient("sk-evo-x", base_url="https://api.test", session=session,
                          trace_configs=[aiohttp.TraceConfig()])
    with pytest.raises(ValidationError, match="trace_configs"):
        EvolinkClient("sk-evo-x", base_url="https://api.test", trace_configs=["not a trace config"])  # type: ignore[list-item]
