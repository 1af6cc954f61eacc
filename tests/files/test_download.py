"""client.download: streamed, bounded, atomic, sanitized, never overwriting, no key to result hosts."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from aiohttp import web

import evolink_async as evolink
from evolink_async import EvolinkClient, RemoveBackground, Task, TaskStatus
from evolink_async.sandbox import Sandbox
from tests.helpers.images import png_bytes

Build = Callable[..., EvolinkClient]
REQUEST = RemoveBackground(image_urls=["https://example.com/cat.png"])


async def _completed(client: EvolinkClient) -> Task:
    return await client.images.generate(REQUEST, timeout=30)


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


async def test_saves_results_as_real_images(evolink_sandbox: Sandbox, scaled_client: Build, tmp_path: Path) -> None:
    async with scaled_client(evolink_sandbox) as client:
        done = await _completed(client)
        paths = await client.download(done, tmp_path / "out", name="cat")
    assert [p.name for p in paths] == ["cat.result-0.png"]
    assert paths[0].read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert _listing(tmp_path / "out") == ["cat.result-0.png"]  # no temporary file left behind


async def test_names_cannot_escape_the_folder(evolink_sandbox: Sandbox, scaled_client: Build, tmp_path: Path) -> None:
    out = tmp_path / "out"
    async with scaled_client(evolink_sandbox) as client:
        done = await _completed(client)
        for name in ("../../evil", "/etc/passwd", "..", "a/../../b", "CON", "\u202egnp.exe"):
            (path,) = await client.download(done, out, name=name)
            assert path.parent == out.resolve(), name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert all(n.endswith(".png") for n in _listing(out))


async def test_never_overwrites(evolink_sandbox: Sandbox, scaled_client: Build, tmp_path: Path) -> None:
    existing = tmp_path / "cat.result-0.png"
    existing.write_bytes(b"an input that happens to have this name")
    async with scaled_client(evolink_sandbox) as client:
        done = await _completed(client)
        (first,) = await client.download(done, tmp_path, name="cat")
        (second,) = await client.download(done, tmp_path, name="cat")
    assert existing.read_bytes() == b"an input that happens to have this name"
    assert (first.name, second.name) == ("cat.result-0 (1).png", "cat.result-0 (2).png")


async def test_size_bound(evolink_sandbox: Sandbox, scaled_client: Build, tmp_path: Path) -> None:
    async with scaled_client(evolink_sandbox) as client:
        done = await _completed(client)
        with pytest.raises(evolink.DownloadError) as info:
            await client.download(done, tmp_path, max_bytes=100)
    assert info.value.reason == "too_large"
    assert _listing(tmp_path) == []


async def test_bad_urls_statuses_and_non_images(
    evolink_sandbox: Sandbox, scaled_client: Build, tmp_path: Path
) -> None:
    async with scaled_client(evolink_sandbox) as client:
        for url, reason in [
            ("file:///etc/passwd", "bad_url"),
            ("ftp://example.com/a.png", "bad_url"),
            (f"{evolink_sandbox.base_url}/files/results/task-unified-0-nope/0.png", "http_status"),
            (f"{evolink_sandbox.base_url}/_sandbox/ledger", "not_an_image"),
        ]:
            with pytest.raises(evolink.DownloadError) as info:
                await client.download([url], tmp_path)
            assert info.value.reason == reason, url
        pending = Task(id="task-unified-1", status=TaskStatus.PROCESSING)
        with pytest.raises(evolink.ValidationError, match="no results"):
            await client.download(pending, tmp_path)
    assert _listing(tmp_path) == []


@pytest.fixture
async def result_host() -> AsyncIterator[tuple[str, list[dict[str, str]]]]:
    """A foreign result host on loopback that records the headers it was sent."""
    seen: list[dict[str, str]] = []

    async def serve(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        if request.path == "/redirect":
            raise web.HTTPFound("/image.png")
        return web.Response(body=png_bytes(16, 16), content_type="image/png")

    app = web.Application()
    app.router.add_get("/{name}", serve)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}", seen
    await runner.cleanup()


async def test_no_key_is_sent_to_a_result_host(
    evolink_sandbox: Sandbox, scaled_client: Build, tmp_path: Path, result_host: tuple[str, list[dict[str, str]]]
) -> None:
    base, seen = result_host
    async with scaled_client(evolink_sandbox) as client:
        paths = await client.download([f"{base}/image.png", f"{base}/redirect"], tmp_path, name="x")
    assert [p.name for p in paths] == ["x.result-0.png", "x.result-1.png"]
    assert len(seen) == 3
    assert not any("authorization" in {k.lower() for k in headers} for headers in seen)
    assert evolink_sandbox.api_key not in repr(seen)


async def test_durable_fsyncs_the_file_and_its_folder_and_the_default_does_not(
    evolink_sandbox: Sandbox, scaled_client: Build, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os
    import stat

    synced: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append("folder" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    async with scaled_client(evolink_sandbox) as client:
        done = await _completed(client)
        await client.download(done, tmp_path / "fast", name="cat")
        assert synced == []
        (path,) = await client.download(done, tmp_path / "safe", name="cat", durable=True)
    assert synced == ["file", "folder"]
    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


@pytest.mark.parametrize("writev", ["short writes", "no writev (Windows)"])
def test_every_byte_is_written_whatever_the_system_accepts_per_call(
    writev: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    from evolink_async._files.download import _write_all

    chunks = [b"", b"abc", bytes(range(256)) * 40, b"", b"x" * 7, b"tail"]
    if writev == "short writes":
        real_writev = os.writev

        def stingy(fd: int, buffers: list[memoryview]) -> int:
            # At most 5 bytes per call: partial writes that end inside a chunk and on its edge.
            return real_writev(fd, [bytes(b"".join(bytes(v) for v in buffers)[:5])])

        monkeypatch.setattr(os, "writev", stingy)
    else:
        monkeypatch.delattr(os, "writev")
    path = tmp_path / "out.bin"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        _write_all(fd, chunks)
    finally:
        os.close(fd)
    assert path.read_bytes() == b"".join(chunks)


async def test_reuse_identical_finds_its_own_file_and_never_takes_a_different_one(
    evolink_sandbox: Sandbox, scaled_client: Build, tmp_path: Path
) -> None:
    from evolink_async._files.download import download_urls

    async with scaled_client(evolink_sandbox) as client:
        done = await _completed(client)
        session = client._transport.session

        def name_for(index: int, image_format: object) -> str:
            return f"cat.result-{index}.png"

        (first,) = await download_urls(session, done.results, tmp_path, name_for, reuse_identical=True)
        # A resumed batch downloads the same result again: it finds its own file, saves no copy.
        (again,) = await download_urls(session, done.results, tmp_path, name_for, reuse_identical=True)
        assert again == first
        assert _listing(tmp_path) == ["cat.result-0.png"]
        # A different file under that name is never taken for ours, nor overwritten.
        first.write_bytes(b"someone else's picture")
        (other,) = await download_urls(session, done.results, tmp_path, name_for, reuse_identical=True)
        assert other.name == "cat.result-0 (1).png"
        assert first.read_bytes() == b"someone else's picture"
        # Without the option every download is a new file (client.download's behaviour).
        (fresh,) = await download_urls(session, done.results, tmp_path, name_for)
        assert fresh.name == "cat.result-0 (2).png"
    assert _listing(tmp_path) == ["cat.result-0 (1).png", "cat.result-0 (2).png", "cat.result-0.png"]


@pytest.mark.parametrize("step", ["_write_all", "publish_unique", "_open_temp"])
async def test_a_result_that_cannot_be_written_is_a_disk_download_error(
    evolink_sandbox: Sandbox, scaled_client: Build, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    """A full disk (``ENOSPC`` from opening, writing or publishing, simulated: tests run as root) is
    a typed ``DownloadError`` with reason ``disk``, not a bare ``OSError``, and leaves no file."""
    import errno

    from evolink_async._files import download

    def full(*_args: object, **_kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    async with scaled_client(evolink_sandbox) as client:
        done = await _completed(client)
        monkeypatch.setattr(download, step, full)
        with pytest.raises(evolink.DownloadError) as info:
            await client.download(done, tmp_path / "out")
    assert info.value.reason == "disk"
    assert "No space left on device" in str(info.value)
    assert not (tmp_path / "out").exists() or _listing(tmp_path / "out") == []
