"""A run that stops early leaves no upload behind that nothing will ever use.

A mistyped model is refused (400 ``model_unavailable``) at the first submit; by then a few inputs
are uploaded and in flight. Their journal is abandoned (another model needs another folder), so a
file left on the Files API would hold the key's 100-file quota until it expires. Measured as the
sandbox's files alive after the run, next to its ledger of files stored (something was uploaded).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from evolink_async import EventKind, EvolinkClient, ImageRequest, ModelUnavailableError
from evolink_async.batch._entries import EntryStatus
from evolink_async.batch._run import Batch
from evolink_async.batch._spec import BatchSpec
from evolink_async.batch._sqlite_store import Journal
from evolink_async.sandbox import Sandbox

from .conftest import write_inputs

Build = Callable[..., EvolinkClient]
SUBMITS = "POST /v1/images/generations"


def _spec(tmp_path: Path, model: str, **options: object) -> BatchSpec:
    return BatchSpec(model=model, prompt="autumn", input_dir=tmp_path / "in", output_dir=tmp_path / "out",
                     **options)  # type: ignore[arg-type]  # fmt: skip


async def _files_alive(client: EvolinkClient) -> int:
    return (await client.files.list()).total


async def test_a_batch_stopped_by_a_mistyped_model_deletes_its_uploads(
    evolink_sandbox: Sandbox, scaled_client: Build, tmp_path: Path
) -> None:
    write_inputs(tmp_path / "in", 24)
    async with scaled_client(evolink_sandbox) as client:
        with pytest.raises(ModelUnavailableError):
            await Batch(client, _spec(tmp_path, "qwen-image-editt", max_in_flight=6)).run()
        assert await _files_alive(client) == 0
    ledger = evolink_sandbox.ledger
    assert ledger.files_stored >= 1  # inputs were uploaded before the refusal came
    assert ledger.requests[SUBMITS] >= 1
    assert not ledger.billed
    # Their entries went back to "nothing sent, nothing stored": a re-run uploads afresh, never
    # sends a stored body whose file is gone.
    journal = await Journal.open(tmp_path / "out" / "evolink-journal.sqlite3")
    try:
        entries = [entry async for entry in journal.entries()]
    finally:
        await journal.aclose()
    assert entries
    assert all(e.status is EntryStatus.PENDING_SUBMIT and e.request_body is None for e in entries)


@pytest.mark.evolink_sandbox(credits=3.0)
async def test_a_batch_out_of_credits_deletes_the_uploads_it_will_not_submit(
    evolink_sandbox: Sandbox, scaled_client: Build, tmp_path: Path
) -> None:
    write_inputs(tmp_path / "in", 24)
    async with scaled_client(evolink_sandbox) as client:
        summary = await Batch(client, _spec(tmp_path, "qwen-image-edit", max_in_flight=4)).run()
        assert summary.submitted >= 1
        assert "not_submitted" in {f.code for f in summary.failed}
        assert await _files_alive(client) == 0


async def test_a_fan_out_stopped_by_a_mistyped_model_deletes_its_uploads(
    evolink_sandbox: Sandbox, scaled_client: Build, tmp_path: Path
) -> None:
    paths = write_inputs(tmp_path / "in", 24)
    requests = ((p.name, ImageRequest(model="qwen-image-editt", prompt="autumn", image_urls=[p])) for p in paths)
    async with scaled_client(evolink_sandbox) as client:
        with pytest.raises(ModelUnavailableError):
            async with client.fan_out(requests, max_in_flight=8) as events:
                assert [event async for event in events if event.kind is EventKind.SUBMITTED] == []
        assert await _files_alive(client) == 0
    assert evolink_sandbox.ledger.files_stored >= 2
    assert not evolink_sandbox.ledger.billed
