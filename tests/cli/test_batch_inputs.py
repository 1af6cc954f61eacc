"""What a folder of inputs can do to a run."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import pytest

from tests.helpers.cli import (
    CLI,
    cli_env,
    json_lines,
    make_inputs,
    png_bytes,
    run_cli,
    sandbox_process,
    stop,
    summary_of,
    wait_for,
    write_png,
)

FAST = 0.01


def _edit(tmp: Path, out: str, *extra: str) -> list[str]:
    return ["edit", str(tmp / "in"), "--prompt", "make it autumn", "--out", str(tmp / out), *extra]


def _results(out: Path) -> list[Path]:
    return sorted(p for p in out.rglob("*") if p.is_file() and not p.name.startswith(".") and "result" in p.name)


def _jpeg_bytes(width: int = 400, height: int = 400) -> bytes:
    """A JPEG's structure (SOI, JFIF, baseline SOF0, a scan, EOI): whole enough for the sandbox, which
    fails a task whose input is truncated (a header alone is) with image_processing_error."""
    app0 = b"\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof0 = b"\xff\xc0\x00\x11\x08" + height.to_bytes(2, "big") + width.to_bytes(2, "big") + \
        b"\x03\x01\x22\x00\x02\x11\x01\x03\x11\x01"  # fmt: skip
    scan = b"\xff\xda\x00\x0c\x03\x01\x00\x02\x11\x03\x11\x00\x3f\x00" + b"\x00" * 16
    return b"\xff\xd8" + app0 + sof0 + scan + b"\xff\xd9"


# --- item 3 ---------------------------------------------------------------------------------


def test_credits_exhausted_mid_batch_exits_promptly_and_resumes_after_top_up(tmp_path: Path) -> None:
    make_inputs(tmp_path / "in", 10)
    with sandbox_process("--credits", "3", time_scale=FAST) as poor:
        first = run_cli([*_edit(tmp_path, "out", "--json"), *poor.connect(poll_scale=FAST)], bound=45)
        assert len(poor.ledger()["billed"]) == 3
    assert first.returncode == 1, first.stderr[-2000:]
    summary = summary_of(first.stdout)
    not_submitted = {f["key"] for f in summary["failed"]}
    assert len(not_submitted) == 7, summary["failed"]  # every input without a task is listed

    # Without a top-up: the re-run ends promptly too (exit 1), listing the same inputs again.
    with sandbox_process("--credits", "0", time_scale=FAST) as empty:
        again = run_cli([*_edit(tmp_path, "out2", "--json"), *empty.connect(poll_scale=FAST)], bound=45)
    assert again.returncode == 1
    assert len(summary_of(again.stdout)["failed"]) == 10

    # After a top-up: the same out folder, the remaining seven are submitted and saved. (A new
    # sandbox does not know the first three tasks; they were already downloaded, so none is re-asked.)
    with sandbox_process("--credits", "100", time_scale=FAST) as rich:
        resumed = run_cli([*_edit(tmp_path, "out", "--json"), *rich.connect(poll_scale=FAST)], bound=45)
        billed = rich.ledger()["billed"]
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    assert len(billed) == 7
    assert {e["key"] for e in json_lines(resumed.stdout) if e.get("kind") == "submitted"} == not_submitted
    assert len(_results(tmp_path / "out")) == 10


# --- item 9 ---------------------------------------------------------------------------------

CONTROL_NAMES = {
    "newline": "n\nsaved      ok.png  -> FAKE.png.png",
    "return": "r\rsaved      ok.png  -> FAKE.png.png",
    "escape": "e\x1b[2K\rsaved      ok.png  -> FAKE.png.png",
    "delete": "d\x7f\x7f\x7fFAKE.png",
}
RAW_CONTROLS = ("\r", "\x1b", "\x7f")


@pytest.mark.parametrize("json_output", [False, True], ids=["plain", "json"])
def test_control_characters_in_a_file_name_fail_alone_and_are_never_printed_raw(
    tmp_path: Path, json_output: bool
) -> None:
    make_inputs(tmp_path / "in", 2, prefix="good")
    for index, name in enumerate(CONTROL_NAMES.values()):
        write_png(tmp_path / "in" / name, shade=100 + index)
    extra = ["--json"] if json_output else []
    with sandbox_process(time_scale=FAST) as sandbox:
        result = run_cli([*_edit(tmp_path, "out", *extra), *sandbox.connect(poll_scale=FAST)], bound=45)
    shown = result.stdout + result.stderr
    for char in RAW_CONTROLS:
        assert char not in shown, f"raw {char!r} from a file name reached the output:\n{shown!r}"
    forged = [line for line in shown.splitlines() if line.lstrip().startswith("saved") and "FAKE.png" in line]
    assert not forged, f"a file name forged an output line: {forged!r}"
    # Each bad name fails on its own; the good inputs complete.
    assert result.returncode == 1, shown[-2000:]
    good = [p.name for p in _results(tmp_path / "out")]
    assert len(good) == 2, good
    assert all(n.startswith("good") for n in good), good
    if json_output:
        summary = summary_of(result.stdout)
        assert len(summary["failed"]) == len(CONTROL_NAMES)
        assert summary["downloaded"] == 2


# --- item 11 --------------------------------------------------------------------------------


def test_a_replaced_input_is_a_new_input_not_done_before(tmp_path: Path) -> None:
    write_png(tmp_path / "in" / "tiny.png", 400, 400, shade=10)
    write_png(tmp_path / "in" / "other.png", shade=200)
    with sandbox_process(time_scale=FAST) as sandbox:
        args = [*_edit(tmp_path, "out"), *sandbox.connect(poll_scale=FAST)]
        first = run_cli(args, bound=45)
        assert first.returncode == 0, first.stdout + first.stderr
        assert len(sandbox.ledger()["billed"]) == 2
        (tmp_path / "in" / "tiny.png").write_bytes(png_bytes(500, 460, shade=99))  # other content, other size
        second = run_cli(args, bound=45)
        billed = sandbox.ledger()["billed"]
    assert second.returncode == 0, second.stdout + second.stderr
    tiny_lines = [line for line in second.stdout.splitlines() if "tiny.png" in line]
    assert not any("earlier run" in line for line in tiny_lines), tiny_lines
    assert any("changed" in line.lower() for line in tiny_lines), f"no 'changed' line for tiny.png: {tiny_lines}"
    assert len(billed) == 3, "the replaced tiny.png must be submitted again (and only it)"
    assert any(line.startswith("saved") for line in tiny_lines), tiny_lines


# --- item 12 --------------------------------------------------------------------------------


def test_result_names_are_a_function_of_the_input_name(tmp_path: Path) -> None:
    """a.png and a.jpg: each gets its own result name, the same whatever order they finish in."""
    folder = tmp_path / "in"
    write_png(folder / "a.png")
    (folder / "a.jpg").write_bytes(_jpeg_bytes())

    def mapping(output: str) -> dict[str, tuple[str, ...]]:
        found: dict[str, tuple[str, ...]] = {}
        for event in json_lines(output):
            if event.get("kind") in ("downloaded", "done_before") and event.get("paths"):
                found[event["key"]] = tuple(Path(p).name for p in event["paths"])
        return found

    with sandbox_process(time_scale=FAST) as sandbox:
        connect = sandbox.connect(poll_scale=FAST)
        # Run 1: both inputs in one run.
        both = run_cli([*_edit(tmp_path, "out1", "--json", "--max-in-flight", "1"), *connect], bound=45)
        assert both.returncode == 0, both.stdout[-2000:] + both.stderr[-2000:]
        # Run 2, another out folder: a.png alone finishes first, then a.jpg joins and finishes later.
        (tmp_path / "later").mkdir()
        os.replace(folder / "a.jpg", tmp_path / "later" / "a.jpg")
        alone = run_cli([*_edit(tmp_path, "out2", "--json"), *connect], bound=45)
        assert alone.returncode == 0, alone.stdout[-2000:] + alone.stderr[-2000:]
        os.replace(tmp_path / "later" / "a.jpg", folder / "a.jpg")
        joined = run_cli([*_edit(tmp_path, "out2", "--json"), *connect], bound=45)
        assert joined.returncode == 0, joined.stdout[-2000:] + joined.stderr[-2000:]
    first = mapping(both.stdout)
    second = {**mapping(alone.stdout), **mapping(joined.stdout)}
    assert set(first) == set(second) == {"a.png", "a.jpg"}
    assert set(first["a.png"]).isdisjoint(first["a.jpg"]), first
    assert first == second, f"result names depend on completion order: {first} vs {second}"


# --- item 13 --------------------------------------------------------------------------------


def test_resume_cleans_stale_part_files_and_reuses_an_empty_claimed_result(tmp_path: Path) -> None:
    write_png(tmp_path / "in" / "x.png")
    # Learn this version's result name for x.png from a clean run (no naming scheme assumed).
    with sandbox_process(time_scale=FAST) as fast:
        scratch = run_cli([*_edit(tmp_path, "scratch"), *fast.connect(poll_scale=FAST)], bound=45)
    assert scratch.returncode == 0, scratch.stdout + scratch.stderr
    (result_name,) = [p.name for p in _results(tmp_path / "scratch")]

    out = tmp_path / "out"
    slow = 0.2  # a task takes 3-9 s: killed right after its submit, the run has saved nothing
    with sandbox_process(time_scale=slow) as sandbox:
        args = [*_edit(tmp_path, "out"), *sandbox.connect(poll_scale=slow)]
        process = subprocess.Popen([*CLI, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   stdin=subprocess.DEVNULL, env=cli_env(), start_new_session=True)  # fmt: skip
        try:
            wait_for(lambda: len(sandbox.ledger()["billed"]) == 1, 30, "the submit", process=process)
        finally:
            process.send_signal(signal.SIGKILL)
            stop(process)
        # What a kill between the claim of the name and the rename onto it leaves behind.
        (out / ".evolink-abc123.part").write_bytes(png_bytes()[:100])
        (out / result_name).write_bytes(b"")
        resumed = run_cli(args, bound=60)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert not list(out.glob(".evolink-*.part")), "a stale .part file survived the resume"
    assert [p.name for p in _results(out)] == [result_name], [p.name for p in out.iterdir()]
    assert (out / result_name).read_bytes().startswith(b"\x89PNG"), "the empty claimed result was kept"


# --- item 19 --------------------------------------------------------------------------------


def test_a_symlink_to_an_outside_image_is_skipped_unless_follow_symlinks(tmp_path: Path) -> None:
    write_png(tmp_path / "in" / "real.png")
    write_png(tmp_path / "elsewhere" / "secret.png", shade=3)
    (tmp_path / "in" / "link.png").symlink_to(tmp_path / "elsewhere" / "secret.png")
    with sandbox_process(time_scale=FAST) as sandbox:
        connect = sandbox.connect(poll_scale=FAST)
        default = run_cli([*_edit(tmp_path, "out", "--json"), *connect], bound=45)
        assert len(sandbox.ledger()["billed"]) == 1, "the symlinked image was uploaded and submitted"
        followed = run_cli([*_edit(tmp_path, "out2", "--json", "--follow-symlinks"), *connect], bound=45)
        assert len(sandbox.ledger()["billed"]) == 3
    about_link = [e for e in json_lines(default.stdout) if e.get("key") == "link.png"]
    assert not any(e["kind"] in ("uploaded", "submitted", "downloaded") for e in about_link), about_link
    reasons = " ".join(str(e.get("message", "")) for e in about_link).lower()
    assert re.search(r"symlink|symbolic link", reasons), f"no clear reason given for link.png: {about_link}"
    assert followed.returncode == 0, followed.stdout[-2000:] + followed.stderr[-2000:]
    assert summary_of(followed.stdout)["downloaded"] == 2


# --- found trying the CLI as a new user -------------------------------------------------------


def test_an_empty_input_folder_says_so_and_does_not_report_success(tmp_path: Path) -> None:
    """A typo'd --glob or an empty folder: 'evolink edit' must not claim '0/0 ... have results' with exit 0."""
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "notes.txt").write_text("not an image")
    with sandbox_process(time_scale=FAST) as sandbox:
        result = run_cli([*_edit(tmp_path, "out"), *sandbox.connect(poll_scale=FAST)], bound=45)
    shown = (result.stdout + result.stderr).lower()
    assert result.returncode != 0, shown
    assert "no image" in shown or "no input" in shown, shown
