"""The Files API of API.md A6, and results derived from uploaded inputs."""

from __future__ import annotations

import base64
from typing import Any

import aiohttp
from aiohttp import web

from evolink_async.sandbox import Sandbox
from evolink_async.sandbox._png import decode

from .conftest import FakeClock, checker_png, qwen

JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64
WEBP = b"RIFF\x00\x00\x00\x00WEBPVP8 " + b"\x00" * 32


async def test_base64_upload_answers_the_a6_shape(evolink_sandbox: Sandbox, api_for: Any) -> None:
    api = api_for(evolink_sandbox)
    png = checker_png()
    payload = "data:image/png;base64," + base64.b64encode(png).decode()
    status, headers, body = await api.files(
        "POST", "/upload/base64", json={"base64_data": payload, "upload_path": "avatars", "file_name": "avatar.png"}
    )
    assert status == 200
    assert headers["x-request-id"]
    assert body["success"] is True
    assert body["code"] == 200
    assert body["msg"] == "ok"
    data = body["data"]
    assert set(data) == {
        "file_id", "file_name", "original_name", "file_size", "mime_type", "upload_path",
        "file_url", "download_url", "upload_time", "expires_at",
    }  # fmt: skip
    assert data["file_name"] == "avatar.png"
    assert data["original_name"] == "avatar.png"
    assert data["file_size"] == len(png)
    assert data["mime_type"] == "image/png"
    assert data["upload_path"] == "avatars"
    assert data["file_url"].startswith(evolink_sandbox.files_base_url + "/")
    assert data["download_url"] == f"{evolink_sandbox.files_base_url}/api/v1/files/download/{data['file_id']}"
    for url in (data["file_url"], data["download_url"]):
        assert await api.download(url) == (200, png)


async def test_raw_base64_and_a_jpeg(evolink_sandbox: Sandbox, api_for: Any) -> None:
    status, _, body = await api_for(evolink_sandbox).upload(JPEG)
    assert status == 200
    assert body["data"]["mime_type"] == "image/jpeg"
    assert body["data"]["file_name"].endswith(".jpg")


async def test_stream_upload(evolink_sandbox: Sandbox, api_for: Any) -> None:
    api = api_for(evolink_sandbox)
    form = aiohttp.FormData()
    form.add_field("file", WEBP, filename="photo.webp", content_type="image/webp")
    form.add_field("upload_path", "batch/1")
    status, _, body = await api.files("POST", "/upload/stream", data=form)
    assert status == 200, body
    assert body["data"]["original_name"] == "photo.webp"
    assert body["data"]["mime_type"] == "image/webp"
    assert body["data"]["upload_path"] == "batch/1"
    assert await api.download(body["data"]["file_url"]) == (200, WEBP)


async def test_hostile_names_cannot_escape(evolink_sandbox: Sandbox, api_for: Any) -> None:
    api = api_for(evolink_sandbox)
    form = aiohttp.FormData()
    form.add_field("file", JPEG, filename="../../etc/passwd", content_type="image/jpeg")
    form.add_field("upload_path", "../../../root/./x")
    status, _, body = await api.files("POST", "/upload/stream", data=form)
    assert status == 200
    data = body["data"]
    assert data["file_name"] == "passwd.jpg"
    assert data["upload_path"] == "root/x"
    _, _, odd = await api.upload(JPEG, file_name="..\\..\\a b<script>.jpg")
    assert odd["data"]["file_name"] == "a_b_script_.jpg"
    assert await api.download(odd["data"]["file_url"]) == (200, JPEG)


async def test_url_upload_from_a_loopback_server_and_from_the_sandbox(evolink_sandbox: Sandbox, api_for: Any) -> None:
    png = checker_png()

    async def image(_request: web.Request) -> web.Response:
        return web.Response(body=png, content_type="image/png")

    app = web.Application()
    app.router.add_get("/pics/cat.png", image)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        api = api_for(evolink_sandbox)
        status, _, body = await api.files(
            "POST", "/upload/url", json={"file_url": f"http://127.0.0.1:{port}/pics/cat.png"}
        )
        assert status == 200, body
        assert body["data"]["file_name"] == "cat.png"
        # A copy of a file already in the sandbox needs no network at all.
        status, _, copy = await api.files("POST", "/upload/url", json={"file_url": body["data"]["file_url"]})
        assert status == 200
        assert await api.download(copy["data"]["file_url"]) == (200, png)
    finally:
        await runner.cleanup()


