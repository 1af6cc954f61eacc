"""MJ result images: real PNGs served by the sandbox, a 2x2 grid or one image."""

from __future__ import annotations

from typing import Any

from evolink_async.sandbox import Sandbox
from evolink_async.sandbox._png import Image, decode
from tests.helpers.mj_sandbox import PNG_DATA_URL

SCALE = {"time_scale": 0.01, "seed": 13}


def _quadrant(grid: Image, index: int) -> bytes:
    half, stride = grid.width // 2, grid.width * 4
    left, top = (index % 2) * half, (index // 2) * half
    rows = (grid.pixels[(top + y) * stride + left * 4 : (top + y) * stride + (left + half) * 4] for y in range(half))
    return b"".join(rows)


async def test_imagine_grid_then_u2_is_its_second_quadrant(mj_for: Any) -> None:
    async with Sandbox(**SCALE) as sandbox:
        mj = mj_for(sandbox)
        parent = await mj.wait(await mj.imagine("mountains at dawn"))
        assert parent["imageUrl"].startswith(sandbox.base_url)
        status, data = await mj.download(parent["imageUrl"])
        grid = decode(data)
        assert status == 200
        assert grid is not None
        assert (grid.width, grid.height) == (128, 128)
        quadrants = [_quadrant(grid, i) for i in range(4)]
        assert len(set(quadrants)) == 4
        u2 = next(b for b in parent["buttons"] if b["label"] == "U2")
        child = await mj.wait(
            (await mj.submit("action", {"taskId": parent["id"], "customId": u2["customId"]}))["result"]
        )
        status, data = await mj.download(child["imageUrl"])
        single = decode(data)
        assert status == 200
        assert single is not None
        assert (single.width, single.height) == (64, 64)
        assert single.pixels == quadrants[1]


async def test_grid_actions_and_single_images(mj_for: Any) -> None:
    async with Sandbox(**SCALE) as sandbox:
        mj = mj_for(sandbox)
        parent = await mj.wait(await mj.imagine())
        v1 = next(b for b in parent["buttons"] if b["label"] == "V1")
        variation = await mj.wait(
            (await mj.submit("action", {"taskId": parent["id"], "customId": v1["customId"]}))["result"]
        )
        blend = await mj.wait((await mj.submit("blend", {"base64Array": [PNG_DATA_URL] * 2}))["result"])
        describe = await mj.wait((await mj.submit("describe", {"base64": PNG_DATA_URL}))["result"])
        sizes = []
        for task in (variation, blend, describe):
            status, data = await mj.download(task["imageUrl"])
            image = decode(data)
            assert status == 200
            assert image is not None
            sizes.append(image.width)
        assert sizes == [128, 128, 64]


async def test_preview_while_running_and_nothing_before(mj_for: Any, clock: Any) -> None:
    async with Sandbox(time_scale=1.0, seed=1, clock=clock) as sandbox:
        mj = mj_for(sandbox)
        task_id = await mj.imagine()
        url = f"{sandbox.mj_url}/_images/{task_id}"
        assert (await mj.download(url + "/preview.png"))[0] == 404
        for _ in range(100):
            clock.advance(1)
            if (await mj.fetch(task_id))["status"] == "IN_PROGRESS":
                break
        assert (await mj.download(url + "/result.png"))[0] == 404
        status, data = await mj.download(url + "/preview.png")
        assert status == 200
        assert decode(data) is not None
        assert (await mj.download(f"{sandbox.mj_url}/_images/0/result.png"))[0] == 404
