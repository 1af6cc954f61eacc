"""Letting go of a task's uploads once it ended: only a task that uploaded files leaves work to await.

``TaskAPI.release_uploads`` answers ``None`` for a task with nothing to delete (no local image, or
``delete=False``), so a fan-out spawns no task per input for it; a task that uploaded files gets
an awaitable that deletes them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from evolink_async import EvolinkClient, PollPolicy, QwenImageEdit
from evolink_async.sandbox import Sandbox
from tests.helpers.images import png_bytes

SCALE = 0.01


def _client(sandbox: Sandbox) -> EvolinkClient:
    return EvolinkClient(
        sandbox.api_key, base_url=sandbox.base_url, files_base_url=sandbox.files_base_url,
        poll_policy=PollPolicy().scaled(SCALE),
    )  # fmt: skip


@pytest.mark.evolink_sandbox(time_scale=SCALE)
async def test_only_a_task_with_uploads_leaves_deletions_to_await(evolink_sandbox: Sandbox, tmp_path: Path) -> None:
    image = tmp_path / "in.png"
    image.write_bytes(png_bytes(400, 400))
    async with _client(evolink_sandbox) as client:
        plain = await client.images.submit(QwenImageEdit(prompt="autumn", image_urls=["https://example.com/a.png"]))
        local = await client.images.submit(QwenImageEdit(prompt="autumn", image_urls=[image]))
        kept = await client.images.submit(QwenImageEdit(prompt="autumn", image_urls=[image]))
        release = client._api.release_uploads
        assert release is not None
        assert (await client.files.list()).total == 2

        assert release(plain.id, True) is None  # nothing was uploaded for it
        assert release(kept.id, False) is None  # kept: forgotten, nothing deleted
        deletions = release(local.id, True)
        assert deletions is not None
        await deletions
        assert (await client.files.list()).total == 1  # the kept one
        assert release(local.id, True) is None  # already let go of
