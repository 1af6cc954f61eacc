"""A model the service does not offer (a mistyped ``--model``) stops a batch at its first refusal.

Every other input names the same model and would be refused alike: one error naming the model's
refusal, no failure per input, nothing billed, and not one upload and one submit per input.
API.md A4 does not say how the real service names an unknown model; the sandbox says
``model_unavailable`` in ``error.code`` (A4's shape), Evolink's own client (A6) reads the same name
from ``error.type``: both are recognised, and only for a refusal (4xx), never a 401 or a 429.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
from aiohttp import web

import evolink_async as evolink
from evolink_async.batch import Batch, BatchSpec
from evolink_async.batch._entries import EntryStatus
from evolink_async.batch._sqlite_store import Journal
from evolink_async.cli import main
from evolink_async.errors import was_refused_for_now
from evolink_async.sandbox import Sandbox
from tests.helpers.hostile import SUBMIT, client_for, edit, hostile_server, json_answer
from tests.helpers.images import write_png

Build = Callable[..., evolink.EvolinkClient]
COUNT = 20
IN_FLIGHT = 2


def _spec(tmp_path: Path, model: str) -> BatchSpec:
    for index in range(COUNT):
        write_png(tmp_path / "in" / f"{index}.png", shade=index * 10)
    return BatchSpec(model=model, prompt="make it autumn", input_dir=tmp_path / "in",
                     output_dir=tmp_path / "out", max_in_flight=IN_FLIGHT)  # fmt: skip


def _refusal(status: int, *, code: str, type_: str) -> web.Response:
    return json_answer({"error": {"code": code, "type": type_, "message": "This model is not available",
                                  "fallback_suggestion": "use qwen-image-edit"}}, status=status)  # fmt: skip


async def test_a_mistyped_model_stops_the_folder_batch_at_the_first_refusal(
    evolink_sandbox: Sandbox, scaled_client: Build, tmp_path: Path
) -> None:
    spec = _spec(tmp_path, "qwen-image-editt")
    async with scaled_client(evolink_sandbox) as client:
        batch = Batch(client, spec)
        with pytest.raises(evolink.ModelUnavailableError) as stopped:
            await batch.run()
    assert stopped.value.status_code == 400
    assert "qwen-image-editt" in str(stopped.value)
    assert stopped.value.suggestion  # the sandbox's "use an available model" hint reaches the person
    assert batch.summary.failed == []  # not twenty identical failures
    submits = evolink_sandbox.ledger.requests.get(f"POST {SUBMIT}", 0)
    # Those in flight when the first refusal came, at most: not one per input.
    assert 1 <= submits <= IN_FLIGHT
    assert evolink_sandbox.ledger.billed == []
    async with Journal(spec.journal_path) as journal:
        counts = await journal.counts()
    assert counts[EntryStatus.SUBMIT_FAILED] == 0  # refused for the model, not for the input: still to submit
    assert counts[EntryStatus.SUBMITTED] == 0


async def test_the_cli_exits_2_naming_the_model_option(
    evolink_sandbox: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _spec(tmp_path, "unused")
    argv = ["edit", str(tmp_path / "in"), "--prompt", "autumn", "--out", str(tmp_path / "out"),
            "--model", "qwen-image-editt", "--base-url", evolink_sandbox.base_url,
            "--files-base-url", evolink_sandbox.files_base_url, "--api-key", evolink_sandbox.api_key,
            "--poll-scale", "0.01", "--max-in-flight", str(IN_FLIGHT)]  # fmt: skip
    assert await anyio.to_thread.run_sync(main, argv) == 2
    err = capsys.readouterr().err
    assert err.count("evolink: ") == 1
    assert "check --model" in err
    assert "qwen-image-editt" in err
    assert "Nothing was billed" in err
    assert "another --out" in err  # what to do next: this folder's journal keeps its batch's model
    assert evolink_sandbox.api_key not in err
    assert evolink_sandbox.ledger.requests.get(f"POST {SUBMIT}", 0) <= IN_FLIGHT


@pytest.mark.parametrize(("status", "code", "type_"), [
    (400, "model_unavailable", "invalid_request_error"),  # API.md A4's shape (what the sandbox sends)
    (400, "invalid_model", "model_unavailable"),  # where Evolink's own client looks for it
    (403, "model_unavailable", "permission_error"),
    (404, "model_not_found", "model_unavailable"),  # not read as a missing endpoint
])  # fmt: skip
async def test_fan_out_ends_with_one_model_error_whichever_field_names_it(status: int, code: str, type_: str) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        return _refusal(status, code=code, type_=type_)

    async with hostile_server(handler) as server, client_for(server) as client:
        with pytest.raises(evolink.ModelUnavailableError) as stopped:
            async with client.fan_out((edit(n) for n in range(1000)), max_in_flight=4) as stream:
                async for _ in stream:
                    pass
        assert stopped.value.status_code == status
        assert stopped.value.suggestion == "use qwen-image-edit"
        assert not isinstance(stopped.value, evolink.EndpointMissingError)
        assert server.count("POST", SUBMIT) <= 4  # refused for sure: not retried, and not 1,000 submits
        assert was_refused_for_now(stopped.value)  # nothing created: the input may go again


@pytest.mark.parametrize(("status", "expected"), [
    (401, evolink.AuthenticationError),  # a refused key stays a refused key, whatever else the body says
    (429, evolink.RateLimitError),
    (503, evolink.ServerError),
])  # fmt: skip
async def test_the_name_does_not_override_a_key_refusal_a_rate_limit_or_a_server_error(
    status: int, expected: type[evolink.APIStatusError]
) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        return _refusal(status, code="model_unavailable", type_="model_unavailable")

    async with hostile_server(handler) as server, client_for(server) as client:
        with pytest.raises(expected) as raised:
            await client.images.submit(edit(0))
    assert not isinstance(raised.value, evolink.ModelUnavailableError)


@pytest.mark.parametrize(("status", "code", "type_"), [
    (402, "key_quota_exhausted", "insufficient_quota_error"),  # API.md A4
    (403, "quota", "insufficient_quota"),  # the name Evolink's own client reads from ``type``
    (400, "insufficient_quota", "invalid_request_error"),
])  # fmt: skip
async def test_an_insufficient_quota_answer_is_out_of_credits_whichever_field_names_it(
    status: int, code: str, type_: str
) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        return _refusal(status, code=code, type_=type_)

    async with hostile_server(handler) as server, client_for(server) as client:
        with pytest.raises(evolink.InsufficientCreditsError) as raised:
            await client.images.submit(edit(0))
    assert raised.value.status_code == status
