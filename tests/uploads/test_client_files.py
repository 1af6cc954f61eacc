"""client.files.upload and local-image requests against the sandbox's Files API."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

import evolink_async as evolink
from evolink_async import EvolinkClient, QwenImageEdit, RemoveBackground, TaskStatus
from evolink_async.sandbox import Sandbox
from tests.helpers.images import png_bytes, write_png

Build = Callable[..., EvolinkClient]
UPLOADS = "POST /api/v1/files/upload/stream"


async def _fetch(url: str) -> bytes:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200
        return await response.read()


async def test_upload_a_path_streams_it_and_serves_it_back(
    evolink_sandbox: Sandbox, scaled_client: Build, tmp_path: Path
) -> None:
    # A valid header and a few MB behind it: the probe reads the header, the upload streams the rest.
    data = png_bytes(400, 400) + b"\x00" * (3 * 1024 * 1024)
    path = tmp_path / "big photo.png"
    path.write_bytes(data)
    async with scaled_client(evolink_sandbox) as client:
        uploaded = await client.files.upload(path, upload_path="batch-1")
    assert uploaded.file_size == len(data)
    assert uploaded.mime_type == "image/png"
    assert uploaded.file_id.startswith("file_")
    assert uploaded.file_url.startswith(evolink_sandbox.files_base_url + "/")
    assert await _fetch(uploaded.file_url) == data
    assert "sk-evo" not in repr(uploaded)


async def test_upload_bytes(evolink_sandbox: Sandbox, scaled_client: Build) -> None:
    async with scaled_client(evolink_sandbox) as client:
        uploaded = await client.files.upload(png_bytes(32, 32), file_name="tiny.png")
    assert uploaded.file_name == "tiny.png"
    assert await _fetch(uploaded.file_url) == png_bytes(32, 32)


async def test_a_hostile_file_name_stays_a_label(evolink_sandbox: Sandbox, scaled_client: Build) -> None:
    async with scaled_client(evolink_sandbox) as client:
        uploaded = await client.files.upload(png_bytes(8, 8), file_name="../../etc/passwd.png")
    assert ".." not in uploaded.file_url.removeprefix(evolink_sandbox.files_base_url)
    assert uploaded.file_name == "passwd.png"


async def test_too_large_fails_before_sending(evolink_sandbox: Sandbox, scaled_client: Build, tmp_path: Path) -> None:
    path = write_png(tmp_path / "cat.png", 64, 64)
    async with scaled_client(evolink_sandbox) as client:
        with pytest.raises(evolink.ValidationError) as info:
            await client.files.upload(path, max_bytes=100)
    assert info.value.field == "cat.png"
    assert "at most 100 bytes" in info.value.rule
    assert evolink_sandbox.ledger.requests[UPLOADS] == 0


@pytest.mark.evolink_sandbox(max_upload_bytes=2000)
async def test_the_servers_size_limit_is_a_files_api_error(evolink_sandbox: Sandbox, scaled_client: Build) -> None:
    async with scaled_client(evolink_sandbox) as client:
        with pytest.raises(evolink.FilesAPIError) as info:
            await client.files.upload(png_bytes(8, 8) + b"\x00" * 4000)
    assert info.value.code == "40001"
    assert "too large" in info.value.message


async def test_non_image_input(evolink_sandbox: Sandbox, scaled_client: Build, tmp_path: Path) -> None:
    path = tmp_path / "notes.png"
    path.write_text("this is not an image")
    async with scaled_client(evolink_sandbox) as client:
        with pytest.raises(evolink.ValidationError) as info:
            await client.files.upload(path)
        assert info.value.field == "notes.png"
        assert "not a PNG" in info.value.rule
        assert evolink_sandbox.ledger.requests[UPLOADS] == 0
        # Without the local check the Files API refuses it itself (code 40002).
        with pytest.raises(evolink.FilesAPIError) as server:
            await client.files.upload(path, check_format=False)
    assert server.value.code == "40002"


async def test_missing_and_empty_files(evolink_sandbox: Sandbox, scaled_client: Build, tmp_path: Path) -> None:
    (tmp_path / "empty.png").write_bytes(b"")
    async with scaled_client(evolink_sandbox) as client:
        with pytest.raises(evolink.ValidationError, match="cannot be read"):
            await client.files.upload(tmp_path / "absent.png")
        with pytest.raises(evolink.ValidationError, match="is empty"):
            await client.files.upload(tmp_path / "empty.png")


async def test_a_wrong_key_is_an_authentication_error(
    evolink_sandbox: Sandbox, scaled_client: Build, tmp_path: Path
) -> None:
    async with scaled_client(evolink_sandbox, api_key="sk-evo-wrong-key-123456") as client:
        with pytest.raises(evolink.AuthenticationError) as info:
            await client.files.upload(png_bytes(8, 8))
    assert "wrong-key" not in str(info.value)


async def test_submit_uploads_local_paths(evolink_sandbox: Sandbox, scaled_client: Build, tmp_path: Path) -> None:
    path = write_png(tmp_path / "park.png", 400, 500)
    async with scaled_client(evolink_sandbox) as client:
        done = await client.images.generate(QwenImageEdit(prompt="make it autumn", image_urls=[path]), timeout=30)
    assert done.status is TaskStatus.COMPLETED
    assert evolink_sandbox.ledger.requests[UPLOADS] == 1
    assert len(evolink_sandbox.ledger.billed) == 1


async def test_side_limits_are_checked_before_any_upload(
    evolink_sandbox: Sandbox, scaled_client: Build, tmp_path: Path
) -> None:
    good = write_png(tmp_path / "good.png", 400, 400)
    small = write_png(tmp_path / "small.png", 100, 400)
    async with scaled_client(evolink_sandbox) as client:
        with pytest.raises(evolink.ValidationError) as info:
            await client.images.submit(QwenImageEdit(prompt="x", image_urls=[good, small]))
    assert info.value.field == "image_urls[1]"
    assert "[384, 3072]" in info.value.rule
    assert evolink_sandbox.ledger.requests[UPLOADS] == 0
    assert evolink_sandbox.ledger.billed == []


async def test_a_local_file_that_is_not_an_image(evolink_sandbox: Sandbox, scaled_client: Build, tmp_path: Path) -> None:
    fake = tmp_path / "fake.jpg"
    fake.write_bytes(b"GIF89a" + b"\x00" * 20)  # a GIF under a JPEG name: remove-bg accepts GIF
    text = tmp_path / "text.png"
    text.write_text("hello")
    async with scaled_client(evolink_sandbox) as client:
        with pytest.raises(evolink.ValidationError, match="not a PNG"):
            await client.images.submit(RemoveBackground(image_urls=[text]))
        with pytest.raises(evolink.ValidationError, match="accepts"):
            await client.images.submit(RemoveBackground(image_urls=[tmp_path / "doc.pdf"]))
    assert evolink_sandbox.ledger.billed == []
