"""Running the CLI and a standalone sandbox as real processes, for CLI tests: public surfaces only.

The sandbox runs as its own process (``python -m evolink_async.sandbox``), its ledger is read
over HTTP (``GET {base_url}/_sandbox/ledger``), and the CLI runs as ``python -m evolink_async``.
Every wait here is bounded; a process that outlives its bound is killed and the test fails.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import queue
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
import urllib.request
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CLI = [sys.executable, "-m", "evolink_async"]
SANDBOX = [sys.executable, "-m", "evolink_async.sandbox"]
RESUME_HINT = "run the same command again to resume"


# --- images ---------------------------------------------------------------------------------


def png_bytes(width: int = 400, height: int = 400, *, shade: int = 90) -> bytes:
    """A valid RGB PNG (stdlib only); 400x400 fits qwen-image-edit's 384-3072 px rule."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\x00" + bytes((shade % 256, (shade * 3) % 256, 200)) * width
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(row * height)) + \
        chunk(b"IEND", b"")  # fmt: skip


def write_png(path: Path, width: int = 400, height: int = 400, *, shade: int = 90) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(width, height, shade=shade))
    return path


def make_inputs(folder: Path, count: int, *, prefix: str = "img") -> list[Path]:
    return [write_png(folder / f"{prefix}-{i:02d}.png", shade=i * 7) for i in range(count)]


# --- the sandbox, in its own process ---------------------------------------------------------


@dataclass
class SandboxProcess:
    process: subprocess.Popen[str]
    env: dict[str, str] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return self.env["EVOLINK_BASE_URL"]

    @property
    def files_base_url(self) -> str:
        return self.env["EVOLINK_FILES_BASE_URL"]

    @property
    def api_key(self) -> str:
        return self.env["EVOLINK_API_KEY"]

    def ledger(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.base_url + "/_sandbox/ledger", timeout=10) as response:
            data: dict[str, Any] = json.loads(response.read())
        return data

    def connect(self, *, api_key: str | None = None, poll_scale: float) -> list[str]:
        return ["--base-url", self.base_url, "--files-base-url", self.files_base_url,
                "--api-key", api_key or self.api_key, "--poll-scale", f"{poll_scale:g}"]  # fmt: skip


def _read_until_ready(process: subprocess.Popen[str], bound: float) -> list[str]:
    assert process.stdout is not None
    found: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            found.put(line.rstrip("\n"))
        found.put(None)

    threading.Thread(target=pump, daemon=True).start()
    lines: list[str] = []
    deadline = time.monotonic() + bound
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = found.get(timeout=left)
        except queue.Empty:
            break
        if line is None:
            break
        lines.append(line)
        if line.startswith("ready"):
            return lines
    raise AssertionError(f"the sandbox did not print 'ready' within {bound} s: {lines}")


@contextlib.contextmanager
def sandbox_process(*options: str, time_scale: float = 0.01, seed: int = 0) -> Iterator[SandboxProcess]:
    argv = [*SANDBOX, "--time-scale", f"{time_scale:g}", "--seed", str(seed), *options]
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True, start_new_session=True)  # fmt: skip
    try:
        lines = _read_until_ready(process, 30)
        env = dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("ready"))
        # Tolerate an `export ` prefix (item 22 asks for shell-pasteable lines).
        env = {k.removeprefix("export ").strip(): v.strip().strip("'\"") for k, v in env.items()}
        yield SandboxProcess(process=process, env=env, lines=lines)
    finally:
        stop(process)


def stop(process: subprocess.Popen[Any], bound: float = 10) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(bound)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(bound)


# --- the CLI ---------------------------------------------------------------------------------


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVOLINK_")}
    env.update({"PYTHONUNBUFFERED": "1", "COLUMNS": "200", **extra})
    return env


def run_cli(args: Sequence[str], *, bound: float = 60, env: dict[str, str] | None = None,
            cwd: Path | None = None) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """Run ``evolink ARGS`` to the end (stdout and stderr pipes); kill and fail after ``bound`` s."""
    try:
        return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=bound, env=env or cli_env(),
                              cwd=cwd, stdin=subprocess.DEVNULL)  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"`evolink {' '.join(args)}` did not finish within {bound} s; output: {exc.stdout!r}")


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def summary_of(text: str) -> dict[str, Any]:
    summaries = [e for e in json_lines(text) if e.get("kind") == "summary"]
    assert len(summaries) == 1, text
    return summaries[0]


class OutputReader(threading.Thread):
    """Drains a file descriptor (a pty master or a pipe) into ``data`` until EOF/EIO."""

    def __init__(self, fd: int) -> None:
        super().__init__(daemon=True)
        self.fd = fd
        self.chunks: list[bytes] = []
        self.lock = threading.Lock()

    def run(self) -> None:
        while True:
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:
                return
            if not chunk:
                return
            with self.lock:
                self.chunks.append(chunk)

    @property
    def data(self) -> bytes:
        with self.lock:
            return b"".join(self.chunks)


def wait_for(predicate: Any, bound: float, what: str, *, process: subprocess.Popen[Any] | None = None) -> None:
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        if predicate():
            return
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the process ended (status {process.returncode}) before {what}")
        time.sleep(0.05)
    raise AssertionError(f"not within {bound} s: {what}")


# --- a real terminal --------------------------------------------------------------------------


def _controlling_tty() -> None:  # runs in the child after setsid (start_new_session=True)
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def start_under_pty(argv: list[str]) -> tuple[subprocess.Popen[bytes], OutputReader, int]:
    """Start ``argv`` as a session leader on a fresh pseudo-terminal (a wide one: no wrapped lines),
    its output drained by an ``OutputReader``; returns the process, the reader and the pty master."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 250, 0, 0))  # wide: no wrapped lines
    env = cli_env(TERM="xterm-256color", COLUMNS="250", LINES="50")
    process = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True,
                               preexec_fn=_controlling_tty, close_fds=True)  # fmt: skip
    os.close(slave)
    reader = OutputReader(master)
    reader.start()
    return process, reader, master
