"""The ``evolink`` command line: demo, JSON lines, exit codes, and a kill -9 resume with zero double bills."""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from evolink_async import EvolinkClient, RemoveBackground
from evolink_async._files.image_probe import ImageFormat, probe_image
from evolink_async.cli import main
from evolink_async.sandbox import Sandbox
from tests.helpers.images import write_png

Build = Callable[..., EvolinkClient]
SECRET_KEY = "sk-evo-NEVER-PRINT-THIS-0123456789"


def _json_lines(text: str) -> list[dict[str, object]]:
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines
    return [json.loads(line) for line in lines]  # every line parses on its own


def _connect(sandbox: Sandbox) -> list[str]:
    return ["--base-url", sandbox.base_url, "--files-base-url", sandbox.files_base_url,
            "--api-key", sandbox.api_key, "--poll-scale", "0.01"]  # fmt: skip


def test_demo_produces_real_image_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["demo", "--dir", str(tmp_path / "demo"), "--count", "3", "--time-scale", "0.02", "--json"])
    events = _json_lines(capsys.readouterr().out)
    assert code == 0
    (summary,) = [e for e in events if e["kind"] == "summary"]
    assert summary["ok"] is True
    results = sorted((tmp_path / "demo" / "results").glob("*.result-0.png"))
    assert len(results) == 3
    for path in results:
        info = probe_image(path)
        assert info.format is ImageFormat.PNG
        assert info.width >= 384
    assert json.loads((tmp_path / "demo" / "results" / "summary.json").read_text())["downloaded"] == 3


