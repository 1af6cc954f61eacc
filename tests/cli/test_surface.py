"""The CLI's and SDK's outer surface: help, --api-key-file, pipes, umask, sandbox, download, files, Ctrl-C in `evolink demo`."""

from __future__ import annotations

import asyncio
import re
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

import evolink_async as evolink
from evolink_async.sandbox import Sandbox
from tests.helpers.cli import (
    CLI,
    cli_env,
    make_inputs,
    run_cli,
    sandbox_process,
    stop,
    write_png,
)

FAST = 0.01
README = Path(__file__).resolve().parents[2] / "README.md"


def _edit(tmp: Path, out: str, *extra: str) -> list[str]:
    return ["edit", str(tmp / "in"), "--prompt", "make it autumn", "--out", str(tmp / out), *extra]


def _connect_without_key(sandbox: object, scale: float = FAST) -> list[str]:
    return ["--base-url", sandbox.base_url, "--files-base-url", sandbox.files_base_url,  # type: ignore[attr-defined]
            "--poll-scale", f"{scale:g}"]  # fmt: skip


# --- item 16 --------------------------------------------------------------------------------


def test_help_warns_about_api_key_and_documents_api_key_file() -> None:
    shown = run_cli(["edit", "--help"], bound=30)
    assert shown.returncode == 0
    text = " ".join(shown.stdout.split())  # argparse wraps help lines
    assert "--api-key-file" in text, text
    assert "process list" in text.lower(), "the --api-key help must say it is visible in the process list"


def test_api_key_file_reads_the_key_and_strips_the_newline(tmp_path: Path) -> None:
    write_png(tmp_path / "in" / "a.png")
    with sandbox_process("--api-key", "sk-evo-from-a-file-0123456789", time_scale=FAST) as sandbox:
        key_file = tmp_path / "key.txt"
        key_file.write_text(sandbox.api_key + "\n")
        result = run_cli([*_edit(tmp_path, "out"), *_connect_without_key(sandbox), "--api-key-file", str(key_file)],
                         bound=45)  # fmt: skip
        billed = sandbox.ledger()["billed"]
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(billed) == 1
    assert sandbox.api_key not in result.stdout + result.stderr


# --- item 21 --------------------------------------------------------------------------------


def _readme_pytest_example() -> str:
    section = README.read_text().split("## Testing your code offline", 1)[1]
    (block,) = re.findall(r"```python\n(.*?)```", section.split("\n## ", 1)[0], flags=re.S)[:1]
    assert "evolink_sandbox" in block
    return block


def test_readme_pytest_example_passes_in_strict_asyncio_mode(tmp_path: Path) -> None:
    project = tmp_path / "user-project"
    project.mkdir()
    (project / "test_readme_example.py").write_text(_readme_pytest_example())
    (project / "pytest.ini").write_text("[pytest]\nasyncio_mode = strict\n")
    try:
        result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                                cwd=project, capture_output=True, text=True, timeout=120, env=cli_env())  # fmt: skip
    except subprocess.TimeoutExpired:
        pytest.fail("the README example's pytest run did not finish within 120 s")
    assert result.returncode == 0, result.stdout[-1500:] + result.stderr[-1000:]
    assert "1 passed" in result.stdout


# --- item 22 --------------------------------------------------------------------------------


def test_json_into_a_closed_pipe_prints_no_broken_pipe_traceback(tmp_path: Path) -> None:
    make_inputs(tmp_path / "in", 6)
    with sandbox_process(time_scale=FAST) as sandbox:
        process = subprocess.Popen([*CLI, *_edit(tmp_path, "out", "--json"), *sandbox.connect(poll_scale=FAST)],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                   env=cli_env(), start_new_session=True)  # fmt: skip
        try:
            assert process.stdout is not None
            assert process.stderr is not None
            first = process.stdout.readline()  # `| head -1`
            process.stdout.close()
            try:
                stderr = process.stderr.read()  # ends when the process does
                process.wait(60)
            except subprocess.TimeoutExpired:
                pytest.fail("the CLI did not end within 60 s after its stdout was closed")
        finally:
            stop(process)
    assert first.startswith(b"{")
    text = stderr.decode(errors="replace")
    assert "BrokenPipeError" not in text, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    assert "interrupted" not in text, text[-3000:]  # nobody pressed Ctrl-C


