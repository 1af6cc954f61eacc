"""``evolink edit --metrics-port``: Prometheus text on loopback while the batch runs, in-flight tasks shown."""

from __future__ import annotations

import re
from pathlib import Path

import aiohttp
import anyio
import pytest

from evolink_async.cli import main
from evolink_async.sandbox import Sandbox
from tests.helpers.images import write_png
from tests.helpers.prometheus import parse_totals


@pytest.mark.evolink_sandbox(time_scale=0.02, seed=2)
async def test_a_scrape_during_edit_shows_tasks_in_flight(
    evolink_sandbox: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for index in range(6):
        write_png(tmp_path / "in" / f"{index}.png", shade=index * 30)
    # Port 0: the command binds a free port and prints it (one chosen here could be taken before it binds).
    argv = ["edit", str(tmp_path / "in"), "--prompt", "autumn", "--out", str(tmp_path / "out"), "--json",
            "--base-url", evolink_sandbox.base_url, "--files-base-url", evolink_sandbox.files_base_url,
            "--api-key", evolink_sandbox.api_key, "--poll-scale", "0.02", "--metrics-port", "0"]
    scrapes: list[dict[str, float]] = []
    printed: list[str] = []
    ports: list[int] = []

    async def scrape_until_in_flight() -> None:
        async with aiohttp.ClientSession() as session:
            while not ports:  # the line the command prints once it listens
                printed.append(capsys.readouterr().err)
                found = re.search(r"metrics on http://127\.0\.0\.1:(\d+)/metrics", "".join(printed))
                if found:
                    ports.append(int(found[1]))
                await anyio.sleep(0.02)
            while not scrapes or scrapes[-1].get("evolink_tasks_in_flight", 0) == 0:
                try:
                    async with session.get(f"http://127.0.0.1:{ports[0]}/metrics") as resp:
                        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
                        scrapes.append(parse_totals(await resp.text()))
                except aiohttp.ClientConnectionError:
                    pass  # not listening yet
                await anyio.sleep(0.02)

    async with anyio.create_task_group() as group:
        group.start_soon(scrape_until_in_flight)
        with anyio.fail_after(60):
            code = await anyio.to_thread.run_sync(main, argv)
        group.cancel_scope.cancel()  # the run is over: the scraper has seen tasks in flight or never will
    assert code == 0
    in_flight = [s for s in scrapes if s.get("evolink_tasks_in_flight", 0) > 0]
    assert in_flight, scrapes[-3:]
    assert 0 < in_flight[0]["evolink_tasks_in_flight"] <= 6
    assert in_flight[0]["evolink_credits_reserved_total"] > 0
    with pytest.raises(aiohttp.ClientConnectionError):  # the server stopped with the run
        async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{ports[0]}/metrics"):
            pass


def test_a_bad_metrics_port_is_a_usage_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["edit", str(tmp_path), "--prompt", "x", "--out", str(tmp_path / "o"), "--metrics-port", "70000"])
    assert exit_info.value.code == 2
    assert "--metrics-port" in capsys.readouterr().err