async def test_url_upload_from_another_host_fails_40004(evolink_sandbox: Sandbox, api_for: Any) -> None:
    status, _, body = await api_for(evolink_sandbox).files(
        "POST", "/upload/url", json={"file_url": "https://example.com/a.png"}
    )
    assert status == 400
    assert body["success"] is False
    assert body["code"] == 40004


async def test_size_type_and_quota_limits(evolink_sandbox_factory: Any, api_for: Any) -> None:
    sandbox = await evolink_sandbox_factory(max_upload_bytes=1000, max_files=2)
    api = api_for(sandbox)
    status, _, body = await api.upload(JPEG + b"\x00" * 1000)
    assert (status, body["code"], body["success"]) == (400, 40001, False)
    form = aiohttp.FormData()
    form.add_field("file", JPEG + b"\x00" * 5000, filename="big.jpg")
    status, _, body = await api.files("POST", "/upload/stream", data=form)
    assert body["code"] == 40001
    status, _, body = await api.upload(b"%PDF-1.7 not an image")
    assert (status, body["code"]) == (400, 40002)
    assert (await api.upload(JPEG))[0] == 200
    assert (await api.upload(JPEG))[0] == 200
    status, _, body = await api.upload(JPEG)
    assert body["code"] == 40003
    async with api.session.post(
        f"{sandbox.files_base_url}/api/v1/files/upload/base64", data=b"x" * 200_000, headers=api.headers()
    ) as response:
        assert (await response.json())["code"] == 40001  # larger than any base64 of an allowed file


async def test_list_quota_and_delete(evolink_sandbox_factory: Any, api_for: Any) -> None:
    sandbox = await evolink_sandbox_factory(extra_api_keys=["sk-evo-other"])
    api = api_for(sandbox)
    ids = [(await api.upload(JPEG, file_name=f"f{i}.jpg"))[2]["data"]["file_id"] for i in range(3)]
    await api_for(sandbox, "sk-evo-other").upload(JPEG)
    status, _, body = await api.files("GET", "/list", params={"page": "1", "pageSize": "2"})
    assert status == 200
    assert body["data"]["total"] == 3
    assert body["data"]["page"] == 1
    assert body["data"]["pageSize"] == 2
    assert [f["file_id"] for f in body["data"]["files"]] == ids[:2]
    _, _, page2 = await api.files("GET", "/list", params={"page": "2", "pageSize": "2"})
    assert [f["file_id"] for f in page2["data"]["files"]] == ids[2:]
    _, _, quota = await api.files("GET", "/quota")
    assert quota["data"] == {"used_files": 3, "max_files": 100, "remain_files": 97, "user_group": "default"}
    status, _, body = await api.files("DELETE", f"/{ids[0]}")
    assert status == 200
    assert body == {"success": True, "code": 200, "msg": "ok"}  # no data: a client must need none
    status, _, body = await api.files("DELETE", f"/{ids[0]}")
    assert (status, body["success"]) == (404, False)
    assert (await api_for(sandbox, "sk-evo-other").files("DELETE", f"/{ids[1]}"))[0] == 404
    _, _, quota = await api.files("GET", "/quota")
    assert quota["data"]["used_files"] == 2


async def test_files_api_wants_the_key(evolink_sandbox: Sandbox, api_for: Any) -> None:
    status, headers, body = await api_for(evolink_sandbox, "sk-evo-wrong").files("GET", "/quota")
    assert status == 401
    assert headers["x-request-id"]
    assert body["success"] is False


async def test_files_expire_after_72_scaled_hours(clock: FakeClock, api_for: Any) -> None:
    async with Sandbox(clock=clock, time_scale=0.001) as sandbox:
        api = api_for(sandbox)
        _, _, body = await api.upload(JPEG)
        clock.advance(72 * 3600 * 0.001 - 0.01)
        assert (await api.download(body["data"]["file_url"]))[0] == 200
        clock.advance(0.02)
        assert (await api.download(body["data"]["file_url"]))[0] == 404
        _, _, quota = await api.files("GET", "/quota")
        assert quota["data"]["used_files"] == 0


