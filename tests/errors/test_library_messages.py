"""The library's messages name the library's options (``retry_failed=True``), never the command
line's flags (``--retry-failed``); the error or failed input says which option in ``remedy``, and
the ``evolink`` command line names its flag instead, as helpfully as before.
"""

from __future__ import annotations

import ast
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import pytest

import evolink_async
from evolink_async import EvolinkClient, Remedy
from evolink_async._files.normalize import plan_image
from evolink_async.batch._manifest import ManifestInput, parse_line
from evolink_async.batch._run import Batch, plan_batch
from evolink_async.batch._spec import BatchEvent, BatchLockedError, BatchSpec
from evolink_async.cli._remedies import FLAGS, cli_message
from evolink_async.errors import ValidationError
from evolink_async.sandbox import Faults, Sandbox
from tests.helpers.cli import json_lines, run_cli, sandbox_process, summary_of
from tests.helpers.images import write_png

Build = Callable[..., EvolinkClient]
PACKAGE = Path(evolink_async.__file__).parent
# A command-line flag: two dashes and a word, not inside a longer token (a "---" rule, "a--b").
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


def _strings_outside_docstrings(tree: ast.AST) -> Iterator[ast.Constant]:
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)
    }  # fmt: skip
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            yield node


def test_no_library_string_names_a_command_line_flag() -> None:
    """Every string the library can put in a message, an error or a journal (the apps excepted: the
    command line, the sandbox's own command line and ``python -m evolink_async``)."""
    apps = (PACKAGE / "cli", PACKAGE / "sandbox", PACKAGE / "__main__.py")
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if any(path == app or path.is_relative_to(app) for app in apps):
            continue
        for node in _strings_outside_docstrings(ast.parse(path.read_text(), str(path))):
            found += [f"{path.relative_to(PACKAGE)}:{node.lineno}: {flag}" for flag in FLAG.findall(node.value)]
    assert found == []


def test_every_remedy_has_a_flag() -> None:
    assert set(FLAGS) == set(Remedy)


def _spec(tmp_path: Path, **options: object) -> BatchSpec:
    values: dict[str, object] = {"model": "qwen-image-edit", "prompt": "make it autumn", "input_dir": tmp_path / "in",
                                 "output_dir": tmp_path / "out"}  # fmt: skip
    return BatchSpec(**{**values, **options})  # type: ignore[arg-type]


def _names_the_library_option(message: str | None, remedy: Remedy) -> None:
    assert message is not None
    assert remedy.value in message, message
    assert FLAG.search(message) is None, message


@pytest.mark.evolink_sandbox(faults=Faults(task_failure_rate=1.0, failure_codes=("content_policy_violation",)))
async def test_an_input_failed_before_names_retry_failed(
    evolink_sandbox: Sandbox, scaled_client: Build, tmp_path: Path
) -> None:
    write_png(tmp_path / "in" / "a.png")
    async with scaled_client(evolink_sandbox) as client:
        await Batch(client, _spec(tmp_path)).run()  # its task fails
        events: list[BatchEvent] = []
        summary = await Batch(client, _spec(tmp_path), on_event=events.append).run()
    (failed,) = summary.failed
    assert failed.remedy is Remedy.RETRY_FAILED
    _names_the_library_option(failed.message, Remedy.RETRY_FAILED)
    (event,) = [e for e in events if e.kind == "failed"]
    assert (event.remedy, event.message) == (Remedy.RETRY_FAILED, failed.message)
    assert event.to_json()["remedy"] == "retry_failed=True"
    (planned,) = (await plan_batch(_spec(tmp_path))).invalid
    assert planned == failed


async def test_an_image_refused_by_a_local_rule_names_its_own_remedy_on_every_run(
    evolink_sandbox: Sandbox, scaled_client: Build, tmp_path: Path
) -> None:
    """Nothing was sent: the next run checks it again, and says what gets past the rule, not retry_failed
    (a message naming two options, one of them stored in the journal, could not say which is which)."""
    write_png(tmp_path / "in" / "tiny.png", 100, 100)  # below qwen-image-edit's 384 px
    async with scaled_client(evolink_sandbox) as client:
        first = await Batch(client, _spec(tmp_path)).run()
        second = await Batch(client, _spec(tmp_path)).run()
    for summary in (first, second):
        (failed,) = summary.failed
        assert failed.remedy is Remedy.NORMALIZE
        _names_the_library_option(failed.message, Remedy.NORMALIZE)
        assert Remedy.RETRY_FAILED.value not in failed.message
    sent = [request for request in evolink_sandbox.ledger.requests if request.startswith("POST")]
    assert sent == []  # neither a submit nor an upload


