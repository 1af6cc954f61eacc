"""The FastAPI example in a real browser: headless Chromium's EventSource shows the task's progress.

The example runs as a user would start it (``python examples/fastapi_progress.py --sandbox``),
with callbacks on; the test uploads an image through its form and opens the page it redirects
to in Chromium, then reads what the page rendered.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp

from tests.helpers.browser import browser_page
from tests.helpers.images import png_bytes

EXAMPLE = Path(__file__).parents[2] / "examples" / "fastapi_progress.py"


@contextlib.asynccontextmanager
async def example_app(*options: str) -> AsyncIterator[str]:
    # Port 0: the example binds a free port itself and prints it (a port chosen here and bound there
    # could be taken in between: it was, by the example's own sandbox, on a loaded machine).
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(EXAMPLE), "--sandbox", "--port", "0", *options,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    assert process.stdout is not None
    async with asyncio.timeout(60):
        first = (await process.stdout.readline()).decode(errors="replace")
    assert first.startswith("open http://127.0.0.1:"), first
    base = first.removeprefix("open ").strip().rstrip("/")
    try:
        async with asyncio.timeout(60), aiohttp.ClientSession() as http:
            while True:  # up once its form page answers
                with contextlib.suppress(aiohttp.ClientConnectionError):
                    async with http.get(f"{base}/") as response:
                        if response.status == 200:
                            break
                if process.returncode is not None:
                    output = await process.stdout.read() if process.stdout else b""
                    raise RuntimeError(f"the example exited: {output.decode(errors='replace')}")
                await asyncio.sleep(0.1)
        yield base
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(process.wait(), 20)
            except TimeoutError:
                process.kill()
                await process.wait()


async def submit_through_the_form(base: str) -> str:
    form = aiohttp.FormData()
    form.add_field("prompt", "a beach at sunset")
    form.add_field("image", png_bytes(512, 512), filename="portrait.png", content_type="image/png")
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base}/edit", data=form, allow_redirects=False) as response:
            assert response.status == 303, await response.text()
            location = response.headers["Location"]
    assert location.startswith("watch/task-unified-")
    assert "token=" in location
    return f"{base}/{location}"


async def test_the_page_shows_progress_and_the_result_in_chromium() -> None:
    # The browser first (it takes seconds to start on a busy machine), then the submit: the page
    # must see the task from its early progress on.
    async with (
        example_app("--time-scale", "0.4", "--progress-every", "0.4") as base,
        browser_page("about:blank") as page,
    ):
        await page.navigate(await submit_through_the_form(base))
        async with asyncio.timeout(90):
            while not await page.evaluate("document.body && document.body.dataset.final || ''"):
                await asyncio.sleep(0.2)
        rendered = await page.evaluate(
            """JSON.stringify({
                final: document.body.dataset.final,
                updates: Number(document.body.dataset.updates),
                status: document.getElementById("status").textContent,
                percent: document.getElementById("percent").textContent,
                bar: document.getElementById("bar").value,
                images: Array.from(document.querySelectorAll("#results img")).map(i => i.src),
                html: document.documentElement.outerHTML,
            })"""
        )
    shown = json.loads(rendered)
    assert shown["final"] == "completed"
    assert shown["status"] == "completed"
    assert shown["percent"] == "100"
    assert shown["bar"] == 100
    assert shown["updates"] >= 4  # progress arrived along the way, not only the end (callbacks are on)
    assert shown["images"]
    assert all(src.startswith("http://127.0.0.1:") for src in shown["images"])
    assert "sk-evo" not in shown["html"]  # the page holds a task token, never the API key


async def test_a_forged_token_shows_no_progress_in_the_page() -> None:
    async with example_app("--time-scale", "0.2") as base:
        watch_url = await submit_through_the_form(base)
        forged = watch_url.split("token=")[0] + "token=1999999999.forged"
        async with aiohttp.ClientSession() as http:
            relay_url = forged.replace("/watch/", "/progress/")
            async with http.get(relay_url) as response:
                assert response.status == 403