def test_a_wrong_api_key_exits_2_with_a_message_about_the_key(tmp_path: Path) -> None:
    write_png(tmp_path / "in" / "a.png")
    with sandbox_process("--api-key", "sk-evo-the-right-key-0123456789", time_scale=FAST) as sandbox:
        result = run_cli([*_edit(tmp_path, "out"), *_connect_without_key(sandbox),
                          "--api-key", "sk-evo-a-wrong-key-9876543210"], bound=45)  # fmt: skip
    shown = result.stdout + result.stderr
    assert result.returncode == 2, f"exit {result.returncode}: {shown[-2000:]}"
    assert "key" in result.stderr.lower(), result.stderr
    assert "interrupted" not in shown.lower(), shown[-2000:]


def test_results_honour_the_umask(tmp_path: Path) -> None:
    make_inputs(tmp_path / "in", 2)
    with sandbox_process(time_scale=FAST) as sandbox:
        try:
            result = subprocess.run([*CLI, *_edit(tmp_path, "out"), *sandbox.connect(poll_scale=FAST)],
                                    capture_output=True, text=True, timeout=45, env=cli_env(), umask=0o022)  # fmt: skip
        except subprocess.TimeoutExpired:
            pytest.fail("the CLI did not finish within 45 s")
    assert result.returncode == 0, result.stdout + result.stderr
    saved = [p for p in (tmp_path / "out").iterdir() if "result" in p.name and not p.name.startswith(".")]
    assert len(saved) == 2
    modes = {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in saved}
    assert set(modes.values()) == {"0o644"}, modes


def test_evolink_sandbox_prints_shell_lines_and_its_own_name() -> None:
    process = subprocess.Popen([*CLI, "sandbox", "--time-scale", "0.01"], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True, env=cli_env(),
                               start_new_session=True)  # fmt: skip
    lines: list[str] = []
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line or line.startswith("ready"):
                break
            lines.append(line.rstrip("\n"))
    finally:
        stop(process)
    assert lines, "`evolink sandbox` printed nothing before ready"
    for name in ("EVOLINK_BASE_URL", "EVOLINK_FILES_BASE_URL", "EVOLINK_API_KEY"):
        assert any(re.fullmatch(rf"export {name}=\S+", line) for line in lines), lines
    shown = run_cli(["sandbox", "--help"], bound=30)
    assert shown.returncode == 0
    assert "evolink sandbox" in shown.stdout, shown.stdout
    assert "python -m evolink_async.sandbox" not in shown.stdout, shown.stdout


# --- item 23 --------------------------------------------------------------------------------


def test_download_command_saves_a_completed_tasks_results(tmp_path: Path) -> None:
    with sandbox_process(time_scale=FAST) as sandbox:

        async def make_task() -> str:
            async with evolink.EvolinkClient(sandbox.api_key, base_url=sandbox.base_url,
                                             files_base_url=sandbox.files_base_url,
                                             poll_policy=evolink.PollPolicy().scaled(FAST)) as client:  # fmt: skip
                task = await client.images.submit(
                    evolink.QwenImageEdit(prompt="make it blue", image_urls=["https://example.com/in.png"])
                )
                done = await client.tasks.wait(task, timeout=30)
            return done.id

        task_id = asyncio.run(asyncio.wait_for(make_task(), 45))
        result = run_cli(["download", task_id, "--out", str(tmp_path / "got"), *sandbox.connect(poll_scale=FAST)],
                         bound=45)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    saved = [p for p in (tmp_path / "got").iterdir() if not p.name.startswith(".")]
    assert saved
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in saved), saved


async def test_files_list_quota_and_delete_against_the_sandbox(evolink_sandbox: Sandbox, tmp_path: Path) -> None:
    image = write_png(tmp_path / "cat.png")
    async with asyncio.timeout(30):
        async with evolink.EvolinkClient(evolink_sandbox.api_key, base_url=evolink_sandbox.base_url,
                                         files_base_url=evolink_sandbox.files_base_url) as client:  # fmt: skip
            uploaded = await client.files.upload(image)
            listed = await client.files.list()
            assert uploaded.file_id in [f.file_id for f in listed]
            quota = await client.files.quota()
            assert quota is not None
            await client.files.delete(uploaded.file_id)
            assert uploaded.file_id not in [f.file_id for f in await client.files.list()]


# --- found trying the CLI as a new user -------------------------------------------------------


def test_a_missing_input_folder_is_a_usage_error_without_a_results_summary(tmp_path: Path) -> None:
    """A typo in DIR: exit 2 and say so; no '0/0 input(s) have results in OUT' line implying a run happened."""
    result = run_cli(["edit", str(tmp_path / "no-such-folder"), "--prompt", "x", "--out", str(tmp_path / "out"),
                      "--api-key", "sk-evo-unused-0123456789"], bound=30)  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    assert "not a folder" in result.stderr
    assert "have results" not in result.stdout, result.stdout
