"""A wrong base URL (the submit endpoint answers 404, 405 or 501) is a configuration error.

It stops the folder batch, the prompt batch and ``fan_out`` at once with one error naming the URL
(never the key), and leaves every input pending: a re-run with the right URL takes them all.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
from aiohttp import web

import evolink_async as evolink
from evolink_async.batch import Batch, BatchSpec, PromptBatch, PromptSource, PromptSpec
from evolink_async.batch._entries import EntryStatus
from evolink_async.batch._sqlite_store import Journal
from evolink_async.cli import main
from evolink_async.sandbox import Sandbox
from tests.helpers.hostile import API_KEY, FAST_RETRY, SUBMIT, client_for, edit, error_answer, hostile_server
from tests.helpers.images import write_png

Build = Callable[..., evolink.EvolinkClient]
COUNT = 6


def _spec(tmp_path: Path) -> BatchSpec:
    for index in range(COUNT):
        write_png(tmp_path / "in" / f"{index}.png", shade=index * 30)
    return BatchSpec(model="qwen-image-edit", prompt="make it autumn", input_dir=tmp_path / "in",
                     output_dir=tmp_path / "out", max_in_flight=2)  # fmt: skip


async def test_a_wrong_base_url_stops_the_batch_and_the_right_one_takes_every_input(
    evolink_sandbox: Sandbox, scaled_client: Build, tmp_path: Path
) -> None:
    spec = _spec(tmp_path)
    wrong = evolink_sandbox.base_url + "/not-the-api"
    async with evolink.EvolinkClient(evolink_sandbox.api_key, base_url=wrong, files_base_url=evolink_sandbox.files_base_url,
                                     retry=FAST_RETRY) as client:  # fmt: skip
        batch = Batch(client, spec)
        with pytest.raises(evolink.EndpointMissingError) as stopped:
            await batch.run()
    message = str(stopped.value)
    assert f"POST {wrong}{SUBMIT}" in message
    assert "base URL" in message
    assert evolink_sandbox.api_key not in message
    assert stopped.value.status_code == 404
    assert batch.summary.failed == []  # not six identical "not_found" failures
    async with Journal(spec.journal_path) as journal:
        counts = await journal.counts()
    assert counts[EntryStatus.SUBMIT_FAILED] == 0  # nothing recorded as refused: all still to submit
    assert len(evolink_sandbox.ledger.billed) == 0

    async with scaled_client(evolink_sandbox) as client:
        summary = await Batch(client, spec).run()
    assert summary.ok
    assert summary.submitted == COUNT
    assert len(evolink_sandbox.ledger.billed) == len(set(evolink_sandbox.ledger.billed)) == COUNT


@pytest.mark.parametrize("status", [404, 405, 501])
async def test_fan_out_ends_with_one_error_not_one_failure_per_input(status: int) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        return error_answer(status, code="no_route", message="no such route")

    async with hostile_server(handler) as server, client_for(server) as client:
        events: list[evolink.TaskEvent] = []
        with pytest.raises(evolink.EndpointMissingError) as stopped:
            async with client.fan_out((edit(n) for n in range(1000)), max_in_flight=4) as stream:
                async for event in stream:
                    events.append(event)
        assert f"POST {server.url}{SUBMIT}" in str(stopped.value)
        assert API_KEY not in str(stopped.value)
        assert stopped.value.status_code == status
        assert events == []
        # The inputs already in flight when the first answer came, at most: not 1,000 submits.
        assert server.count("POST", SUBMIT) <= 4 * 2  # each submit may be retried once (FAST_RETRY)


async def test_the_prompt_batch_stops_too_and_resumes_with_the_right_url(
    mj_sandbox: Sandbox, tmp_path: Path
) -> None:
    spec = PromptSpec(prompts=PromptSource.repeat("a red fox", 3), output_dir=tmp_path / "foxes")
    poll = evolink.PollPolicy().scaled(0.01)
    async with evolink.MidjourneyClient(mj_sandbox.mj_api_key, base_url=mj_sandbox.mj_base_url + "/nope",
                                        poll_policy=poll) as mj:  # fmt: skip
        with pytest.raises(evolink.EndpointMissingError, match="no such endpoint"):
            await PromptBatch(mj, spec).run()
    assert mj_sandbox.ledger.billed == []
    async with evolink.MidjourneyClient(mj_sandbox.mj_api_key, base_url=mj_sandbox.mj_base_url,
                                        poll_policy=poll) as mj:  # fmt: skip
        summary = await PromptBatch(mj, spec).run()
    assert summary.ok
    assert len(mj_sandbox.ledger.billed) == 3


async def test_the_cli_exits_2_naming_the_url_and_a_rerun_with_the_right_one_finishes(
    evolink_sandbox: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _spec(tmp_path)
    wrong = evolink_sandbox.base_url + "/v2"
    argv = ["edit", str(tmp_path / "in"), "--prompt", "autumn", "--out", str(tmp_path / "out"),
            "--files-base-url", evolink_sandbox.files_base_url, "--api-key", evolink_sandbox.api_key,
            "--poll-scale", "0.01"]  # fmt: skip
    assert await anyio.to_thread.run_sync(main, [*argv, "--base-url", wrong]) == 2
    err = capsys.readouterr().err
    assert f"{wrong}{SUBMIT}" in err
    assert "--base-url" in err
    assert evolink_sandbox.api_key not in err
    assert await anyio.to_thread.run_sync(main, [*argv, "--base-url", evolink_sandbox.base_url]) == 0
    assert f"{COUNT}/{COUNT} input(s) have results" in capsys.readouterr().out
    assert len(evolink_sandbox.ledger.billed) == COUNT


async def test_a_wrong_files_base_url_stops_the_batch_naming_it_and_exits_2(
    evolink_sandbox: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _spec(tmp_path)
    wrong = evolink_sandbox.files_base_url + "/nope"
    argv = ["edit", str(tmp_path / "in"), "--prompt", "autumn", "--out", str(tmp_path / "out"),
            "--base-url", evolink_sandbox.base_url, "--api-key", evolink_sandbox.api_key, "--poll-scale", "0.01"]  # fmt: skip
    assert await anyio.to_thread.run_sync(main, [*argv, "--files-base-url", wrong]) == 2
    err = capsys.readouterr().err
    assert f"{wrong}/api/v1/files/" in err
    assert "check --files-base-url" in err
    assert len(evolink_sandbox.ledger.billed) == 0
    assert await anyio.to_thread.run_sync(main, [*argv, "--files-base-url", evolink_sandbox.files_base_url]) == 0
    assert len(evolink_sandbox.ledger.billed) == COUNT
