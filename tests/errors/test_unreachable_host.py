"""A server no connection can be made to (refused: a wrong host or port, or no network).

Nothing was sent, so nothing can have been billed: the error says so (``APIUnreachableError``, not
"may have been billed"), and a folder batch none of whose submits has reached the server stops at
the first one instead of uploading every input and failing each the same way. A host that answers
and then resets the connection is another matter: the request may have been acted on.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

import evolink_async as evolink
from evolink_async.batch import Batch, BatchSpec
from evolink_async.batch._entries import EntryStatus
from evolink_async.batch._sqlite_store import Journal
from evolink_async.cli import main
from evolink_async.errors import may_have_been_billed, was_refused_for_now
from evolink_async.sandbox import Sandbox
from tests.helpers.dead_host import dead_host
from tests.helpers.hostile import API_KEY, FAST_RETRY, edit
from tests.helpers.images import write_png

Build = Callable[..., evolink.EvolinkClient]
COUNT = 16
IN_FLIGHT = 2


def _spec(tmp_path: Path) -> BatchSpec:
    for index in range(COUNT):
        write_png(tmp_path / "in" / f"{index}.png", shade=index * 8)
    return BatchSpec(model="qwen-image-edit", prompt="make it autumn", input_dir=tmp_path / "in",
                     output_dir=tmp_path / "out", max_in_flight=IN_FLIGHT)  # fmt: skip


def _edit_argv(tmp_path: Path, sandbox: Sandbox, *, base_url: str, files_base_url: str) -> list[str]:
    return ["edit", str(tmp_path / "in"), "--prompt", "autumn", "--out", str(tmp_path / "out"),
            "--base-url", base_url, "--files-base-url", files_base_url,
            "--api-key", sandbox.api_key, "--poll-scale", "0.01"]  # fmt: skip


async def test_a_refused_connection_is_unreachable_never_maybe_billed() -> None:
    async with dead_host(refuse=True) as host:
        async with evolink.EvolinkClient(API_KEY, base_url=host.url, retry=FAST_RETRY) as client:
            with pytest.raises(evolink.APIUnreachableError) as raised:
                await client.images.submit(edit(0))
    assert not may_have_been_billed(raised.value)
    assert was_refused_for_now(raised.value)  # never sent: the same request may go later
    assert API_KEY not in str(raised.value)


async def test_a_connection_reset_after_the_request_may_still_have_been_billed() -> None:
    async with dead_host() as host:  # reads the request, then resets: the server may have acted on it
        async with evolink.EvolinkClient(API_KEY, base_url=host.url, retry=FAST_RETRY) as client:
            with pytest.raises(evolink.APIConnectionError) as raised:
                await client.images.submit(edit(0))
    assert not isinstance(raised.value, evolink.APIUnreachableError)
    assert may_have_been_billed(raised.value)


async def test_a_batch_whose_api_host_refuses_stops_at_once_and_a_rerun_takes_every_input(
    evolink_sandbox: Sandbox, scaled_client: Build, tmp_path: Path
) -> None:
    spec = _spec(tmp_path)
    async with dead_host(refuse=True) as host:
        async with evolink.EvolinkClient(evolink_sandbox.api_key, base_url=host.url, retry=FAST_RETRY,
                                         files_base_url=evolink_sandbox.files_base_url) as client:  # fmt: skip
            batch = Batch(client, spec)
            with pytest.raises(evolink.APIUnreachableError):
                await batch.run()
    assert batch.summary.failed == []  # not thirty identical connection failures
    uploads = evolink_sandbox.ledger.requests.get("POST /api/v1/files/upload/stream", 0)
    # The uploads made ahead of the first submit's last attempt: a few, not one per input.
    assert uploads < COUNT // 2, uploads
    async with Journal(spec.journal_path) as journal:
        counts = await journal.counts()
    assert counts[EntryStatus.SUBMIT_FAILED] == 0
    assert counts[EntryStatus.SUBMITTED] == 0
    assert evolink_sandbox.ledger.billed == []

    async with scaled_client(evolink_sandbox) as client:
        summary = await Batch(client, spec).run()
    assert summary.ok
    assert len(evolink_sandbox.ledger.billed) == len(set(evolink_sandbox.ledger.billed)) == COUNT


async def test_the_cli_names_the_server_and_says_nothing_was_submitted(
    evolink_sandbox: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _spec(tmp_path)
    async with dead_host(refuse=True) as host:
        argv = _edit_argv(tmp_path, evolink_sandbox, base_url=host.url, files_base_url=evolink_sandbox.files_base_url)
        assert await anyio.to_thread.run_sync(main, argv) == 2  # nothing ran: fix the URL (README)
    err = capsys.readouterr().err
    assert err.count("evolink: ") == 1
    assert "cannot reach the server" in err
    assert host.url in err
    assert "Nothing was submitted" in err
    assert evolink_sandbox.api_key not in err


async def test_fan_out_stops_submitting_when_no_submit_reaches_the_server() -> None:
    async with dead_host(refuse=True) as host:
        async with evolink.EvolinkClient(API_KEY, base_url=host.url, retry=FAST_RETRY) as client:
            events: list[evolink.TaskEvent] = []
            async with client.fan_out((edit(n) for n in range(200)), max_in_flight=4) as stream:
                async for event in stream:
                    events.append(event)
            summary = stream.summary
    assert len(events) == 200  # every input still gets its one terminal event
    assert {event.kind for event in events} == {evolink.EventKind.SUBMIT_FAILED}
    tried = [event for event in events if isinstance(event.error, evolink.APIUnreachableError)]
    unsent = [event for event in events if isinstance(event.error, evolink.NotSubmittedError)]
    assert 1 <= len(tried) <= 4  # those under way when the first gave up: not 200 connection attempts
    assert len(tried) + len(unsent) == 200
    assert summary.stopped_reason is not None
    assert "cannot reach the server" in summary.stopped_reason


async def test_an_unreachable_files_api_names_its_own_option(
    evolink_sandbox: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _spec(tmp_path)
    async with dead_host(refuse=True) as host:
        argv = _edit_argv(tmp_path, evolink_sandbox, base_url=evolink_sandbox.base_url, files_base_url=host.url)
        assert await anyio.to_thread.run_sync(main, argv) == 2  # nothing ran: fix the URL (README)
    err = capsys.readouterr().err
    assert "check --files-base-url" in err
    assert evolink_sandbox.ledger.billed == []
