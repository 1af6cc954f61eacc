"""``max_credits`` on the one-machine folder batch: a budget stops new submits; the rest stays resumable."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from evolink_async import EvolinkClient, ValidationError
from evolink_async.batch import Batch, BatchSpec
from evolink_async.sandbox import Faults, Sandbox
from tests.helpers.images import write_png

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


async def test_the_fan_out_holds_the_budget_to_the_credits_reserved(
    evolink_sandbox: Sandbox, scaled_client: Build, tmp_path: Path
) -> None:
    """The batch hands its budget and its estimate to the fan-out: the same not-submitted outcome."""
    for index in range(4):
        write_png(tmp_path / "in" / f"{index}.png", shade=index * 30)
    async with scaled_client(evolink_sandbox) as client:
        batch = Batch(client, _spec(tmp_path, max_credits=3))
        summary = await batch.run()
        fan_out = batch._fan_out
    assert fan_out is not None
    assert fan_out._budget is not None
    assert fan_out._budget.max_credits == 3
    assert fan_out._budget.estimate == 1.0
    assert summary.submitted == 3
    assert summary.credits_reserved == evolink_sandbox.ledger.credits_charged == 3.0


@pytest.mark.evolink_sandbox(seed=7, faults=Faults(reset_after_rate=0.3))
async def test_the_summary_counts_retried_uncertain_submits(
    evolink_sandbox: Sandbox, scaled_client: Build, tmp_path: Path
) -> None:
    for index in range(12):
        write_png(tmp_path / "in" / f"{index}.png", shade=index * 20)
    async with scaled_client(evolink_sandbox) as client:
        batch = Batch(client, _spec(tmp_path, max_in_flight=6))
        summary = await batch.run()
    assert batch._fan_out is not None
    assert summary.retried_uncertain_submits == batch._fan_out.summary.retried_uncertain_submits > 0
    assert summary.to_json()["retried_uncertain_submits"] == summary.retried_uncertain_submits
    assert len(evolink_sandbox.ledger.billed) == 12  # each retry was answered as a replay


@pytest.mark.parametrize("value", [-1, float("nan")])
def test_a_bad_budget_is_refused_naming_it(tmp_path: Path, value: float) -> None:
    with pytest.raises(ValidationError, match="max_credits"):
        _spec(tmp_path, max_credits=value)
