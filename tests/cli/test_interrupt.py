"""Ctrl-C in a real terminal, and the summary of an interrupted run.

The CLI runs under a pseudo-terminal as the leader of its own session (so the pty is its
controlling terminal and the rich live view is on), against a sandbox in another process that
is slow enough for the batch to take several seconds. SIGINT goes to the child's process group,
as a terminal's Ctrl-C does.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from pathlib import Path

import pytest

from tests.helpers.cli import (
    CLI,
    RESUME_HINT,
    cli_env,
    make_inputs,
    run_cli,
    sandbox_process,
    start_under_pty,
    stop,
    summary_of,
    wait_for,
)

COUNT = 10
SCALE = 0.1  # qwen-image-edit: 30 API s +-50% -> 1.5-4.5 s per task; 10 inputs, 5 in flight: ~6 s
TASK_QUERIES = "GET /v1/tasks/{task_id}"
SUMMARY = b"input(s) found before the stop have results in"  # not "N/M": M counts only what was found


def _result_files(out: Path) -> list[Path]:
    if not out.is_dir():
        return []
    return [p for p in out.rglob("*") if p.is_file() and not p.name.startswith(".") and "result" in p.name]


@pytest.mark.parametrize(
    ("moment", "presses"),
    [("submitting", 1), ("submitting", 2), ("polling", 1), ("downloading", 1), ("downloading", 2)],
)
def test_ctrl_c_in_a_terminal_exits_130_once_and_resumes_cleanly(tmp_path: Path, moment: str, presses: int) -> None:
    make_inputs(tmp_path / "in", COUNT)
    out = tmp_path / "out"
    with sandbox_process(time_scale=SCALE, seed=3) as sandbox:
        args = ["edit", str(tmp_path / "in"), "--prompt", "make it autumn", "--out", str(out),
                "--max-in-flight", "5", *sandbox.connect(poll_scale=SCALE)]  # fmt: skip
        process, reader, master = start_under_pty([*CLI, *args])
        try:
            if moment == "submitting":
                wait_for(lambda: len(sandbox.ledger()["billed"]) >= 1, 30, "a first submit", process=process)
            elif moment == "polling":
                # The CLI is polling once it has queried a task (tasks take >= 1.5 s: none is done).
                wait_for(lambda: sandbox.ledger()["requests"].get(TASK_QUERIES, 0) >= 1, 30, "a first query",
                         process=process)  # fmt: skip
            else:
                wait_for(lambda: _result_files(out), 60, "a first downloaded result", process=process)
            assert process.poll() is None, "the batch ended before the Ctrl-C moment"
            os.killpg(process.pid, signal.SIGINT)
            if presses == 2:
                # The second Ctrl-C once the first one has been taken (the summary is printed): it
                # lands while the command winds down, up to the interpreter's own shutdown, and
                # must still end the process with 130, never by the signal (-2).
                wait_for(lambda: SUMMARY in reader.data or process.poll() is not None, 30, "the summary")
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                pytest.fail(f"still running 10 s after the last of {presses} SIGINT(s) ({moment})")
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
            reader.join(5)
            os.close(master)
        shown = reader.data.decode("utf-8", "replace")
        assert process.returncode == 130, f"exit status {process.returncode}, output:\n{shown[-800:]}"
        assert SUMMARY.decode() in shown
        assert shown.count(RESUME_HINT) == 1, (
            f"the resume hint appears {shown.count(RESUME_HINT)} times:\n{shown[-800:]}"
        )

        # The journal is consistent: the same command finishes the batch, and nothing is paid twice.
        again = run_cli(args, bound=90)
        assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
        billed = sandbox.ledger()["billed"]
        assert len(billed) == len(set(billed)) == COUNT, f"{len(billed)} bills for {COUNT} inputs"
        assert len(_result_files(out)) == COUNT


def test_interrupted_summary_counts_the_credits_of_submitted_tasks(tmp_path: Path) -> None:
    """Item 14: SIGINT after submits; the --json summary reports credits_reserved > 0."""
    make_inputs(tmp_path / "in", 10)
    with sandbox_process(time_scale=SCALE, seed=4) as sandbox:
        argv = [*CLI, "edit", str(tmp_path / "in"), "--prompt", "autumn", "--out", str(tmp_path / "out"),
                "--max-in-flight", "4", "--json", *sandbox.connect(poll_scale=SCALE)]  # fmt: skip
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                   env=cli_env(), start_new_session=True)  # fmt: skip
        lines: list[bytes] = []
        errors: list[bytes] = []
        assert process.stdout is not None
        assert process.stderr is not None
        readers = [  # both pipes drained by threads: communicate() would take stdout's lines from us
            threading.Thread(target=lambda: lines.extend(iter(process.stdout.readline, b"")), daemon=True),
            threading.Thread(target=lambda: errors.extend(iter(process.stderr.readline, b"")), daemon=True),
        ]
        for reader in readers:
            reader.start()
        try:
            # Interrupt once the CLI itself has seen a submit answer: the sandbox bills a task
            # before its answer reaches the client, so its ledger alone would race the summary.
            wait_for(lambda: any(b'"kind": "submitted"' in line for line in lines), 30, "a submitted event",
                     process=process)  # fmt: skip
            os.killpg(process.pid, signal.SIGINT)
            process.wait(timeout=30)
            for reader in readers:
                reader.join(10)
            stdout, stderr = b"".join(lines), b"".join(errors)
        except subprocess.TimeoutExpired:
            pytest.fail("the interrupted run did not exit within 30 s")
        finally:
            stop(process)
        charged = sandbox.ledger()["credits_charged"]
    assert process.returncode == 130, stderr.decode()[-2000:]
    summary = summary_of(stdout.decode())
    assert summary["interrupted"] is True
    assert summary["submitted"] >= 1
    assert summary["credits_reserved"] > 0, f"summary says 0 credits reserved; the sandbox charged {charged}"
