"""A documented ``--timeout`` bounds the command against a server that takes requests and never
answers them (a proxy stuck upstream): the command ends, saying so, instead of waiting out the
client's 60 s per attempt times its retries (once 306 s for ``imagine --timeout 5``).

The bound below is the test's own guard against a hang, far above the timeouts given; nothing is
asserted about how long a command took.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import anyio

from evolink_async.sandbox import Sandbox
from tests.helpers.images import write_png
from tests.helpers.silent_host import silent_host

KEY = "sk-evo-TESTKEY0123456789abcdef"
GUARD = 120  # seconds: a command still running then hangs (the old code took 240 s and more)
ENV = {k: v for k, v in os.environ.items() if not k.startswith(("EVOLINK_", "MJ_PROXY_"))}


async def _evolink(*args: str) -> tuple[int, str, str]:
    with anyio.fail_after(GUARD):
        done = await anyio.run_process([sys.executable, "-m", "evolink_async", *args], env=ENV, check=False)
    return done.returncode, done.stdout.decode(), done.stderr.decode()


async def test_imagine_timeout_bounds_a_submit_that_is_never_answered(tmp_path: Path) -> None:
    async with silent_host() as proxy:
        code, out, err = await _evolink("imagine", "a red fox", "--out", str(tmp_path / "out"), "--timeout", "2",
                                        "--base-url", proxy.url, "--api-key", KEY)  # fmt: skip
        assert proxy.requests, "the submit never reached the proxy"
    assert code == 1, out + err
    assert "within the timeout (2 s)" in out, out  # the input's failure says why
    assert "Traceback" not in err


async def test_mj_action_timeout_bounds_the_whole_command(tmp_path: Path) -> None:
    async with silent_host() as proxy:
        code, out, err = await _evolink("mj-action", "1712345678901123", "U2", "--timeout", "2",
                                        "--base-url", proxy.url, "--api-key", KEY)  # fmt: skip
        assert proxy.requests
    assert code == 1, out + err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("evolink: "), err
    assert "--timeout 2 s" in lines[0], err


async def test_watch_timeout_bounds_queries_that_are_never_answered() -> None:
    async with silent_host() as api:
        code, out, err = await _evolink("watch", "task-1", "--timeout", "2", "--base-url", api.url,
                                        "--files-base-url", api.url, "--api-key", KEY)  # fmt: skip
        assert api.requests
    assert code == 1, out + err
    assert "Traceback" not in err


async def test_edit_timeout_bounds_an_upload_that_is_never_answered(tmp_path: Path) -> None:
    write_png(tmp_path / "in" / "a.png")
    async with silent_host() as host:
        code, out, err = await _evolink("edit", str(tmp_path / "in"), "--prompt", "autumn", "--out",
                                        str(tmp_path / "out"), "--timeout", "2", "--base-url", host.url,
                                        "--files-base-url", host.url, "--api-key", KEY)  # fmt: skip
        assert host.requests
    assert code == 1, out + err
    assert "Traceback" not in err


async def test_edit_timeout_bounds_a_submit_that_is_never_answered(evolink_sandbox: Sandbox, tmp_path: Path) -> None:
    write_png(tmp_path / "in" / "a.png")
    async with silent_host() as tasks:
        code, out, err = await _evolink("edit", str(tmp_path / "in"), "--prompt", "autumn", "--out",
                                        str(tmp_path / "out"), "--timeout", "2", "--base-url", tasks.url,
                                        "--files-base-url", evolink_sandbox.files_base_url,
                                        "--api-key", evolink_sandbox.api_key)  # fmt: skip
        assert ("POST", "/v1/images/generations") in tasks.requests, tasks.requests
    assert code == 1, out + err
    assert "within the timeout (2 s)" in out, out