async def test_json_lines_exit_code_and_failed_inputs(
    evolink_sandbox: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_png(tmp_path / "in" / "a.png")
    (tmp_path / "in" / "broken.png").write_bytes(b"no image")
    argv = ["remove-bg", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--json", *_connect(evolink_sandbox)]
    code = await anyio.to_thread.run_sync(main, argv)
    events = _json_lines(capsys.readouterr().out)
    assert code == 1
    summary = events[-1]
    assert summary["kind"] == "summary"
    assert summary["failed"] == [{"key": "broken.png", "code": "invalid_input", "message": summary["failed"][0]["message"]}]  # type: ignore[index]
    assert {e["kind"] for e in events} >= {"found", "submitted", "completed", "downloaded", "failed", "summary"}
    assert (tmp_path / "out" / "a.png.result-0.png").exists()


async def test_dry_run_prints_the_estimate_and_spends_nothing(
    evolink_sandbox: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("a.png", "b.png"):
        write_png(tmp_path / "in" / name)
    argv = ["retexture", str(tmp_path / "in"), "--prompt", "neon", "--speed", "turbo", "--out", str(tmp_path / "out"),
            "--dry-run", *_connect(evolink_sandbox)]  # fmt: skip
    code = await anyio.to_thread.run_sync(main, argv)
    out = capsys.readouterr().out
    assert code == 0
    assert "2 would be submitted" in out
    assert "about 7.2 credits" in out  # 2 x 1.8, doubled for turbo
    assert sum(evolink_sandbox.ledger.requests.values()) == 0


def test_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EVOLINK_API_KEY", raising=False)
    write_png(tmp_path / "in" / "a.png")
    assert main(["remove-bg", str(tmp_path / "in"), "--out", str(tmp_path / "out")]) == 2
    assert "evolink demo" in capsys.readouterr().err
    long_prompt = "x" * 1001
    assert main(["edit", str(tmp_path / "in"), "--prompt", long_prompt, "--out", str(tmp_path / "o")]) == 2
    assert "prompt" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["edit", str(tmp_path / "in"), "--out", "o"])  # --prompt missing
    assert info.value.code == 2


async def test_the_key_is_never_printed(
    evolink_sandbox: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_png(tmp_path / "in" / "a.png")
    argv = ["remove-bg", str(tmp_path / "in"), "--out", str(tmp_path / "out"),
            *_connect(evolink_sandbox)[:-4], "--api-key", SECRET_KEY]  # fmt: skip
    code = await anyio.to_thread.run_sync(main, argv)
    captured = capsys.readouterr()
    assert code == 2  # a wrong key is bad configuration (trust item 22), not a failed input
    assert "AuthenticationError" in captured.err
    assert SECRET_KEY not in captured.out + captured.err
    assert SECRET_KEY.encode() not in b"".join(p.read_bytes() for p in (tmp_path / "out").iterdir() if p.is_file())


async def test_status_and_watch(
    evolink_sandbox: Sandbox, scaled_client: Build, capsys: pytest.CaptureFixture[str]
) -> None:
    async with scaled_client(evolink_sandbox) as client:
        task = await client.images.submit(RemoveBackground(image_urls=["https://example.com/a.png"]))
    code = await anyio.to_thread.run_sync(main, ["watch", task.id, "--json", *_connect(evolink_sandbox)])
    events = _json_lines(capsys.readouterr().out)
    assert code == 0
    assert events[-1]["kind"] == "completed"
    assert events[-1]["results"]
    code = await anyio.to_thread.run_sync(main, ["status", task.id, *_connect(evolink_sandbox)])
    assert code == 0
    assert f"{task.id}  completed  100%" in capsys.readouterr().out


@pytest.mark.evolink_sandbox(time_scale=0.03)
async def test_kill_9_then_resume_bills_every_input_exactly_once(evolink_sandbox: Sandbox, tmp_path: Path) -> None:
    count = 8
    for index in range(count):
        write_png(tmp_path / "in" / f"{index:02d}.png", shade=index * 20)
    argv = [sys.executable, "-m", "evolink_async", "edit", str(tmp_path / "in"), "--prompt", "autumn",
            "--out", str(tmp_path / "out"), "--max-in-flight", "2", "--json", *_connect(evolink_sandbox)]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    ledger = evolink_sandbox.ledger
    process = await anyio.open_process(argv, env=env)
    try:
        with anyio.fail_after(30):
            while len(ledger.billed) < 3:  # mid-batch: some tasks done, some running, most not submitted
                await anyio.sleep(0.02)
    finally:
        process.send_signal(signal.SIGKILL)
        await process.wait()
    assert process.returncode == -signal.SIGKILL
    billed_before = len(ledger.billed)
    assert billed_before < count

    with anyio.fail_after(60):
        second = await anyio.run_process(argv, env=env, check=False)
    assert second.returncode == 0, second.stderr.decode()
    events = _json_lines(second.stdout.decode())
    summary = events[-1]
    assert summary["ok"] is True
    # Zero new submits for inputs that had a task; an input killed between its submit and the journal
    # write of its task id is resubmitted with the same key and body, and the server answers a replay.
    assert summary["submitted"] == count - billed_before + ledger.replays
    assert len(ledger.billed) == len(set(ledger.billed)) == count  # ...and every input billed exactly once
    assert ledger.requests["POST /v1/images/generations"] >= count
    results = sorted(p.name for p in (tmp_path / "out").glob("*.result-*.png"))
    assert results == [f"{index:02d}.png.result-0.png" for index in range(count)]


async def test_an_unreadable_sub_folder_is_listed_and_exits_1(
    evolink_sandbox: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``os.scandir`` raises ``PermissionError`` for ``locked/`` (root would read a ``chmod 000``
    folder anyway): the run saves ``a.png``, names the folder in the summary, and exits 1, no traceback."""
    write_png(tmp_path / "in" / "a.png")
    write_png(tmp_path / "in" / "locked" / "b.png")
    locked = (tmp_path / "in" / "locked").resolve()
    real_scandir = os.scandir

    def scandir(path: object = ".") -> object:
        if Path(str(path)).resolve() == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)  # type: ignore[call-overload]

    monkeypatch.setattr(os, "scandir", scandir)
    base = ["remove-bg", str(tmp_path / "in"), "--recursive", "--out", str(tmp_path / "out"), *_connect(evolink_sandbox)]
    code = await anyio.to_thread.run_sync(main, [*base, "--json"])
    summary = _json_lines(capsys.readouterr().out)[-1]
    assert code == 1
    assert summary["kind"] == "summary"
    assert summary["ok"] is False
    assert summary["unreadable_folders"] == [{"path": "locked", "message": "Permission denied"}]
    assert (tmp_path / "out" / "a.png.result-0.png").exists()

    code = await anyio.to_thread.run_sync(main, base)  # plain lines: a resume, the folder still unreadable
    out = capsys.readouterr().out
    assert code == 1
    assert "1 folder(s) could not be read" in out
    assert "  locked  Permission denied" in out


def test_the_live_rate_and_eta_count_only_inputs_finished_in_this_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """A resume: 1000 inputs done in earlier runs arrive at once, then one is saved after 20 s.
    The rate is 3/min (not 3000/min) and the 9 inputs left take 3 minutes (not a fraction of a second)."""
    import io

    import rich.console

    from evolink_async.batch._spec import BatchEvent
    from evolink_async.cli._live import LiveReporter

    now = [1000.0]
    monkeypatch.setattr(rich.console, "monotonic", lambda: now[0])  # the clock rich's Progress reads
    reporter = LiveReporter(io.StringIO())
    reporter.event(BatchEvent(kind="discovered", total=1010))
    for index in range(1000):
        reporter.event(BatchEvent(kind="done_before", key=f"{index}.png"))
    reporter.event(BatchEvent(kind="submitted", key="new.png", task_id="task-unified-1-new"))
    now[0] += 20
    reporter.event(BatchEvent(kind="downloaded", key="new.png", paths=("out/new.png.result-0.png",)))
    screen = rich.console.Console(file=io.StringIO(), width=200)
    screen.print(reporter.overall.get_renderable())
    line = screen.file.getvalue()  # type: ignore[attr-defined]
    assert "1001/1010" in line  # the bar still counts every input with results
    assert "3.0/min" in line  # 1 input in 20 s
    assert "0:00:20" in line  # elapsed
    assert "ETA 0:03:00" in line
