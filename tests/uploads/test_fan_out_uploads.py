"""fan_out and images.generate with local paths: uploads within the file quota, deleted when the task ends."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from evolink_async import EventKind, EvolinkClient, QwenImageEdit, ValidationError
from evolink_async.sandbox import Sandbox
from tests.helpers.images import bmp_bytes

from .conftest import write_inputs

Build = Callable[..., EvolinkClient]


@pytest.mark.evolink_sandbox(max_files=20, time_scale=0.05)
async def test_fan_out_over_more_local_images_than_the_quota(
    evolink_sandbox: Sandbox, scaled_client: Build, tmp_path: Path
) -> None:
    paths = write_inputs(tmp_path / "in", 60)
    requests = ((path.name, QwenImageEdit(prompt="autumn", image_urls=[path])) for path in paths)
    async with scaled_client(evolink_sandbox) as client:
        async with client.fan_out(requests, max_in_flight=60, timeout=60) as events:
            kinds = [event.kind async for event in events if event.is_terminal]
        assert kinds == [EventKind.COMPLETED] * 60
        assert (await client.files.list()).total == 0
    ledger = evolink_sandbox.ledger
    assert ledger.files_stored == 60
    assert ledger.peak_files_by_key[evolink_sandbox.api_key] <= 20


@pytest.mark.evolink_sandbox(max_files=20)
async def test_fan_out_keep_uploads(evolink_sandbox: Sandbox, scaled_client: Build, tmp_path: Path) -> None:
    paths = write_inputs(tmp_path / "in", 3)
    requests = [QwenImageEdit(prompt="autumn", image_urls=[path]) for path in paths]
    async with scaled_client(evolink_sandbox) as client:
        async with client.fan_out(requests, keep_uploads=True, timeout=60) as events:
            assert len([event async for event in events if event.kind is EventKind.COMPLETED]) == 3
        assert (await client.files.list()).total == 3


@pytest.mark.evolink_sandbox(max_files=20)
async def test_generate_deletes_its_upload(evolink_sandbox: Sandbox, scaled_client: Build, tmp_path: Path) -> None:
    (path,) = write_inputs(tmp_path / "in", 1)
    async with scaled_client(evolink_sandbox) as client:
        done = await client.images.generate(QwenImageEdit(prompt="autumn", image_urls=[path]), timeout=60)
        assert done.results
        assert evolink_sandbox.ledger.files_stored == 1
        assert (await client.files.list()).total == 0


@pytest.mark.evolink_sandbox(max_files=20)
async def test_fan_out_normalize_sends_a_png_for_a_bmp(
    evolink_sandbox: Sandbox, scaled_client: Build, tmp_path: Path
) -> None:
    bmp = tmp_path / "scan.bmp"
    bmp.write_bytes(bmp_bytes(400, 400))
    request = QwenImageEdit(prompt="autumn", image_urls=[bmp])
    async with scaled_client(evolink_sandbox) as client:
        async with client.fan_out([request], timeout=60) as events:  # without normalize: refused, not sent
            (refused,) = [event async for event in events]
        assert refused.kind is EventKind.SUBMIT_FAILED
        assert isinstance(refused.error, ValidationError)
        assert 'pip install "evolink-async[images]"' in refused.error.rule
        assert evolink_sandbox.ledger.files_stored == 0
        async with client.fan_out([request], timeout=60, normalize=True, keep_uploads=True) as events:
            (done,) = [event async for event in events if event.is_terminal]
        assert done.kind is EventKind.COMPLETED
        (stored,) = (await client.files.list()).files
    assert stored.mime_type == "image/png"
