"""``plan_batch`` on a folder a run has already been through says what the next run will do:
the inputs it fails again, those it submits again (``retry_failed=True``) and those it leaves alone.

Once a plan reported ``invalid=()`` and counted an input that had failed as "already handled",
and the run right after failed that same input again.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from evolink_async import EvolinkClient
from evolink_async.batch._run import Batch, plan_batch
from evolink_async.batch._spec import BatchSpec, FailedInput
from evolink_async.sandbox import Faults, Sandbox
from tests.helpers.images import write_png

Build = Callable[..., EvolinkClient]
SUBMITS = "POST /v1/images/generations"


def _spec(tmp_path: Path, **options: object) -> BatchSpec:
    values: dict[str, object] = {"model": "qwen-image-edit", "prompt": "make it autumn", "input_dir": tmp_path / "in",
                                 "output_dir": tmp_path / "out"}  # fmt: skip
    return BatchSpec(**{**values, **options})  # type: ignore[arg-type]


def _said(failed: tuple[FailedInput, ...] | list[FailedInput]) -> list[tuple[str, str, str]]:
    return sorted((f.key, f.code, f.message) for f in failed)


async def _plan_then_run(sandbox: Sandbox, build: Build, spec: BatchSpec) -> None:
    """The plan of ``spec`` and the run right after it agree, input by input."""
    plan = await plan_batch(spec)
    submits = sandbox.ledger.requests[SUBMITS]
    async with build(sandbox) as client:
        summary = await Batch(client, spec).run()
    assert _said(plan.invalid) == _said(summary.failed)
    assert plan.to_submit == summary.submitted == sandbox.ledger.requests[SUBMITS] - submits
    assert plan.already_handled == summary.done_before


async def test_an_input_refused_before_its_submit_is_planned_as_failing_again(
    evolink_sandbox: Sandbox, scaled_client: Build, tmp_path: Path
) -> None:
    write_png(tmp_path / "in" / "a.png")
    write_png(tmp_path / "in" / "tiny.png", 100, 100)  # below qwen-image-edit's 384 px: refused before a submit
    spec = _spec(tmp_path)
    async with scaled_client(evolink_sandbox) as client:
        first = await Batch(client, spec).run()
    assert [f.key for f in first.failed] == ["tiny.png"]
    plan = await plan_batch(spec)
    assert [f.key for f in plan.invalid] == ["tiny.png"]
    assert (plan.inputs, plan.to_submit, plan.already_handled) == (2, 0, 1)
    await _plan_then_run(evolink_sandbox, scaled_client, spec)
    # Retried, it is refused again, by the same rule, with nothing submitted.
    await _plan_then_run(evolink_sandbox, scaled_client, _spec(tmp_path, retry_failed=True))


@pytest.mark.evolink_sandbox(faults=Faults(task_failure_rate=1.0, failure_codes=("content_policy_violation",)))
async def test_an_input_whose_task_failed_is_planned_as_failing_again_or_resubmitted(
    evolink_sandbox: Sandbox, scaled_client: Build, tmp_path: Path
) -> None:
    write_png(tmp_path / "in" / "a.png")
    spec = _spec(tmp_path)
    async with scaled_client(evolink_sandbox) as client:
        first = await Batch(client, spec).run()
    assert [f.code for f in first.failed] == ["content_policy_violation"]
    plan = await plan_batch(spec)
    assert [(f.key, f.code) for f in plan.invalid] == [("a.png", "content_policy_violation")]
    assert (plan.to_submit, plan.already_handled) == (0, 0)
    await _plan_then_run(evolink_sandbox, scaled_client, spec)
    # With retry_failed=True the run submits it again (and pays again): the plan counts it to submit.
    retry = _spec(tmp_path, retry_failed=True)
    plan = await plan_batch(retry)
    assert (plan.to_submit, plan.invalid) == (1, ())
    assert plan.estimated_credits == 1.0
    submits = evolink_sandbox.ledger.requests[SUBMITS]
    async with scaled_client(evolink_sandbox) as client:
        summary = await Batch(client, retry).run()
    assert summary.submitted == evolink_sandbox.ledger.requests[SUBMITS] - submits == 1  # (and it fails again)
