"""The switches around the sandbox's fidelity to API.md: the file quota, the model catalogue, bad inputs.

The facts themselves (defaults included) are stated in tests/contract/facts.py; these are the knobs.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import aiohttp
import pytest

from evolink_async.sandbox import Sandbox, SandboxConfig

from .conftest import SUBMIT, FakeClock, checker_png, qwen


async def test_max_files_from_the_command_line() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "evolink_async.sandbox", "--max-files", "2", "--accept-any-model",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    env: dict[str, str] = {}
    try:
        async with asyncio.timeout(20):
            while not (line := (await process.stdout.readline()).decode()).startswith("ready"):
                assert line, "the sandbox exited before it was ready"
                name, _, value = line.strip().partition("=")
                env[name] = value
        headers = {"Authorization": f"Bearer {env['EVOLINK_API_KEY']}"}
        files = env["EVOLINK_FILES_BASE_URL"] + "/api/v1/files"
        async with aiohttp.ClientSession(headers=headers) as http:
            codes = []
            for _ in range(3):
                form = aiohttp.FormData()
                form.add_field("file", checker_png(), filename="a.png")
                async with http.post(files + "/upload/stream", data=form) as response:
                    codes.append((await response.json())["code"])
            assert codes == [200, 200, 40003]
            async with http.get(files + "/quota") as response:
                data = (await response.json())["data"]
            assert (data["used_files"], data["max_files"], data["remain_files"]) == (2, 2, 0)
            async with http.post(env["EVOLINK_BASE_URL"] + SUBMIT, json={"model": "brand-new-model", "prompt": "x"}) as r:
                assert r.status == 200  # --accept-any-model
    finally:
        process.terminate()
        await process.communicate()


async def test_a_deleted_file_frees_its_place_in_the_quota(evolink_sandbox_factory: Any, api_for: Any) -> None:
    api = api_for(await evolink_sandbox_factory(max_files=1))
    first = (await api.upload(checker_png()))[2]["data"]["file_id"]
    assert (await api.upload(checker_png()))[2]["code"] == 40003
    await api.files("DELETE", f"/{first}")
    assert (await api.upload(checker_png()))[2]["code"] == 200


@pytest.mark.parametrize("model", ["no-such-model", "mj-v8", "doubao-seedream-3.0"])
async def test_unknown_models_are_refused_before_billing(evolink_sandbox: Sandbox, api_for: Any, model: str) -> None:
    status, _, body = await api_for(evolink_sandbox).submit({"model": model, "prompt": "x"})
    assert status == 400
    assert body["error"]["code"] == "model_unavailable"
    assert body["error"]["param"] == "model"
    assert "qwen-image-edit" in body["error"]["fallback_suggestion"]
    assert evolink_sandbox.ledger.billed == []


@pytest.mark.parametrize("model", ["doubao-seedream-4.5-250828", "wan2.5-i2i-preview", "gemini-3-pro-image-preview"])
async def test_documented_families_are_served(evolink_sandbox: Sandbox, api_for: Any, model: str) -> None:
    status, _, body = await api_for(evolink_sandbox).submit({"model": model, "prompt": "x"})
    assert (status, body["model"]) == (200, model)


async def test_accept_any_model(evolink_sandbox_factory: Any, api_for: Any) -> None:
    sandbox = await evolink_sandbox_factory(accept_any_model=True)
    status, _, body = await api_for(sandbox).submit({"model": "no-such-model", "prompt": "x"})
    assert (status, body["status"]) == (200, "pending")


async def test_one_corrupt_input_among_several_fails_the_task(clock: FakeClock, api_for: Any) -> None:
    async with Sandbox(clock=clock) as sandbox:
        api = api_for(sandbox)
        png = checker_png()
        whole = (await api.upload(png))[2]["data"]["file_url"]
        broken = bytearray(png)
        broken[40] ^= 0xFF  # inside IHDR/IDAT: the chunk's CRC no longer matches
        corrupt = (await api.upload(bytes(broken)))[2]["data"]["file_url"]
        ok_id = (await api.submit(qwen(image_urls=[whole, whole])))[2]["id"]
        bad_id = (await api.submit(qwen(image_urls=[whole, corrupt])))[2]["id"]
        clock.advance(1000)
        assert (await api.task(ok_id))[2]["status"] == "completed"
        failed = (await api.task(bad_id))[2]
        assert (failed["status"], failed["error"]["code"]) == ("failed", "image_processing_error")


@pytest.mark.parametrize(
    ("option", "value"), [("max_files", 0), ("max_files", 2.5), ("max_upload_bytes", -1), ("max_files", True)]
)
def test_limits_must_be_positive_integers(option: str, value: Any) -> None:
    with pytest.raises(ValueError, match=option):
        SandboxConfig(**{option: value})
