"""``max_credits`` on the one-machine folder batch: a budget stops new submits; the rest stays resumable."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from evolink_async import EvolinkClient, ValidationError
from evolink_async.batch import Batch, BatchSpec
from evolink_async.sandbox import Sandbox

from ._images import write_png

Build = Callable[..., EvolinkClient]


def _spec(tmp_path: Path, **options: object) -> BatchSpec:
    values: dict[str, object] = {"model": "qwen-image-edit", "prompt": "autumn", "input_dir": tmp_path / "in",
                                 "output_dir": tmp_path / "out", "max_in_flight": 2}  # fmt: skip
    return BatchSpec(**{**values, **options})  # type: ignore[arg-type]


async def test_the_budget_holds_and_a_bigger_one_finishes_the_rest(
    evolink_sandbox: Sandbox, scaled_client: Build, tmp_path: Path
) -> None:
    for index in range(6):
        write_png(tmp_path / "in" / f"{index}.png", shade=index * 30)
    async with scaled_client(evolink_sandbox) as client:
        first = await Batch(client, _spec(tmp_path, max_credits=2.5)).run()
    assert first.submitted == 2
    assert evolink_sandbox.ledger.credits_charged <= 2.5
    assert sorted(f.code for f in first.failed) == ["not_submitted"] * 4
    assert not first.ok
    async with scaled_client(evolink_sandbox) as client:
        second = await Batch(client, _spec(tmp_path, max_credits=10)).run()
    assert second.ok
    assert second.done_before == 2
    assert second.submitted == 4
    assert len(evolink_sandbox.ledger.billed) == len(set(evolink_sandbox.ledger.billed)) == 6


async def test_a_budget_needs_a_known_cost(evolink_sandbox: Sandbox, scaled_client: Build, tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    async with scaled_client(evolink_sandbox) as client:
        with pytest.raises(ValidationError, match="max_credits"):
            await Batch(client, _spec(tmp_path, model="gpt-image-1.5", max_credits=1)).run()
