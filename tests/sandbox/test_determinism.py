"""The same seed and the same requests give the same tasks and the same faults."""

from __future__ import annotations

from typing import Any

import aiohttp

from evolink_async.sandbox import Faults, Sandbox

from .conftest import FakeClock, qwen

FAULTS = Faults(server_error_rate=0.15, rate_limit_rate=0.1, malformed_rate=0.1, task_failure_rate=0.3, stuck_rate=0.1)


async def _run(seed: int, api_for: Any) -> list[Any]:
    """20 submits, then the state of each task at fixed clock steps; returns everything seen."""
    clock = FakeClock()
    seen: list[Any] = []
    async with Sandbox(clock=clock, seed=seed, faults=FAULTS) as sandbox:
        api = api_for(sandbox)
        ids = []
        for _ in range(20):
            status, _, body = await api.submit(qwen())
            seen.append(status)
            if status == 200 and body is not None:
                ids.append(body["id"])
        for _ in range(8):
            clock.advance(7)
            for task_id in ids:
                status, _, body = await api.task(task_id)
                if status == 200 and body is not None:
                    seen.append((body["status"], body["progress"], body.get("error")))
                else:
                    seen.append(status)
        seen.append(sorted(sandbox.ledger.faults.items()))
        seen.append([task_id.rsplit("-", 1)[1] for task_id in ids])
    return seen


async def test_same_seed_same_run(api_for: Any) -> None:
    first = await _run(42, api_for)
    assert first == await _run(42, api_for)
    assert first != await _run(43, api_for)


async def test_durations_do_not_depend_on_the_failure_knobs(http: aiohttp.ClientSession, api_for: Any) -> None:
    # Every task draws all its numbers whatever the knobs, so the surviving tasks keep their timing.
    async def finish_times(faults: Faults) -> list[float]:
        clock = FakeClock()
        async with Sandbox(clock=clock, seed=9, faults=faults) as sandbox:
            for _ in range(10):
                await api_for(sandbox).submit(qwen())
            return [record.ramp_end for record in sandbox._running.book._tasks.values()]

    assert await finish_times(Faults()) == await finish_times(Faults(task_failure_rate=0.5))


def test_an_unseeded_sandbox_exposes_its_seed() -> None:
    assert isinstance(Sandbox().seed, int)
    assert Sandbox(seed=5).seed == 5
