"""``client.download`` makes its destination folder only when there is a result to write in it:
a fetch that fails (a missing result, an empty answer) leaves no empty folder behind, and a
destination that is a file is refused before anything is fetched."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from aiohttp import web

import evolink_async as evolink
from evolink_async import EvolinkClient, RemoveBackground
from evolink_async.sandbox import Sandbox
from tests.helpers.hostile import hostile_server

Build = Callable[..., EvolinkClient]
MISSING = "/files/results/task-unified-0-nope/0.png"


async def test_a_failed_fetch_makes_no_folder(evolink_sandbox: Sandbox, scaled_client: Build, tmp_path: Path) -> None:
    out = tmp_path / "out" / "nested"
    async with scaled_client(evolink_sandbox) as client:
        with pytest.raises(evolink.DownloadError) as failed:
            await client.download([evolink_sandbox.base_url + MISSING], out)
    assert failed.value.reason == "http_status"
    assert list(tmp_path.iterdir()) == []


async def test_an_empty_answer_makes_no_folder(scaled_client: Build, tmp_path: Path) -> None:
    async def empty(request: web.Request) -> web.StreamResponse:
        return web.Response(body=b"", content_type="image/png")

    async with hostile_server(empty) as server, evolink.EvolinkClient("sk-evo-test", base_url=server.url) as client:
        with pytest.raises(evolink.DownloadError) as failed:
            await client.download([server.url + "/0.png"], tmp_path / "out")
    assert failed.value.reason == "not_an_image"
    assert list(tmp_path.iterdir()) == []


async def test_the_folder_is_made_for_a_result(evolink_sandbox: Sandbox, scaled_client: Build, tmp_path: Path) -> None:
    async with scaled_client(evolink_sandbox) as client:
        done = await client.images.generate(RemoveBackground(image_urls=["https://example.com/cat.png"]), timeout=30)
        (path,) = await client.download(done, tmp_path / "out" / "nested", name="cat")
    assert path.parent == (tmp_path / "out" / "nested").resolve()
    assert [p.name for p in path.parent.iterdir()] == ["cat.result-0.png"]


async def test_a_file_as_the_folder_is_refused_before_fetching(scaled_client: Build, tmp_path: Path) -> None:
    async def never(request: web.Request) -> web.StreamResponse:
        raise AssertionError("fetched although the destination is a file")

    (tmp_path / "out").write_text("a file")
    async with hostile_server(never) as server, evolink.EvolinkClient("sk-evo-test", base_url=server.url) as client:
        with pytest.raises(evolink.ValidationError, match="dest_dir"):
            await client.download([server.url + "/0.png"], tmp_path / "out")
    assert server.total == 0
