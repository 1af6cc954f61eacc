"""The fleet tests' way of running the CLI: plans, worker processes, exports (real processes, real PostgreSQL)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import anyio
import anyio.abc

from evolink_async.sandbox import Sandbox

__all__ = ["ENV", "evolink", "export", "manifest", "plan", "run_workers", "status", "work_argv"]

ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def connect(sandbox: Sandbox) -> list[str]:
    return ["--base-url", sandbox.base_url, "--files-base-url", sandbox.files_base_url,
            "--api-key", sandbox.api_key, "--poll-scale", "0.01"]  # fmt: skip


def manifest(path: Path, count: int, *, prompt: str = "autumn") -> Path:
    lines = [json.dumps({"key": f"in/{i:04d}.png", "model": "qwen-image-edit", "prompt": prompt,
                         "image_urls": [f"https://images.example.com/{i:04d}.png"]}) for i in range(count)]  # fmt: skip
    path.write_text("\n".join(lines) + "\n")
    return path


def evolink(*args: str) -> list[str]:
    return [sys.executable, "-m", "evolink_async", *args]


async def plan(url: str, source: Path) -> anyio.abc.Process | Any:
    with anyio.fail_after(60):
        return await anyio.run_process(evolink("batch", "plan", str(source), "--journal", url, "--json"),
                                       env=ENV, check=False)  # fmt: skip


def work_argv(tmp: Path, url: str, sandbox: Sandbox, out: Path | None, *extra: str) -> list[str]:
    # One write-ahead file per test (the workers of one test share it, as on one machine).
    argv = evolink("batch", "work", "--journal", url, "--lease", "2", "--poll-interval", "0.05", "--json",
                   "--wal", str(tmp / "fleet.wal"), *connect(sandbox), *extra)  # fmt: skip
    return argv + (["--out", str(out)] if out is not None else [])


async def run_workers(argvs: list[list[str]], *, timeout: float = 120) -> list[tuple[int, str, str]]:
    results: list[tuple[int, str, str]] = [(0, "", "")] * len(argvs)

    async def one(index: int) -> None:
        done = await anyio.run_process(argvs[index], env=ENV, check=False)
        results[index] = (done.returncode, done.stdout.decode(), done.stderr.decode())

    with anyio.fail_after(timeout):
        async with anyio.create_task_group() as group:
            for index in range(len(argvs)):
                group.start_soon(one, index)
    return results


async def export(url: str) -> list[dict[str, Any]]:
    with anyio.fail_after(60):
        done = await anyio.run_process(evolink("batch", "export", "--journal", url), env=ENV, check=False)
    assert done.returncode == 0, done.stderr.decode()
    return [json.loads(line) for line in done.stdout.decode().splitlines()]


async def status(url: str) -> dict[str, Any]:
    with anyio.fail_after(60):
        done = await anyio.run_process(evolink("batch", "status", "--journal", url, "--json"), env=ENV, check=False)
    assert done.returncode == 0, done.stderr.decode()
    status: dict[str, Any] = json.loads(done.stdout.decode())
    return status


