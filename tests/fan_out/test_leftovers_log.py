"""A fan-out left early with tasks still running warns once, on a logger of its own
(``evolink_async.fan_out.leftovers``, named in the README): a caller who reads ``summary`` (the
``evolink batch work`` command does) silences that logger alone, not the SDK's other warnings."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

import evolink_async as evolink
from evolink_async.sandbox import Sandbox

Build = Callable[..., evolink.EvolinkClient]


async def test_leaving_a_fan_out_with_tasks_running_warns_once_on_its_own_logger(
    evolink_sandbox: Sandbox, scaled_client: Build, caplog: pytest.LogCaptureFixture
) -> None:
    requests = [evolink.QwenImageEdit(prompt=f"autumn {n}", image_urls=["https://example.com/a.png"]) for n in range(6)]
    caplog.set_level(logging.WARNING, logger="evolink_async")
    async with scaled_client(evolink_sandbox) as client:
        async with client.fan_out(requests, max_in_flight=3) as stream:
            async for event in stream:
                if event.kind is evolink.EventKind.SUBMITTED:
                    break  # the others are still running
        left = len(stream.summary.left_in_flight) + len(stream.summary.interrupted_submits)
    assert left >= 1
    records = [record for record in caplog.records if "fan-out left with" in record.getMessage()]
    assert [record.name for record in records] == ["evolink_async.fan_out.leftovers"]
