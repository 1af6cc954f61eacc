"""Images the service would refuse: refused in the dry run without the [images] extra, normalized with it.

The Files API stores JPEG, PNG, GIF and WebP only (API.md A6); qwen-image-edit wants each side in
384-3072 px (A2). ``--normalize`` (Pillow) converts a BMP to PNG, applies the EXIF orientation,
scales the sides into range and strips metadata, writing the copy next to the journal.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import aiohttp
import anyio
import pytest
from PIL import Image

from evolink_async import EvolinkClient, ValidationError
from evolink_async._files.image_probe import ImageFormat, probe_image
from evolink_async._files.normalize import normalize_image, plan_image
from evolink_async.sandbox import Sandbox
from tests.helpers.images import bmp_bytes, write_png

from .conftest import cli_env, edit_argv, json_lines

Build = Callable[..., EvolinkClient]
INSTALL = 'pip install "evolink-async[images]"'


def _without_pillow(tmp_path: Path) -> dict[str, str]:
    """An environment in which ``import PIL`` fails, as on a machine without the extra."""
    fake = tmp_path / "no-pillow" / "PIL"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text('raise ImportError("No module named PIL (test: the extra is not installed)")\n')
    return cli_env(PYTHONPATH=str(fake.parent))


def _jpeg_rotated(width: int, height: int) -> bytes:
    """A JPEG stored ``width`` x ``height`` whose EXIF says: rotate 90 degrees to show it (orientation 6)."""
    image = Image.new("RGB", (width, height), (200, 30, 30))
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "CameraMaker"  # metadata that must not travel
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif.tobytes())
    return out.getvalue()


async def test_a_bmp_is_refused_by_the_dry_run_without_the_extra(evolink_sandbox: Sandbox, tmp_path: Path) -> None:
    write_png(tmp_path / "in" / "fine.png")
    (tmp_path / "in" / "scan.bmp").write_bytes(bmp_bytes(400, 400))
    env = _without_pillow(tmp_path)
    for extra in ((), ("--normalize",)):
        argv = edit_argv(evolink_sandbox, tmp_path / "in", tmp_path / "out", "--dry-run", *extra)
        with anyio.fail_after(60):
            run = await anyio.run_process(argv, env=env, check=False)
        assert run.returncode == 1, run.stderr.decode()
        (plan,) = [line for line in json_lines(run.stdout.decode()) if line["kind"] == "plan"]
        assert plan["to_submit"] == 1
        ((invalid),) = plan["invalid"]
        assert invalid["key"] == "scan.bmp"
        assert "the Files API stores GIF, JPEG, PNG, WEBP images, this is BMP" in invalid["message"]
        assert INSTALL in invalid["message"]
    assert sum(evolink_sandbox.ledger.requests.values()) == 0  # a dry run spends nothing


async def test_with_the_extra_a_bmp_is_uploaded_as_a_png(
    evolink_sandbox: Sandbox, scaled_client: Build, tmp_path: Path
) -> None:
    original = bmp_bytes(200, 100)  # a BMP, and its sides below qwen-image-edit's 384 px
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "scan.bmp").write_bytes(original)
    (tmp_path / "in" / "photo.jpg").write_bytes(_jpeg_rotated(500, 400))
    dry = edit_argv(evolink_sandbox, tmp_path / "in", tmp_path / "out", "--dry-run", "--normalize")
    with anyio.fail_after(60):
        planned = await anyio.run_process(dry, env=cli_env(), check=False)
    assert planned.returncode == 0, planned.stderr.decode()
    (plan,) = [line for line in json_lines(planned.stdout.decode()) if line["kind"] == "plan"]
    assert (plan["to_submit"], plan["invalid"]) == (2, [])

    argv = edit_argv(evolink_sandbox, tmp_path / "in", tmp_path / "out", "--normalize", "--keep-uploads")
    with anyio.fail_after(60):
        run = await anyio.run_process(argv, env=cli_env(), check=False)
    assert run.returncode == 0, run.stderr.decode()[-2000:]
    events = json_lines(run.stdout.decode())
    assert sorted(e["key"] for e in events if e["kind"] == "normalized") == ["photo.jpg", "scan.bmp"]
    assert (tmp_path / "in" / "scan.bmp").read_bytes() == original  # the user's image is untouched
    assert not list((tmp_path / "out" / ".evolink-normalized").iterdir())  # copies go once uploaded

    async with scaled_client(evolink_sandbox) as client:
        stored = (await client.files.list()).files
    assert len(stored) == 2
    sizes = set()
    async with aiohttp.ClientSession() as session:
        for file in stored:
            assert file.mime_type == "image/png"
            async with session.get(file.file_url) as response:
                data = await response.read()
            info = probe_image(data)
            assert info.format is ImageFormat.PNG
            sizes.add((info.width, info.height))
            with Image.open(io.BytesIO(data)) as image:
                assert not image.getexif()  # metadata stripped
                assert "exif" not in image.info
    # 200x100 scaled up to a 384 px short side; the 500x400 JPEG turned upright by its EXIF (6).
    assert sizes == {(768, 384), (400, 500)}


def test_sides_no_scale_can_fit_are_refused(tmp_path: Path) -> None:
    tall = write_png(tmp_path / "tall.png", 100, 5000)
    with pytest.raises(ValidationError) as info:
        plan_image(tall, model="qwen-image-edit", field="tall.png", normalize=True)
    assert info.value.field == "tall.png"
    assert "no scale fits" in info.value.rule
    wide = write_png(tmp_path / "wide.png", 4000, 1000)
    assert plan_image(wide, model="qwen-image-edit", field="wide.png", normalize=True).needed
    copy = normalize_image(wide, tmp_path / "copies", model="qwen-image-edit", name="wide.png")
    assert (probe_image(copy).width, probe_image(copy).height) == (3072, 768)
    assert wide.read_bytes() == (tmp_path / "wide.png").read_bytes()
    fine = write_png(tmp_path / "fine.png", 400, 400)
    assert not plan_image(fine, model="qwen-image-edit", field="fine.png", normalize=True).needed
