"""Command lines that cannot run end with exit 2 and one ``evolink:`` line saying why: never a
traceback, never a password, never a read until memory runs out. And the lines a run ends with
say what is true (a task that does not exist, credits a proxy never reports).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import anyio.to_thread
import pytest

import evolink_async as evolink
from evolink_async.cli import main
from evolink_async.sandbox import Sandbox
from tests.helpers.cli import json_lines, run_cli, sandbox_process, summary_of
from tests.helpers.images import write_png

KEY = "sk-evo-TESTKEY0123456789abcdef"
PASSWORD = "s3cr3t-pa55"  # a made-up password that must never be printed


def _evolink(*args: str, bound: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EVOLINK_", "MJ_PROXY_"))}
    return subprocess.run([sys.executable, "-m", "evolink_async", *args], capture_output=True, text=True,
                          timeout=bound, env=env, stdin=subprocess.DEVNULL)  # fmt: skip


def _one_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("evolink: "), done.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("url", "says"),
    [
        (f"postgresql://app:{PASSWORD}@db.example:99999/edits", "port"),
        (f"postgresql://app:{PASSWORD}@db.example:notaport/edits", "port"),
        (f"postgresql://app:{PASSWORD}@[::1/edits", "not a valid URL"),
        (f"postgresql://app:{PASSWORD}@127.0.0.1/edits?sslmode=bogus", "sslmode"),
        (f"postgresql://app@127.0.0.1/edits?password={PASSWORD}&sslmode=bogus", "sslmode"),
    ],
    ids=["port-out-of-range", "port-not-a-number", "unclosed-bracket", "sslmode", "password-parameter"],
)
@pytest.mark.parametrize("operation", ["status", "export", "work"])
def test_a_bad_journal_url_is_one_line_without_the_password(url: str, says: str, operation: str) -> None:
    line = _one_line(_evolink("batch", operation, "--journal", url))
    assert says in line, line
    assert PASSWORD not in line, line


def test_out_naming_a_file_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("not a folder")
    write_png(tmp_path / "in" / "a.png")
    for argv in (["imagine", "a fox", "--out", str(tmp_path / "taken"), "--api-key", KEY,
                  "--base-url", "http://127.0.0.1:9"],
                 ["edit", str(tmp_path / "in"), "--prompt", "autumn", "--out", str(tmp_path / "taken"),
                  "--api-key", KEY, "--base-url", "http://127.0.0.1:9"]):  # fmt: skip
        line = _one_line(_evolink(*argv))
        assert "is a file, not a folder" in line, line


def _unwritable_out(tmp_path: Path) -> Path:
    """An ``--out`` this process cannot write into, made in ``tmp_path``.

    A folder of mode 0o555 where its mode stops us (the case a user met: ``.evolink-batch.lock``
    cannot be created). Root ignores modes (CAP_DAC_OVERRIDE: the probe file below gets made), and
    the suite may run as root in a container; there the folder is one that cannot be made at all, a
    path under a regular file (mkdir fails with ENOTDIR, for root too). Both reach the same place, an
    OSError of the output folder, which must be exit 2 and one line naming the path.
    """
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        (folder / "probe").touch()
    except PermissionError:
        return folder
    (folder / "probe").unlink()
    folder.chmod(0o755)
    blocker = tmp_path / "a-regular-file"
    blocker.write_text("not a folder")
    return blocker / "out"


def test_an_out_folder_that_cannot_be_written_is_a_usage_error(tmp_path: Path) -> None:
    write_png(tmp_path / "in" / "a.png")
    out = _unwritable_out(tmp_path)
    try:
        line = _one_line(_evolink("edit", str(tmp_path / "in"), "--prompt", "autumn", "--out", str(out),
                                  "--api-key", KEY, "--base-url", "http://127.0.0.1:9"))  # fmt: skip
    finally:
        if out.is_dir():
            out.chmod(0o755)  # so that pytest can clean tmp_path up
    assert str(out) in line, line


@pytest.mark.parametrize("make", [evolink.EvolinkClient, evolink.MidjourneyClient])
def test_an_unclosed_ipv6_bracket_in_base_url_is_a_validation_error(make: type) -> None:
    with pytest.raises(evolink.ValidationError) as info:
        make(KEY, base_url="http://[::1")
    assert info.value.field == "base_url"


def test_an_unclosed_ipv6_bracket_in_a_callback_url_is_a_validation_error() -> None:
    with pytest.raises(evolink.ValidationError) as info:
        evolink.CallbackReceiver("https://[::1/hooks")
    assert info.value.field == "public_url"


# --- secret files (item 4) -------------------------------------------------------------------


@pytest.mark.parametrize("flag", ["--api-key-file", "--callback-secret-file"])
def test_dev_zero_as_a_secret_file_is_refused_not_read_for_ever(tmp_path: Path, flag: str) -> None:
    write_png(tmp_path / "in" / "a.png")
    extra = ["--callbacks", "https://hooks.example.com/e", "--listen", "127.0.0.1:9"] \
        if flag == "--callback-secret-file" else []  # fmt: skip
    line = _one_line(_evolink("edit", str(tmp_path / "in"), "--prompt", "autumn", "--out", str(tmp_path / "out"),
                              *extra, flag, "/dev/zero"))  # fmt: skip
    assert "larger than 64 KiB" in line, line


def test_a_big_secret_file_is_refused_and_its_content_never_shown(tmp_path: Path) -> None:
    big = tmp_path / "key.txt"
    big.write_text("sk-evo-" + "k" * (70 * 1024) + "\n")
    line = _one_line(_evolink("status", "task-1", "--api-key-file", str(big)))
    assert "larger than 64 KiB" in line, line
    assert "kkkk" not in line, line


def test_a_secret_file_just_under_the_bound_is_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key_file = tmp_path / "key.txt"
    key_file.write_text(KEY + "\n" + "#" * (60 * 1024) + "\n")
    # The key is read and used: the refused connection (nothing listens on port 9) is the next error.
    code = main(["status", "task-1", "--api-key-file", str(key_file), "--base-url", "http://127.0.0.1:9"])
    err = capsys.readouterr().err
    assert code == 2, err  # the command could not reach its server: configuration, as a 404 URL is
    assert "APIUnreachableError" in err, err  # nothing listens there: no connection was made
    assert "Nothing was submitted" not in err  # a query, not a run over inputs


# --- what a run says (item 14) -----------------------------------------------------------------


@pytest.mark.evolink_sandbox(time_scale=0.01)
async def test_status_of_a_task_the_server_does_not_know_says_so(evolink_sandbox: Sandbox) -> None:
    # The sandbox serves from this test's event loop: the command runs without blocking it.
    done = await anyio.to_thread.run_sync(lambda: _evolink(
        "status", "task-unified-1700000000-nosuchid", "--base-url", evolink_sandbox.base_url, "--files-base-url",
        evolink_sandbox.files_base_url, "--api-key", evolink_sandbox.api_key))  # fmt: skip
    line = _one_line(done)
    assert "task task-unified-1700000000-nosuchid not found" in line, line
    assert "HTTP" not in line, line


def test_mj_action_on_a_task_the_proxy_does_not_know_says_so_and_imagine_reports_no_false_credits(
    tmp_path: Path,
) -> None:
    with sandbox_process(time_scale=0.01) as box:
        connect = ["--base-url", box.env["MJ_PROXY_BASE_URL"], "--api-key", box.env["MJ_PROXY_API_KEY"],
                   "--poll-scale", "0.01"]  # fmt: skip
        line = _one_line(run_cli(["mj-action", "123", "U2", *connect], bound=60))
        assert "task 123 not found" in line, line
        assert "HTTP 200" not in line, line
        plain = run_cli(["imagine", "a fox", "--count", "2", "--out", str(tmp_path / "a"), *connect], bound=90)
        as_json = run_cli(["imagine", "a fox", "--out", str(tmp_path / "b"), "--json", *connect], bound=90)
        charged = box.ledger()["credits_charged"]
    assert charged > 0  # the proxy charged, and never said how much to the client
    assert plain.returncode == 0, plain.stdout + plain.stderr
    assert "0 credits reserved" not in plain.stdout, plain.stdout
    assert "credits not reported" in plain.stdout, plain.stdout
    assert as_json.returncode == 0, as_json.stdout + as_json.stderr
    assert summary_of(as_json.stdout)["credits_reserved"] is None, json_lines(as_json.stdout)[-1]


def test_an_empty_demo_folder_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = set(Path.cwd().iterdir())
    assert main(["demo", "--dir", ""]) == 2  # "" would put inputs/ and results/ in the current folder
    assert "--dir must name a folder" in capsys.readouterr().err
    assert set(Path.cwd().iterdir()) == before


@pytest.mark.parametrize(
    ("options", "env", "named"),
    [
        (["--glob", ""], {}, "--glob: "),
        (["--base-url", "ftp://x"], {}, "--base-url: "),
        (["--files-base-url", "http://[::1"], {}, "--files-base-url: "),
        (["--model", ""], {}, "--model: "),
        (["--api-key", "short"], {}, "--api-key: "),
        (["--api-key-file", "{key_file}"], {}, "--api-key-file: "),
        ([], {"EVOLINK_API_KEY": "short"}, "$EVOLINK_API_KEY: "),
        (["--api-key", ""], {"EVOLINK_API_KEY": KEY}, "--api-key: is empty"),
        ([], {"EVOLINK_BASE_URL": ""}, "$EVOLINK_BASE_URL: is set but empty"),
    ],
    ids=["glob", "base-url", "files-base-url", "model", "api-key", "api-key-file", "api-key-variable",
         "empty-api-key-beside-the-variable", "empty-base-url-variable"],
)
def test_a_bad_value_is_named_as_the_command_line_gave_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    options: list[str], env: dict[str, str], named: str,
) -> None:  # fmt: skip
    """The library's field (``pattern``, ``base_url``, ``api_key``) is the flag, file or variable the user set."""
    key_file = tmp_path / "key"
    key_file.write_text("short\n")
    for name in [name for name in os.environ if name.startswith("EVOLINK_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    if "EVOLINK_API_KEY" not in env and "--api-key" not in options and "--api-key-file" not in options:
        options = [*options, "--api-key", KEY]
    options = [option.replace("{key_file}", str(key_file)) for option in options]
    (tmp_path / "in").mkdir()
    code = main(["edit", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--prompt", "x", *options])
    lines = capsys.readouterr().err.splitlines()
    assert code == 2
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"evolink: {named}"), lines
    assert KEY not in lines[0]


@pytest.mark.parametrize("command", ["status", "watch", "download"])
async def test_a_malformed_task_id_is_a_usage_error(evolink_sandbox: Sandbox, tmp_path: Path, command: str) -> None:
    """The server answers 400 (invalid_task_id) to a query of a malformed id: the command line is wrong (2), not the run (1)."""
    extra = ["--out", str(tmp_path / "out")] if command == "download" else []
    done = await anyio.to_thread.run_sync(lambda: _evolink(
        command, "nosuch", *extra, "--base-url", evolink_sandbox.base_url, "--api-key", evolink_sandbox.api_key,
    ))  # fmt: skip
    line = _one_line(done)
    assert "nosuch" in line
    assert "invalid_task_id" in line


async def test_a_wrong_midjourney_path_prefix_names_the_prefix_too(mj_sandbox: Sandbox, tmp_path: Path) -> None:
    """A 404 from a Midjourney proxy's route may be the host or the routes' prefix: the line names both flags."""
    done = await anyio.to_thread.run_sync(lambda: _evolink(
        "imagine", "a red fox", "--out", str(tmp_path / "out"), "--path-prefix", "abc",
        "--base-url", mj_sandbox.mj_base_url, "--api-key", mj_sandbox.mj_api_key,
    ))  # fmt: skip
    line = _one_line(done)
    assert "check --base-url and --path-prefix" in line
    assert mj_sandbox.ledger.billed == []
