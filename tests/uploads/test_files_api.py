"""The Files API client (API.md A6): real-shaped answers parsed, and every endpoint against the sandbox."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from aioresponses import aioresponses

import evolink_async as evolink
from evolink_async import EvolinkClient
from evolink_async._protocols.evolink.files import DEFAULT_MAX_UPLOAD_BYTES
from evolink_async.sandbox import Sandbox
from tests.helpers.images import bmp_bytes, png_bytes, write_png

Build = Callable[..., EvolinkClient]
FILES = "https://files.test/api/v1/files"
BMP = bmp_bytes(8, 8)


async def _fetch(url: str) -> bytes:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200
        return await response.read()


# --- real-shaped answers (exact shapes: aioresponses) --------------------------------------------


async def test_quota_as_the_real_service_answers_it(mock_http: aioresponses, client: EvolinkClient) -> None:
    mock_http.get(f"{FILES}/quota", payload={"success": True, "code": 200, "msg": "ok", "data": {
        "used_files": 37, "max_files": 100, "remain_files": 63, "user_group": "default"}})  # fmt: skip
    quota = await client.files.quota()
    assert quota == evolink.FilesQuota(used_files=37, max_files=100, remain_files=63, user_group="default")


async def test_quota_in_the_older_sandbox_spelling(mock_http: aioresponses, client: EvolinkClient) -> None:
    mock_http.get(f"{FILES}/quota", payload={"success": True, "code": 200, "msg": "ok", "data": {
        "used_files": 3, "max_files": 2000, "remaining_files": 1997}})  # fmt: skip
    quota = await client.files.quota()
    assert (quota.remain_files, quota.user_group) == (1997, None)


async def test_a_quota_without_counts_is_a_format_error(mock_http: aioresponses, client: EvolinkClient) -> None:
    mock_http.get(f"{FILES}/quota", payload={"success": True, "code": 200, "msg": "ok", "data": {"used_files": "x"}})
    with pytest.raises(evolink.ResponseFormatError, match="used_files"):
        await client.files.quota()


async def test_list_keeps_the_total_and_the_paging(mock_http: aioresponses, client: EvolinkClient) -> None:
    # Evolink's listing items carry no file_url: they are kept all the same.
    files = [{"file_id": f"file_{i}", "file_name": f"{i}.png", "file_size": 2048, "upload_time": "t"} for i in range(2)]
    mock_http.get(re.compile(rf"{re.escape(FILES)}/list\?.*"), payload={"success": True, "code": 200, "msg": "ok",
                  "data": {"files": files, "total": 7, "page": 2, "pageSize": 2}})  # fmt: skip
    page = await client.files.list(page=2, page_size=2)
    assert (page.total, page.page, page.page_size, page.has_more) == (7, 2, 2, True)
    assert [f.file_id for f in page] == ["file_0", "file_1"]
    assert page.files[0].file_size == 2048
    assert page.files[0].file_url == ""
    sent = next(k[1] for k in mock_http.requests if k[0] == "GET")
    assert (sent.query["page"], sent.query["pageSize"]) == ("2", "2")


async def test_list_defaults_to_the_largest_page(mock_http: aioresponses, client: EvolinkClient) -> None:
    mock_http.get(re.compile(rf"{re.escape(FILES)}/list\?.*"), payload={"success": True, "code": 200, "msg": "ok",
                  "data": {"files": []}})  # fmt: skip
    page = await client.files.list()
    sent = next(k[1] for k in mock_http.requests if k[0] == "GET")
    assert sent.query["pageSize"] == "100"
    assert (page.total, page.page_size) == (0, 100)
    with pytest.raises(evolink.ValidationError, match="page_size"):
        await client.files.list(page_size=101)


async def test_delete_needs_no_data_in_the_answer(mock_http: aioresponses, client: EvolinkClient) -> None:
    mock_http.delete(f"{FILES}/file_abc", payload={"success": True, "code": 200, "msg": "ok"})
    await client.files.delete("file_abc")
    mock_http.delete(f"{FILES}/file_abc", payload={"success": False, "code": 40400, "msg": "no such file"},
                     status=200)  # fmt: skip
    with pytest.raises(evolink.FilesAPIError) as info:
        await client.files.delete("file_abc")
    assert info.value.code == "40400"


async def test_upload_bytes_sends_a_data_url(mock_http: aioresponses, client: EvolinkClient) -> None:
    png = png_bytes(8, 8)
    mock_http.post(f"{FILES}/upload/base64", payload={"success": True, "code": 200, "msg": "ok", "data": {
        "file_id": "file_1", "file_url": "https://files.test/x/a.png", "mime_type": "image/png"}})  # fmt: skip
    uploaded = await client.files.upload_bytes(png, file_name="a.png")
    assert uploaded.file_id == "file_1"
    (call,) = next(v for k, v in mock_http.requests.items() if k[0] == "POST")
    body = call.kwargs["json"]
    assert body["file_name"] == "a.png"
    assert body["base64_data"] == "data:image/png;base64," + base64.b64encode(png).decode()


async def test_upload_url_sends_the_url(mock_http: aioresponses, client: EvolinkClient) -> None:
    mock_http.post(f"{FILES}/upload/url", payload={"success": False, "code": 40004, "msg": "URL download failed"})
    with pytest.raises(evolink.FilesAPIError) as info:
        await client.files.upload_url("https://example.com/cat.png", file_name="cat.png")
    assert info.value.code == "40004"
    (call,) = next(v for k, v in mock_http.requests.items() if k[0] == "POST")
    assert call.kwargs["json"] == {"file_url": "https://example.com/cat.png", "file_name": "cat.png"}


def test_the_default_size_limit_is_the_services_100_mb() -> None:
    assert DEFAULT_MAX_UPLOAD_BYTES == 100 * 1024 * 1024


# --- checks before anything is sent ---------------------------------------------------------------


async def test_upload_bytes_refuses_types_the_files_api_does_not_store(mock_http: aioresponses,
                                                                       client: EvolinkClient) -> None:  # fmt: skip
    with pytest.raises(evolink.ValidationError, match="stores GIF, JPEG, PNG, WEBP images, this is BMP"):
        await client.files.upload_bytes(BMP, file_name="a.bmp")
    with pytest.raises(evolink.ValidationError, match="mime_type"):
        await client.files.upload_bytes(png_bytes(8, 8), mime_type="image/jpeg")
    with pytest.raises(evolink.ValidationError, match="mime_type"):
        await client.files.upload_bytes(b"%PDF-1.4", mime_type="application/pdf")
    with pytest.raises(evolink.ValidationError, match="url"):
        await client.files.upload_url("file:///etc/passwd")
    with pytest.raises(evolink.ValidationError, match="url"):
        await client.files.upload_url("https://example.com/a b.png")
    assert not mock_http.requests


async def test_a_local_bmp_is_refused_before_the_upload(mock_http: aioresponses, client: EvolinkClient,
                                                        tmp_path: Path) -> None:  # fmt: skip
    # qwen-image-edit takes BMP by URL, the Files API does not store it: refused, nothing sent.
    path = tmp_path / "scan.bmp"
    path.write_bytes(bmp_bytes(400, 400))
    with pytest.raises(evolink.ValidationError) as info:
        await client.files.upload(path)
    assert info.value.field == "scan.bmp"
    with pytest.raises(evolink.ValidationError) as info:
        await client.images.submit(evolink.QwenImageEdit(prompt="x", image_urls=[path]))
    assert info.value.field == "image_urls[0]"
    assert "the Files API stores" in info.value.rule
    assert "evolink-async[images]" in info.value.rule
    assert not mock_http.requests


# --- against the sandbox over HTTP ----------------------------------------------------------------


@pytest.mark.evolink_sandbox(max_files=10)
async def test_every_endpoint_against_the_sandbox(evolink_sandbox: Sandbox, scaled_client: Build,
                                                   tmp_path: Path) -> None:  # fmt: skip
    png = png_bytes(16, 16)
    async with scaled_client(evolink_sandbox) as client:
        by_path = await client.files.upload(write_png(tmp_path / "a.png", 16, 16))
        by_bytes = await client.files.upload_bytes(png, file_name="b.png")
        by_url = await client.files.upload_url(by_bytes.file_url, file_name="c.png")
        assert evolink_sandbox.ledger.requests["POST /api/v1/files/upload/base64"] == 1
        assert await _fetch(by_bytes.file_url) == png
        assert await _fetch(by_url.file_url) == png
        assert (by_bytes.mime_type, by_url.mime_type) == ("image/png", "image/png")
        quota = await client.files.quota()
        assert (quota.used_files, quota.max_files, quota.remain_files) == (3, 10, 7)
        page = await client.files.list(page=1, page_size=2)
        assert (page.total, len(page), page.has_more) == (3, 2, True)
        second = await client.files.list(page=2, page_size=2)
        listed = [f.file_id for f in (*page, *second)]
        assert sorted(listed) == sorted([by_path.file_id, by_bytes.file_id, by_url.file_id])
        for file_id in listed:
            await client.files.delete(file_id)
        assert (await client.files.list()).total == 0
        assert (await client.files.quota()).remain_files == 10


@pytest.mark.evolink_sandbox(max_files=1)
async def test_a_full_quota_is_code_40003(evolink_sandbox: Sandbox, scaled_client: Build) -> None:
    async with scaled_client(evolink_sandbox) as client:
        await client.files.upload_bytes(png_bytes(8, 8))
        with pytest.raises(evolink.FilesAPIError) as info:
            await client.files.upload_bytes(png_bytes(8, 8))
    assert info.value.code == "40003"
