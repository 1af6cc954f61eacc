"""Helpers for the upload tests: a folder of inputs, the CLI against a sandbox, its JSON lines."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from evolink_async.sandbox import Sandbox
from tests.helpers.images import png_bytes


def write_inputs(folder: Path, count: int) -> list[Path]:
    """``count`` small valid PNGs (400x400: inside qwen-image-edit's 384-3072 px)."""
    folder.mkdir(parents=True, exist_ok=True)
    data = png_bytes(400, 400)
    paths = [folder / f"{index:03d}.png" for index in range(count)]
    for path in paths:
        path.write_bytes(data)
    return paths


def connect(sandbox: Sandbox) -> list[str]:
    return ["--base-url", sandbox.base_url, "--files-base-url", sandbox.files_base_url,
            "--api-key", sandbox.api_key, "--poll-scale", "0.01"]  # fmt: skip


def edit_argv(sandbox: Sandbox, inputs: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "evolink_async", "edit", str(inputs), "--prompt", "autumn", "--out", str(out),
            "--json", *extra, *connect(sandbox)]  # fmt: skip


def cli_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1", **extra}


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]
