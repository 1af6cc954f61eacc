"""``evolink imagine`` and ``evolink mj-action`` as a user runs them: the CLI in one process, the
sandbox's Midjourney-proxy side in another (loopback only), its ledger read over HTTP.

Every subprocess is bounded; a killed or interrupted run is resumed by running the same command,
and the ledger proves no input was billed twice (each submit's ``state`` appears once).
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import signal
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from evolink_async import Imagine, MidjourneyClient
from evolink_async.batch._entries import request_fingerprint
from evolink_async.batch._prompts import PromptSource, PromptSpec, prompt_key
from evolink_async.batch._prompts import _content as prompt_content
from evolink_async.batch._spec import JOURNAL_NAME
from evolink_async.batch._sqlite_store import Journal
from evolink_async.sandbox._png import png_size
from tests.helpers.cli import (
    CLI,
    RESUME_HINT,
    SandboxProcess,
    cli_env,
    json_lines,
    run_cli,
    sandbox_process,
    start_under_pty,
    stop,
    summary_of,
    wait_for,
)

FAST = 0.01  # IMAGINE: 40 API s -> 0.4 s
SLOW = 0.05  # IMAGINE: 40 API s -> ~2 s: a run of 12 lasts several seconds


def connect(box: SandboxProcess, *, scale: float, api_key: str | None = None) -> list[str]:
    return ["--base-url", box.env["MJ_PROXY_BASE_URL"], "--api-key", api_key or box.env["MJ_PROXY_API_KEY"],
            "--poll-scale", f"{scale:g}"]  # fmt: skip


def imagine_states(box: SandboxProcess) -> list[str]:
    return [t["state"] for t in box.ledger()["mj_tasks"] if t["endpoint"] == "imagine"]


def results(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if ".result-" in p.name)


def test_imagine_count_completes_each_prompt_once(tmp_path: Path) -> None:
    out = tmp_path / "foxes"
    with sandbox_process(time_scale=FAST) as box:
        done = run_cli(["imagine", "a red fox", "--count", "6", "--out", str(out), *connect(box, scale=FAST)])
        assert done.returncode == 0, done.stderr
        assert results(out) == [f"prompt-{n:04d}.result-0.png" for n in range(1, 7)]
        ledger = box.ledger()
        states = imagine_states(box)
        assert len(states) == 6 == len(set(states))
        imagine_ids = {t["task_id"] for t in ledger["mj_tasks"] if t["endpoint"] == "imagine"}
        assert imagine_ids <= set(ledger["billed"])
        assert "6/6 input(s) have results" in done.stdout

        again = run_cli(["imagine", "a red fox", "--count", "6", "--out", str(out), "--json",
                         *connect(box, scale=FAST)])  # fmt: skip
        assert again.returncode == 0, again.stderr
        summary = summary_of(again.stdout)
        assert (summary["done_before"], summary["submitted"], summary["ok"]) == (6, 0, True)
        assert len(imagine_states(box)) == 6  # nothing submitted again


def test_imagine_json_lines_and_prompts_file(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_bytes(b"a red fox\n\na blue whale\x1b[2J\na green owl\n" + b"bad \xff line\n")
    out = tmp_path / "out"
    with sandbox_process(time_scale=FAST) as box:
        done = run_cli(["imagine", "--prompts", str(prompts), "--out", str(out), "--json", *connect(box, scale=FAST)])
        assert done.returncode == 1, done.stderr  # line 5 is not UTF-8: it fails alone
        assert [(f["key"], f["code"]) for f in summary_of(done.stdout)["failed"]] == [("prompt-0005", "invalid_input")]
        events = json_lines(done.stdout)  # every line is JSON
        assert all("\x1b" not in line for line in done.stdout.splitlines())
        kinds = collections.Counter(e["kind"] for e in events)
        assert kinds["submitted"] == 3
        assert kinds["downloaded"] == 3
        assert kinds["summary"] == 1
        downloaded = {e["key"]: e["paths"] for e in events if e["kind"] == "downloaded"}
        assert sorted(downloaded) == ["prompt-0001", "prompt-0003", "prompt-0004"]  # line numbers: blank line 2
        assert results(out) == ["prompt-0001.result-0.png", "prompt-0003.result-0.png", "prompt-0004.result-0.png"]
        assert len(imagine_states(box)) == 3


def test_wrong_key_exits_2_and_bills_nothing(tmp_path: Path) -> None:
    with sandbox_process(time_scale=FAST) as box:
        done = run_cli(["imagine", "a red fox", "--count", "3", "--out", str(tmp_path / "o"),
                        *connect(box, scale=FAST, api_key="sk-wrong-key-123")])  # fmt: skip
        assert done.returncode == 2, (done.stdout, done.stderr)
        assert "MJ_PROXY_API_KEY" in done.stderr
        assert "sk-wrong-key-123" not in done.stdout + done.stderr
        assert box.ledger()["mj_tasks"] == []
        action = run_cli(["mj-action", "1234567890", "U2", *connect(box, scale=FAST, api_key="sk-wrong-key-123")])
        assert action.returncode == 2


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    env = cli_env(MJ_PROXY_BASE_URL="http://127.0.0.1:9", MJ_PROXY_API_KEY="k")
    assert run_cli(["imagine", "--out", str(tmp_path)], env=env).returncode == 2  # no prompt
    assert run_cli(["imagine", "a", "--prompts", "f", "--out", str(tmp_path)], env=env).returncode == 2
    assert run_cli(["imagine", "--prompts", str(tmp_path / "missing.txt"), "--out", str(tmp_path)],
                   env=env).returncode == 2  # fmt: skip
    assert run_cli(["mj-action", "1", "U2", "--no-wait", "--out", str(tmp_path)], env=env).returncode == 2


def test_mj_action_u2_on_a_finished_imagine(tmp_path: Path) -> None:
    out = tmp_path / "grid"
    with sandbox_process(time_scale=FAST) as box:
        done = run_cli(["imagine", "a red fox", "--out", str(out), "--json", *connect(box, scale=FAST)])
        assert done.returncode == 0, done.stderr
        task_id = next(e["task_id"] for e in json_lines(done.stdout) if e["kind"] == "submitted")

        up = tmp_path / "up"
        action = run_cli(["mj-action", task_id, "U2", "--out", str(up), "--json", *connect(box, scale=FAST)])
        assert action.returncode == 0, action.stderr
        events = json_lines(action.stdout)
        final = next(e for e in events if e["kind"] == "task")
        assert final["status"] == "completed"
        assert len(final["results"]) == 1
        saved = next(e for e in events if e["kind"] == "downloaded")
        assert saved["task_id"] == final["id"]
        assert len(saved["paths"]) == 1
        grid = png_size((out / "prompt-0001.result-0.png").read_bytes())
        single = png_size(Path(saved["paths"][0]).read_bytes())
        assert grid is not None
        assert single is not None
        assert single[0] < grid[0]
        actions = [t for t in box.ledger()["mj_tasks"] if t["endpoint"] == "action"]
        assert [(t["task_id"], t["action"]) for t in actions] == [(final["id"], "UPSCALE")]

        plain = run_cli(["mj-action", task_id, "U9", *connect(box, scale=FAST)])
        assert plain.returncode == 2
        assert "no button 'U9'" in plain.stderr


def _start(args: list[str]) -> tuple[subprocess.Popen[str], list[dict[str, Any]]]:
    process = subprocess.Popen([*CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=cli_env(), stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    seen: list[dict[str, Any]] = []

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            if line.strip():
                seen.append(json.loads(line))

    threading.Thread(target=pump, daemon=True).start()
    return process, seen


@pytest.mark.parametrize("how", ["kill", "sigint"])
def test_a_stopped_run_resumes_without_billing_twice(tmp_path: Path, how: str) -> None:
    out = tmp_path / "out"
    count = 12
    with sandbox_process(time_scale=SLOW) as box:
        args = ["imagine", "a red fox", "--count", str(count), "--out", str(out), "--json", *connect(box, scale=SLOW)]
        process, seen = _start(args)
        try:
            wait_for(lambda: sum(e["kind"] == "downloaded" for e in seen) >= 2, 60, "two results saved",
                     process=process)  # fmt: skip
            if how == "kill":
                process.kill()
                assert process.wait(10) == -signal.SIGKILL
            else:
                os.killpg(process.pid, signal.SIGINT)
                assert process.wait(15) == 130
                assert process.stderr is not None
                assert RESUME_HINT in process.stderr.read()
        finally:
            stop(process)
        before = imagine_states(box)
        assert 2 <= len(before) < count

        again = run_cli(args, bound=120)
        assert again.returncode == 0, again.stderr
        summary = summary_of(again.stdout)
        assert summary["ok"]
        assert summary["inputs"] == count
        assert summary["done_before"] >= 2
        assert summary["submitted"] + summary["reattached"] <= count
        states = imagine_states(box)
        assert len(states) == count == len(set(states))  # every input billed exactly once
        assert results(out) == [f"prompt-{n:04d}.result-0.png" for n in range(1, count + 1)]


def test_a_submit_whose_task_id_was_never_recorded_is_found_not_sent_again(tmp_path: Path) -> None:
    """The crash window: the proxy created the task, the run died before journalling its id."""
    out = tmp_path / "out"
    out.mkdir()
    with sandbox_process(time_scale=FAST) as box:
        spec = PromptSpec(prompts=PromptSource.repeat("a red fox", 2), output_dir=out).batch_spec()
        key = prompt_key(1)

        async def lost_submit() -> str:
            async with Journal(out / JOURNAL_NAME) as journal:
                await journal.ensure_meta(spec.meta())
                fingerprint = _fingerprint(spec, key)
                entry = await journal.reserve(key, fingerprint)
                await journal.record_request(key, json.dumps({"prompt": "a red fox"}))
            async with MidjourneyClient(box.env["MJ_PROXY_API_KEY"], base_url=box.env["MJ_PROXY_BASE_URL"]) as mj:
                task = await mj.submit(Imagine(prompt="a red fox"), idempotency_key=entry.idempotency_key)
            return task.id

        lost_id = asyncio.run(lost_submit())
        done = run_cli(["imagine", "a red fox", "--count", "2", "--out", str(out), "--json",
                        *connect(box, scale=FAST)])  # fmt: skip
        assert done.returncode == 0, done.stderr
        events = json_lines(done.stdout)
        assert {"kind": "reattached", "key": key, "task_id": lost_id} in events
        assert summary_of(done.stdout)["submitted"] == 1
        states = imagine_states(box)
        assert len(states) == 2 == len(set(states))


def _fingerprint(spec: Any, key: str) -> str:
    return request_fingerprint(spec.fingerprint_body(key, content=prompt_content("a red fox")))


def test_a_queue_that_stays_full_leaves_inputs_pending_and_exits_1(tmp_path: Path) -> None:
    out = tmp_path / "out"
    # One job at a time, no queue: the 2nd and 3rd submits are refused (code 23) through every retry
    # (about 3.5 s of back-off) while the first job runs 8 s.
    options = ("--mj-concurrency", "1", "--mj-queue-size", "0", "--duration-spread", "1", "1")
    with sandbox_process(*options, time_scale=0.2) as box:
        done = run_cli(["imagine", "a red fox", "--count", "3", "--max-in-flight", "3", "--out", str(out), "--json",
                        *connect(box, scale=0.2)], bound=90)  # fmt: skip
        assert done.returncode == 1, done.stderr
        summary = summary_of(done.stdout)
        assert summary["downloaded"] == 1
        failed = summary["failed"]
        assert sorted(f["code"] for f in failed) == ["queue_full", "queue_full"]
        assert all("stays pending" in f["message"] for f in failed)
        assert len(imagine_states(box)) == 1
        assert box.ledger()["mj_refused"].get("23", 0) >= 2

        async def statuses() -> list[str]:
            async with Journal(out / JOURNAL_NAME) as journal:
                return sorted([entry.status.value async for entry in journal.entries()])

        assert asyncio.run(statuses()) == ["downloaded", "pending_submit", "pending_submit"]


def test_ctrl_c_in_a_terminal_shows_the_live_view_exits_130_and_resumes(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with sandbox_process(time_scale=SLOW) as box:
        args = ["imagine", "a red fox", "--count", "8", "--out", str(out), *connect(box, scale=SLOW)]
        process, reader, master = start_under_pty([*CLI, *args])
        try:
            wait_for(lambda: len(imagine_states(box)) >= 2, 30, "two submits", process=process)
            os.killpg(process.pid, signal.SIGINT)
            process.wait(15)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
            reader.join(5)
            os.close(master)
        shown = reader.data.decode("utf-8", "replace")
        assert process.returncode == 130, shown[-800:]
        assert shown.count(RESUME_HINT) == 1, shown[-800:]
        again = run_cli(args, bound=90)
        assert again.returncode == 0, again.stderr
        states = imagine_states(box)
        assert len(states) == 8 == len(set(states))
