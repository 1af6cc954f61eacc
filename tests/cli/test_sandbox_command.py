"""``evolink sandbox`` (and ``python -m evolink_async.sandbox``) as a command: what it does when it
cannot listen, or nobody reads what it prints. Its numeric options: tests/cli/test_numeric_options.py.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest


def test_evolink_sandbox_on_a_port_in_use_exits_2_naming_it() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "evolink_async", "sandbox", "--port", str(port)],
                              capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("evolink: sandbox: cannot listen: "), done.stderr
    assert f"--port {port}" in done.stderr
    assert len(done.stderr.splitlines()) == 1, done.stderr


@pytest.mark.parametrize("command", [["-m", "evolink_async", "sandbox"], ["-m", "evolink_async.sandbox"]])
def test_a_sandbox_whose_output_nobody_reads_exits_141_without_a_traceback(command: list[str]) -> None:
    # `evolink sandbox | head -1`, made certain: the pipe's reader is gone before the first line.
    reader, writer = os.pipe()
    os.close(reader)
    try:
        done = subprocess.run([sys.executable, *command], stdout=writer, stderr=subprocess.PIPE, text=True,
                              timeout=60, stdin=subprocess.DEVNULL)  # fmt: skip
    finally:
        os.close(writer)
    assert done.returncode == 141, done.stderr
    assert "Traceback" not in done.stderr, done.stderr