async def test_results_derive_from_a_sandbox_input(clock: FakeClock, api_for: Any) -> None:
    async with Sandbox(clock=clock) as sandbox:
        api = api_for(sandbox)
        png = checker_png(8, 6)
        _, _, up = await api.upload(png)
        url = up["data"]["file_url"]
        source = decode(png)
        assert source is not None
        ids = {}
        for model, body in (
            ("qwen-image-edit", qwen(image_urls=[url])),
            ("mj-v7-remove-bg", {"model": "mj-v7-remove-bg", "image_urls": [url]}),
            ("mj-v7-retexture", {"model": "mj-v7-retexture", "prompt": "gold", "image_urls": [url]}),
        ):
            ids[model] = (await api.submit(body))[2]["id"]
        clock.advance(100)
        results = {}
        for model, task_id in ids.items():
            _, _, task = await api.task(task_id)
            status, data = await api.download(task["results"][0])
            image = decode(data)
            assert status == 200
            assert image is not None
            assert (image.width, image.height) == (8, 6)
            results[model] = image
        inverted = results["qwen-image-edit"].pixels
        assert inverted[:4] == bytes([0, 0, 0, 255])
        assert inverted[4:8] == bytes([0, 255, 255, 255])
        cut = results["mj-v7-remove-bg"].pixels
        assert cut[3] == 0
        assert cut[7] == 255
        assert results["mj-v7-retexture"].pixels != source.pixels
        # A result can be the input of the next task (chaining edits).
        _, _, task = await api.task(ids["qwen-image-edit"])
        _, _, chained = await api.submit(qwen(image_urls=task["results"]))
        clock.advance(100)
        _, _, done = await api.task(chained["id"])
        again = decode((await api.download(done["results"][0]))[1])
        assert again is not None
        assert again.pixels == source.pixels


async def test_a_missing_sandbox_input_fails_the_task(clock: FakeClock, api_for: Any) -> None:
    async with Sandbox(clock=clock) as sandbox:
        api = api_for(sandbox)
        _, _, up = await api.upload(JPEG)
        await api.files("DELETE", f"/{up['data']['file_id']}")
        status, _, body = await api.submit(qwen(image_urls=[up["data"]["file_url"]]))
        assert status == 200  # accepted and billed: the download happens server-side
        clock.advance(100)
        _, _, task = await api.task(body["id"])
        assert task["status"] == "failed"
        assert task["error"]["code"] == "image_processing_error"


async def test_a_client_that_goes_away_mid_upload_leaves_no_traceback_in_the_log(
    evolink_sandbox: Sandbox, caplog: Any
) -> None:
    """``evolink demo --json | head`` stops the CLI mid-upload; the in-process sandbox used to
    log aiohttp's "Error handling request" traceback into the terminal."""
    import asyncio
    import logging
    from urllib.parse import urlsplit

    caplog.set_level(logging.DEBUG)
    url = urlsplit(evolink_sandbox.files_base_url)
    assert url.hostname is not None
    _, writer = await asyncio.open_connection(url.hostname, url.port)
    part = b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\nContent-Type: image/png\r\n\r\n'
    writer.write(
        b"POST /api/v1/files/upload/stream HTTP/1.1\r\nHost: sandbox\r\n"
        + f"Authorization: Bearer {evolink_sandbox.api_key}\r\n".encode()
        + b"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 100000\r\n\r\n"
        + part
        + b"x" * 1000
    )
    await writer.drain()
    deadline = asyncio.get_running_loop().time() + 10
    while not any("upload/stream" in endpoint for endpoint in evolink_sandbox.ledger.requests):
        assert asyncio.get_running_loop().time() < deadline, "the upload never reached the handler"
        await asyncio.sleep(0.01)
    writer.close()  # gone, 99 kB short
    await asyncio.sleep(0.3)  # the handler finds the connection lost and returns (nothing to wait on)
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR], caplog.text[-2000:]
    # And the server goes on answering.
    async with aiohttp.ClientSession() as session:
        async with session.get(
            f"{evolink_sandbox.files_base_url}/api/v1/files/quota",
            headers={"Authorization": f"Bearer {evolink_sandbox.api_key}"},
        ) as response:
            assert response.status == 200