async def test_a_budget_too_small_names_max_credits(
    evolink_sandbox: Sandbox, scaled_client: Build, tmp_path: Path
) -> None:
    for name in ("a", "b", "c"):
        write_png(tmp_path / "in" / f"{name}.png", shade=ord(name))
    async with scaled_client(evolink_sandbox) as client:
        summary = await Batch(client, _spec(tmp_path, max_credits=1.0, max_in_flight=1)).run()
    not_submitted = [f for f in summary.failed if f.code == "not_submitted"]
    assert len(not_submitted) == 2, summary.failed
    for failed in not_submitted:
        assert failed.remedy is Remedy.MAX_CREDITS
        _names_the_library_option(failed.message, Remedy.MAX_CREDITS)


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="symbolic links")
async def test_a_link_out_of_the_input_folder_names_follow_symlinks(tmp_path: Path) -> None:
    outside = write_png(tmp_path / "elsewhere" / "a.png")
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "link.png").symlink_to(outside)
    (failed,) = (await plan_batch(_spec(tmp_path))).invalid
    assert failed.remedy is Remedy.FOLLOW_SYMLINKS
    _names_the_library_option(failed.message, Remedy.FOLLOW_SYMLINKS)


async def test_a_folder_in_use_names_output_dir(
    evolink_sandbox: Sandbox, scaled_client: Build, tmp_path: Path
) -> None:
    write_png(tmp_path / "in" / "a.png")
    started = anyio.Event()
    async with scaled_client(evolink_sandbox) as client, anyio.create_task_group() as group:
        group.start_soon(Batch(client, _spec(tmp_path), on_event=lambda e: started.set()).run)
        await started.wait()
        with pytest.raises(BatchLockedError) as refused:
            await Batch(client, _spec(tmp_path)).run()
    assert refused.value.remedy is Remedy.OUTPUT_DIR
    _names_the_library_option(str(refused.value), Remedy.OUTPUT_DIR)


def test_manifest_paths_without_a_root_name_root() -> None:
    line = '{"key": "k", "model": "qwen-image-edit", "prompt": "p", "image_urls": ["../a.png"]}'
    with pytest.raises(ValidationError) as outside:
        parse_line(line, line_number=3)
    item = ManifestInput(key="k", model="qwen-image-edit", prompt="p", image_urls=("photos/root/a.png",))
    with pytest.raises(ValidationError) as no_root:
        item.request(None)
    for error in (outside.value, no_root.value):
        assert error.remedy is Remedy.ROOT
        _names_the_library_option(str(error), Remedy.ROOT)
    # The CLI names its flag, not a word of the path (which says "root" too).
    shown = cli_message(str(no_root.value), no_root.value.remedy)
    assert "'photos/root/a.png'" in shown
    assert shown.endswith("(--root)"), shown


def test_an_image_to_normalize_names_normalize(tmp_path: Path) -> None:
    tiny = write_png(tmp_path / "tiny.png", 100, 100)
    with pytest.raises(ValidationError) as refused:
        plan_image(tiny, model="qwen-image-edit", field="tiny.png", normalize=False)
    assert refused.value.remedy is Remedy.NORMALIZE
    _names_the_library_option(str(refused.value), Remedy.NORMALIZE)


def test_the_cli_replaces_the_remedy_not_the_same_text_in_a_name() -> None:
    message = "retry_failed=True.png: the task failed (retry_failed=True starts it again)"
    assert cli_message(message, Remedy.RETRY_FAILED) == "retry_failed=True.png: the task failed (--retry-failed starts it again)"
    assert cli_message("waited up to journal_outage=3 s", Remedy.JOURNAL_OUTAGE) == "waited up to --journal-outage 3 s"
    assert cli_message("no remedy here", None) == "no remedy here"


def test_the_command_line_names_its_flags(tmp_path: Path) -> None:
    """Plain, JSON and dry-run output: the CLI's hints, as before; no keyword argument, no ``remedy`` key."""
    write_png(tmp_path / "in" / "a.png")  # its task fails: --retry-failed
    write_png(tmp_path / "in" / "tiny.png", 100, 100)  # refused here: --normalize
    with sandbox_process("--task-failure-rate", "1", time_scale=0.01) as box:
        argv = ["edit", str(tmp_path / "in"), "--prompt", "autumn", "--out", str(tmp_path / "out"),
                *box.connect(poll_scale=0.01)]  # fmt: skip
        first = run_cli(argv, bound=90)
        assert first.returncode == 1, first.stdout + first.stderr
        plain = run_cli(argv, bound=90)
        as_json = run_cli([*argv, "--json"], bound=90)
        dry = run_cli([*argv, "--dry-run"], bound=90)
    for done in (plain, as_json):
        assert done.returncode == 1, done.stdout + done.stderr  # an input failed
    for done in (first, plain, as_json, dry):
        assert "retry_failed=True" not in done.stdout + done.stderr
        assert "normalize=True" not in done.stdout + done.stderr
    for text in (plain.stdout, dry.stdout):
        assert "(--retry-failed starts it again)" in text, text
        assert "normalize it (--normalize, needs" in text, text
    failed = {f["key"]: f for f in summary_of(as_json.stdout)["failed"]}
    assert failed["a.png"]["message"].endswith("(--retry-failed starts it again)"), failed
    assert "(--normalize, needs" in failed["tiny.png"]["message"], failed
    assert all("remedy" not in f for f in failed.values())
    events = {e["key"]: e for e in json_lines(as_json.stdout) if e["kind"] == "failed"}
    assert {key: e["message"] for key, e in events.items()} == {key: f["message"] for key, f in failed.items()}
    assert all("remedy" not in e for e in events.values())
