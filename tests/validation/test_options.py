"""Nonsense options and wrongly typed inputs raise ValidationError, early.

Every case must raise ``evolink.ValidationError`` (a ``ValueError``) whose message names the
field, before any network call (the counting server sees no request). ``bool`` is not an int.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

import evolink_async as evolink
from tests.helpers.hostile import API_KEY, HostileServer, client_for, edit, hostile_server, json_answer, task_body

NAN = math.nan
INF = math.inf
TASK_ID = "task-unified-1757165031-options"


async def _answer_completed(request: web.Request) -> web.StreamResponse:
    return json_answer(task_body(TASK_ID, status="completed"))


@pytest.fixture
async def server() -> AsyncIterator[HostileServer]:
    async with hostile_server(_answer_completed) as running:
        yield running


def _names(exc: pytest.ExceptionInfo[evolink.ValidationError], field: str) -> None:
    assert field in str(exc.value), f"{str(exc.value)!r} does not name {field!r}"


# --- item 4: client construction --------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("timeout", 0),
        ("timeout", -1),
        ("timeout", NAN),
        ("timeout", "5"),
        ("connect_timeout", 0),
        ("connect_timeout", NAN),
        ("connect_timeout", -1),
        ("max_retries", -1),
        ("max_retries", 1.5),
        ("max_retries", True),
        ("max_connections", 0),
        ("max_concurrent_queries", 0),
    ],
)
def test_client_rejects_nonsense_options(field: str, value: Any) -> None:
    """Item 4: EvolinkClient(timeout/connect_timeout/max_retries/max_connections/
    max_concurrent_queries=nonsense) raises ValidationError naming the field, at construction."""
    with pytest.raises(evolink.ValidationError) as exc:
        evolink.EvolinkClient(API_KEY, base_url="https://api.example.com", **{field: value})
    _names(exc, field)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("min_interval", NAN),
        ("min_interval", -1.0),
        ("max_interval", NAN),
        ("default_estimated_time", NAN),
        ("default_estimated_time", -5.0),
        ("first_query", NAN),
        ("first_query", -1.0),
        ("resolution", NAN),
        ("overdue_after", NAN),
        ("overdue_after", -1.0),
        ("backoff", NAN),
        ("approach", NAN),
        ("final_margin", NAN),
        ("jitter", NAN),
        ("max_error_interval", NAN),
        ("max_error_interval", -1.0),
    ],
)
def test_poll_policy_rejects_nan_and_negative_fields(field: str, value: float) -> None:
    """Item 4: PollPolicy fields with NaN or negatives raise ValidationError naming the field."""
    with pytest.raises(evolink.ValidationError) as exc:
        evolink.PollPolicy(**{field: value})
    _names(exc, field)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_retries", -1),
        ("max_retries", 1.5),
        ("max_retries", True),
        ("max_retries", NAN),
        ("initial_delay", NAN),
        ("initial_delay", -1.0),
        ("max_delay", NAN),
        ("max_delay", INF),
        ("max_retry_after", NAN),
        ("max_retry_after", -1.0),
    ],
)
def test_retry_policy_rejects_nonsense_fields(field: str, value: Any) -> None:
    """Item 4: RetryPolicy fields with NaN, inf, negatives, floats or bools for counts raise
    ValidationError naming the field."""
    with pytest.raises(evolink.ValidationError) as exc:
        evolink.RetryPolicy(**{field: value})
    _names(exc, field)


# --- item 4: per-call options -------------------------------------------------------------------


async def test_wait_rejects_nan_timeout(server: HostileServer) -> None:
    """Item 4: ``tasks.wait(timeout=nan)`` raises ValidationError naming timeout, before any query."""
    async with client_for(server) as client:
        async with asyncio.timeout(10):
            with pytest.raises(evolink.ValidationError) as exc:
                await client.tasks.wait(TASK_ID, timeout=NAN)
    _names(exc, "timeout")
    assert server.total == 0


@pytest.mark.parametrize("value", [NAN, INF, -1, "5", True], ids=["nan", "inf", "neg", "str", "bool"])
async def test_stream_rejects_nonsense_timeout(server: HostileServer, value: Any) -> None:
    """Item 4: ``tasks.stream(timeout=nan|inf|-1|"5"|True)`` raises ValidationError naming
    timeout (at the call or at the first iteration), before any query."""
    async with client_for(server) as client:
        async with asyncio.timeout(10):
            with pytest.raises(evolink.ValidationError) as exc:
                stream = client.tasks.stream(TASK_ID, timeout=value)
                async with stream:
                    await anext(stream)
    _names(exc, "timeout")
    assert server.total == 0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("timeout", NAN),
        ("max_in_flight", "5"),
        ("max_in_flight", NAN),
        ("max_in_flight", True),
        ("max_submits_per_second", NAN),
        ("buffer_size", True),
    ],
)
async def test_fan_out_rejects_nonsense_options(server: HostileServer, field: str, value: Any) -> None:
    """Items 4/18: fan_out(timeout=nan, max_in_flight="5"|nan|True, max_submits_per_second=nan,
    buffer_size=True) raises ValidationError naming the field (at the call or on entering the
    block), before any submit."""
    async with client_for(server) as client:
        async with asyncio.timeout(10):
            with pytest.raises(evolink.ValidationError) as exc:
                async with client.fan_out([edit()], **{field: value}) as events:
                    async for _ in events:
                        pass
    _names(exc, field)
    assert server.total == 0


@pytest.mark.parametrize(
    ("field", "value"),
    [("timeout", 0), ("timeout", NAN), ("timeout", -5), ("max_bytes", 0), ("max_bytes", -1)],
)
async def test_download_rejects_nonsense_options(server: HostileServer, tmp_path: Path, field: str, value: Any) -> None:
    """Item 4: ``client.download(..., timeout=0|nan|-5)`` and ``max_bytes=0|-1`` raise
    ValidationError naming the field before anything is fetched."""
    async with client_for(server) as client:
        async with asyncio.timeout(10):
            with pytest.raises(evolink.ValidationError) as exc:
                await client.download([f"{server.url}/result-0.png"], tmp_path, **{field: value})
    _names(exc, field)
    assert server.total == 0


# --- same class elsewhere: other NaN entry points ------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [("timeout", NAN), ("timeout", 0), ("connect_timeout", -1), ("max_retries", -1), ("max_retries", True)],
)
async def test_with_options_rejects_nonsense(field: str, value: Any) -> None:
    """Extra (item 4 class): ``client.with_options(...)`` validates like the constructor."""
    async with evolink.EvolinkClient(API_KEY, base_url="https://api.example.com") as client:
        with pytest.raises(evolink.ValidationError) as exc:
            client.with_options(**{field: value})
    _names(exc, field)


async def test_upload_and_generate_reject_nan(server: HostileServer) -> None:
    """Extra (item 4 class): ``files.upload(max_bytes=nan)`` and ``images.generate(timeout=nan)``
    raise ValidationError naming the field before any request."""
    async with client_for(server) as client:
        async with asyncio.timeout(10):
            with pytest.raises(evolink.ValidationError) as exc:
                await client.files.upload(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, max_bytes=NAN, check_format=False)
            _names(exc, "max_bytes")
            with pytest.raises(evolink.ValidationError) as exc:
                await client.images.generate(edit(), timeout=NAN)
            _names(exc, "timeout")
    assert server.total == 0


# --- item 18: typed errors instead of TypeError / aiohttp errors ---------------------------------


@pytest.mark.parametrize("value", [None, 5], ids=["none", "int"])
def test_request_with_non_list_image_urls_is_a_validation_error(value: Any) -> None:
    """Item 18: QwenImageEdit(image_urls=None|5) raises ValidationError naming image_urls."""
    with pytest.raises(evolink.ValidationError) as exc:
        evolink.QwenImageEdit(prompt="x", image_urls=value)
    _names(exc, "image_urls")


def test_request_with_a_dict_for_image_urls_is_a_validation_error_about_image_urls() -> None:
    """Item 18: QwenImageEdit(image_urls={"a": 1}) raises ValidationError saying image_urls must be a
    list (not a complaint about the dict's key "a" taken for a URL)."""
    with pytest.raises(evolink.ValidationError) as exc:
        evolink.QwenImageEdit(prompt="x", image_urls={"https://example.com/a.png": 1})  # type: ignore[arg-type]
    _names(exc, "image_urls")
    assert "list" in str(exc.value)


def test_request_with_a_non_string_callback_url_is_a_validation_error() -> None:
    """Item 18: callback_url=123 raises ValidationError naming callback_url."""
    with pytest.raises(evolink.ValidationError) as exc:
        edit(callback_url=123)
    _names(exc, "callback_url")


async def test_wait_with_a_string_timeout_is_a_validation_error(server: HostileServer) -> None:
    """Item 18: ``tasks.wait(timeout="5")`` raises ValidationError naming timeout."""
    async with client_for(server) as client:
        async with asyncio.timeout(10):
            with pytest.raises(evolink.ValidationError) as exc:
                await client.tasks.wait(TASK_ID, timeout="5")  # type: ignore[arg-type]
    _names(exc, "timeout")
    assert server.total == 0


async def test_upload_of_a_folder_is_a_validation_error(server: HostileServer, tmp_path: Path) -> None:
    """Item 18: ``files.upload(<a folder Path>)`` raises ValidationError, before any request."""
    async with client_for(server) as client:
        async with asyncio.timeout(10):
            with pytest.raises(evolink.ValidationError):
                await client.files.upload(tmp_path)
    assert server.total == 0


async def test_download_into_an_existing_file_is_a_validation_error(server: HostileServer, tmp_path: Path) -> None:
    """Item 18: ``download(task, <path of an existing file>)`` raises ValidationError naming the
    destination, before anything is fetched."""
    occupied = tmp_path / "not-a-folder.txt"
    occupied.write_text("x")
    done = evolink.Task(
        id=TASK_ID, status=evolink.TaskStatus.COMPLETED, results=(f"{server.url}/result-0.png",)
    )
    async with client_for(server) as client:
        async with asyncio.timeout(10):
            with pytest.raises(evolink.ValidationError) as exc:
                await client.download(done, occupied)
    _names(exc, "dest_dir")
    assert server.total == 0


async def test_fan_out_of_none_is_a_validation_error(server: HostileServer) -> None:
    """Item 18: ``fan_out(None)`` raises ValidationError naming requests (at the call, on entering
    the block, or from iterating the events), never a TypeError."""
    async with client_for(server) as client:
        async with asyncio.timeout(10):
            with pytest.raises(evolink.ValidationError) as exc:
                async with client.fan_out(None) as events:  # type: ignore[arg-type]
                    async for _ in events:
                        pass
    _names(exc, "requests")


async def test_fan_out_with_an_unhashable_key_is_a_validation_error(server: HostileServer) -> None:
    """Item 18: an unhashable key in ``fan_out([(["a"], request)])`` raises ValidationError naming
    key from iterating the events (not a TypeError), and nothing is submitted for it."""
    async with client_for(server) as client:
        async with asyncio.timeout(10):
            with pytest.raises(evolink.ValidationError) as exc:
                async with client.fan_out([(["a"], edit())]) as events:
                    async for _ in events:
                        pass
    _names(exc, "key")
    assert server.total == 0


@pytest.mark.parametrize("base_url", ["ftp://x", "not a url"])
def test_client_rejects_a_base_url_that_is_no_http_url(base_url: str) -> None:
    """Item 18: EvolinkClient(base_url="ftp://x" | "not a url") raises ValidationError naming base_url."""
    with pytest.raises(evolink.ValidationError) as exc:
        evolink.EvolinkClient(API_KEY, base_url=base_url)
    _names(exc, "base_url")


def test_local_image_given_as_str_says_to_use_pathlib_path() -> None:
    """Item 18: a local image given as ``str`` ("/tmp/x.png") raises ValidationError whose message
    says to use pathlib.Path for local files."""
    with pytest.raises(evolink.ValidationError) as exc:
        evolink.QwenImageEdit(prompt="x", image_urls=["/tmp/x.png"])
    _names(exc, "image_urls")
    assert "pathlib.Path" in str(exc.value)


@pytest.mark.parametrize("client_class", [evolink.EvolinkClient, evolink.MidjourneyClient])
async def test_max_retries_and_a_retry_policy_together_are_refused(client_class: Any) -> None:
    """Which of the two should win is a guess: the constructor and ``with_options`` refuse both at once."""
    policy = evolink.RetryPolicy(max_retries=1)
    with pytest.raises(evolink.ValidationError) as exc:
        client_class(API_KEY, base_url="https://api.example.com", max_retries=7, retry=policy)
    _names(exc, "max_retries")
    async with client_class(API_KEY, base_url="https://api.example.com", retry=policy) as client:
        with pytest.raises(evolink.ValidationError) as exc:
            client.with_options(max_retries=7, retry=policy)
        _names(exc, "max_retries")
        client.with_options(max_retries=7)  # either alone is fine
        client.with_options(retry=evolink.RetryPolicy(max_retries=7))


@pytest.mark.parametrize(
    ("variable", "make"),
    [
        ("EVOLINK_BASE_URL", lambda: evolink.EvolinkClient(API_KEY)),
        ("EVOLINK_FILES_BASE_URL", lambda: evolink.EvolinkClient(API_KEY)),
        ("MJ_PROXY_BASE_URL", lambda: evolink.MidjourneyClient(API_KEY)),
    ],
)
def test_a_url_variable_set_but_empty_is_refused_not_taken_for_the_default_host(
    monkeypatch: pytest.MonkeyPatch, variable: str, make: Any
) -> None:
    """``EVOLINK_BASE_URL=`` once sent a run's submits to the paid default host (its uploads went elsewhere)."""
    for name in ("EVOLINK_BASE_URL", "EVOLINK_FILES_BASE_URL", "MJ_PROXY_BASE_URL"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    monkeypatch.setenv(variable, " ")
    with pytest.raises(evolink.ValidationError) as exc:
        make()
    assert exc.value.field == f"${variable}"
    assert "empty" in exc.value.rule


@pytest.mark.parametrize("options", [{"api_key": "x"}, {"api_key": ""}, {"extra_api_keys": ["sk-evo-ok-one", "0"]}])
def test_a_sandbox_refuses_a_key_no_client_could_send(options: dict[str, Any]) -> None:
    from evolink_async.sandbox import Sandbox

    with pytest.raises(evolink.ValidationError) as exc:
        Sandbox(**options)
    assert exc.value.field in options
