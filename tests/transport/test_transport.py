"""Request/response shape against aioresponses: headers, bodies, status mapping, retries, idempotency."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses
from yarl import URL

import evolink_async as evolink
from evolink_async import EvolinkClient, QwenImageEdit
from tests.conftest import API_KEY, BASE, wire_headers

SUBMIT_URL = f"{BASE}/v1/images/generations"
TASK = {"id": "task-unified-1-abc", "status": "pending", "progress": 0, "task_info": {"estimated_time": 30}}
REQUEST = QwenImageEdit(prompt="replace the background", image_urls=["https://example.com/a.png"])


def calls(mock_http: aioresponses, method: str, url: str) -> list[Any]:
    return list(mock_http.requests.get((method, URL(url)), []))


async def test_submit_request_shape(mock_http: aioresponses, client: EvolinkClient) -> None:
    mock_http.post(SUBMIT_URL, payload=TASK, headers={"x-request-id": "req-1"})
    task = await client.images.submit(REQUEST)
    assert task.id == "task-unified-1-abc"
    (call,) = calls(mock_http, "POST", SUBMIT_URL)
    headers = await wire_headers(call, SUBMIT_URL)
    assert headers["Authorization"] == f"Bearer {API_KEY}"
    assert headers["User-Agent"].startswith("evolink-async/")
    key = headers["Idempotency-Key"]
    assert 16 <= len(key) <= 96
    assert call.kwargs["json"] == {
        "model": "qwen-image-edit",
        "prompt": "replace the background",
        "image_urls": ["https://example.com/a.png"],
    }


async def test_query_request_shape_and_id_quoting(mock_http: aioresponses, client: EvolinkClient) -> None:
    mock_http.get(f"{BASE}/v1/tasks/task-unified-1-abc", payload={**TASK, "status": "processing", "progress": 40})
    task = await client.tasks.get("task-unified-1-abc")
    assert task.status is evolink.TaskStatus.PROCESSING
    assert task.progress == 40
    with pytest.raises(evolink.ValidationError, match="task_id"):
        await client.tasks.get("../v1/images/generations")


async def test_idempotency_key_reused_across_retries(mock_http: aioresponses, client: EvolinkClient) -> None:
    mock_http.post(SUBMIT_URL, status=503, payload={"error": {"code": "service_unavailable", "message": "busy"}})
    mock_http.post(SUBMIT_URL, exception=aiohttp.ServerDisconnectedError())
    mock_http.post(SUBMIT_URL, status=500, body="oops")
    mock_http.post(SUBMIT_URL, payload=TASK)
    task = await client.images.submit(REQUEST)
    assert task.id == TASK["id"]
    keys = {c.kwargs["headers"]["Idempotency-Key"] for c in calls(mock_http, "POST", SUBMIT_URL)}
    assert len(calls(mock_http, "POST", SUBMIT_URL)) == 4
    assert len(keys) == 1


async def test_idempotency_keys_distinct_across_submits(mock_http: aioresponses, client: EvolinkClient) -> None:
    for _ in range(5):
        mock_http.post(SUBMIT_URL, payload=TASK)
    for _ in range(5):
        await client.images.submit(REQUEST)
    keys = {c.kwargs["headers"]["Idempotency-Key"] for c in calls(mock_http, "POST", SUBMIT_URL)}
    assert len(keys) == 5


async def test_caller_supplied_idempotency_key(mock_http: aioresponses, client: EvolinkClient) -> None:
    mock_http.post(SUBMIT_URL, payload=TASK)
    await client.images.submit(REQUEST, idempotency_key="batch-42.photo_001")
    (call,) = calls(mock_http, "POST", SUBMIT_URL)
    assert call.kwargs["headers"]["Idempotency-Key"] == "batch-42.photo_001"
    with pytest.raises(evolink.ValidationError, match="idempotency_key"):
        await client.images.submit(REQUEST, idempotency_key="short")
    with pytest.raises(evolink.ValidationError, match="idempotency_key"):
        await client.images.submit(REQUEST, idempotency_key="has spaces in it, not allowed")


STATUS_CLASSES = [
    (400, "invalid_request_error", evolink.BadRequestError),
    (401, "authentication_error", evolink.AuthenticationError),
    (402, "insufficient_quota_error", evolink.InsufficientCreditsError),
    (403, "permission_error", evolink.PermissionDeniedError),
    (404, "not_found_error", evolink.NotFoundError),
    (413, "request_too_large_error", evolink.RequestTooLargeError),
    (429, "rate_limit_error", evolink.RateLimitError),
    (500, "internal_server_error", evolink.ServerError),
    (502, "upstream_error", evolink.ServerError),
    (503, "service_unavailable_error", evolink.ServerError),
    (504, "gateway_timeout", evolink.ServerError),
    (418, "teapot", evolink.APIStatusError),
]


@pytest.mark.parametrize(("status", "type_", "cls"), STATUS_CLASSES)
async def test_status_maps_to_error_class(
    mock_http: aioresponses, client: EvolinkClient, status: int, type_: str, cls: type[evolink.APIStatusError]
) -> None:
    body = {"error": {"code": "some_code", "message": "what went wrong", "type": type_, "param": "task_id"}}
    for _ in range(4):
        mock_http.get(f"{BASE}/v1/tasks/task-unified-1", status=status, payload=body, headers={"x-request-id": "rq-9"})
    with pytest.raises(cls) as info:
        await client.tasks.get("task-unified-1")
    err = info.value
    assert type(err) is cls
    assert isinstance(err, evolink.EvolinkError)
    assert (err.status_code, err.code, err.type, err.param, err.request_id) == (status, "some_code", type_,
                                                                                "task_id", "rq-9")
    assert err.message == "what went wrong"
    assert "\n" not in str(err)
    assert str(err) == f"HTTP {status} some_code: what went wrong (param=task_id, request_id=rq-9)"
    attempts = len(calls(mock_http, "GET", f"{BASE}/v1/tasks/task-unified-1"))
    assert attempts == (4 if status in {429, 500, 502, 503, 504} else 1)  # 1 try + 3 retries


async def test_documented_error_example_and_integer_code(mock_http: aioresponses, client: EvolinkClient) -> None:
    documented = {"error": {"code": "invalid_task_id",
                            "message": "Invalid task ID format, must start with 'task-unified-'",
                            "type": "invalid_request_error", "param": "task_id"}}
    mock_http.get(f"{BASE}/v1/tasks/abc", status=400, payload=documented, headers={"X-Oneapi-Request-Id": "one-1"})
    mock_http.get(f"{BASE}/v1/tasks/def", status=402, payload={"error": {"code": 4021, "message": "no balance"}})
    with pytest.raises(evolink.BadRequestError) as bad:
        await client.tasks.get("abc")
    with pytest.raises(evolink.InsufficientCreditsError) as poor:
        await client.tasks.get("def")
    assert bad.value.code == "invalid_task_id"
    assert bad.value.request_id == "one-1"
    assert poor.value.code == "4021"


async def test_non_json_error_body(mock_http: aioresponses, client: EvolinkClient) -> None:
    mock_http.get(f"{BASE}/v1/tasks/t", status=400, body="<html>Bad Gateway</html>")
    with pytest.raises(evolink.BadRequestError, match="Bad Gateway"):
        await client.tasks.get("t")


async def test_retry_after_is_honoured_then_success(
    mock_http: aioresponses, client: EvolinkClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    slept: list[float] = []

    async def fake_sleep(delay: float) -> None:
        slept.append(delay)

    monkeypatch.setattr("evolink_async._core.transport.anyio.sleep", fake_sleep)
    mock_http.get(f"{BASE}/v1/tasks/t", status=429, headers={"Retry-After": "2"})
    mock_http.get(f"{BASE}/v1/tasks/t", payload={**TASK, "id": "t"})
    await client.tasks.get("t")
    assert slept
    # Counted from the 429's arrival (less the clock's progress since): the full wait, no backoff added.
    assert 1.9 < slept[0] <= 2.0


async def test_retry_after_past_the_cap_raises_rate_limit_error(mock_http: aioresponses, client: EvolinkClient) -> None:
    mock_http.get(f"{BASE}/v1/tasks/t", status=429, headers={"Retry-After": "3600"},
               payload={"error": {"code": "rate_limited", "message": "slow down"}})
    with pytest.raises(evolink.RateLimitError) as info:
        await client.tasks.get("t")
    assert info.value.retry_after == 3600.0
    assert len(calls(mock_http, "GET", f"{BASE}/v1/tasks/t")) == 1


async def test_connection_errors_exhaust_into_api_connection_error(mock_http: aioresponses, client: EvolinkClient) -> None:
    for _ in range(4):
        mock_http.get(f"{BASE}/v1/tasks/t", exception=aiohttp.ClientConnectionError("refused"))
    with pytest.raises(evolink.APIConnectionError):
        await client.tasks.get("t")
    assert len(calls(mock_http, "GET", f"{BASE}/v1/tasks/t")) == 4


async def test_timeouts_raise_api_timeout_error(mock_http: aioresponses, client: EvolinkClient) -> None:
    for _ in range(4):
        mock_http.get(f"{BASE}/v1/tasks/t", exception=TimeoutError())
    with pytest.raises(evolink.APITimeoutError):
        await client.tasks.get("t")


async def test_idempotency_conflict_is_not_retried(mock_http: aioresponses, client: EvolinkClient) -> None:
    mock_http.post(SUBMIT_URL, status=409, payload={"error": {"code": "idempotency_conflict", "message": "other body"}})
    with pytest.raises(evolink.APIStatusError) as info:
        await client.images.submit(REQUEST)
    assert info.value.code == "idempotency_conflict"
    assert len(calls(mock_http, "POST", SUBMIT_URL)) == 1


async def test_malformed_json_is_retried_then_reported(mock_http: aioresponses, client: EvolinkClient) -> None:
    mock_http.get(f"{BASE}/v1/tasks/t", body="{not json")
    mock_http.get(f"{BASE}/v1/tasks/t", payload={**TASK, "id": "t"})
    assert (await client.tasks.get("t")).id == "t"
    for _ in range(4):
        mock_http.get(f"{BASE}/v1/tasks/u", body="{not json", headers={"x-request-id": "rq-bad"})
    with pytest.raises(evolink.ResponseFormatError, match="rq-bad"):
        await client.tasks.get("u")


async def test_zero_retries_sends_once(mock_http: aioresponses, client: EvolinkClient) -> None:
    once = client.with_options(max_retries=0)
    mock_http.get(f"{BASE}/v1/tasks/t", status=503)
    with pytest.raises(evolink.ServerError):
        await once.tasks.get("t")
    assert len(calls(mock_http, "GET", f"{BASE}/v1/tasks/t")) == 1


async def test_oversized_answer_is_refused(mock_http: aioresponses, client: EvolinkClient) -> None:
    small = EvolinkClient(API_KEY, base_url=BASE)
    small._config = small._transport._config = __import__("attrs").evolve(small._config, max_response_bytes=100)
    mock_http.get(f"{BASE}/v1/tasks/t", payload={**TASK, "id": "t", "padding": "x" * 500})
    with pytest.raises(evolink.ResponseFormatError, match="limit") as refused:
        await small.tasks.get("t")
    await small.aclose()
    assert f"GET {BASE}/v1/tasks/t" in str(refused.value)  # which call it was


async def test_a_compressed_answer_is_bounded_by_what_it_inflates_to() -> None:
    import gzip
    import json

    import attrs
    from aiohttp import web

    inflated = json.dumps({**TASK, "id": "t", "padding": "x" * 50_000}).encode()
    compressed = gzip.compress(inflated)

    async def handler(_request: web.Request) -> web.Response:
        return web.Response(body=compressed, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"})

    app = web.Application()
    app.router.add_get("/v1/tasks/{task_id}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with EvolinkClient(API_KEY, base_url=f"http://127.0.0.1:{port}") as small:
            small._config = small._transport._config = attrs.evolve(small._config, max_response_bytes=10_000)
            assert len(compressed) < 10_000 < len(inflated)
            with pytest.raises(evolink.ResponseFormatError, match="limit"):
                await small.tasks.get("t")
            small._config = small._transport._config = attrs.evolve(small._config, max_response_bytes=100_000)
            assert (await small.tasks.get("t")).raw["padding"] == "x" * 50_000
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(
    "raw",
    [
        '{"id": "täsk", "n": 1}'.encode(),
        b'\xef\xbb\xbf{"id": "bom", "n": 1}',  # a UTF-8 byte order mark
        '{"id": "wide", "n": 1}'.encode("utf-16"),
        '{"id": "le", "n": 1}'.encode("utf-16-le"),  # starts with "{", then NULs
    ],
)
def test_answers_in_every_encoding_json_loads_reads_still_decode(raw: bytes) -> None:
    """The fast UTF-8 path falls back to ``json.loads(bytes)``, so no body that parsed before fails."""
    import json

    from evolink_async._core.transport import decode_json

    assert decode_json(raw) == json.loads(raw)


def test_invalid_json_still_raises_from_both_paths() -> None:
    import json

    from evolink_async._core.transport import decode_json

    with pytest.raises(json.JSONDecodeError):
        decode_json(b'{"id": ')
    with pytest.raises(UnicodeDecodeError):
        decode_json(b"\xff\xfe\xfa")


def test_invalid_utf8_json_is_parsed_once() -> None:
    """A garbled answer (an HTML error page) fails from the one parse, not after a second one."""
    import json
    from unittest import mock

    from evolink_async._core import answers

    with mock.patch.object(answers.json, "loads", wraps=json.loads) as loads:
        with pytest.raises(json.JSONDecodeError):
            answers.decode_json(b"<html><body>502 Bad Gateway</body></html>")
    assert loads.call_count == 1


@pytest.mark.parametrize(
    "raw",
    [
        b'{"id": "t", "error": {"message": "bad \\ud800 here", "\\udfff": ["\\ud83d"]}}',  # lone escapes
        b'{"id": "t", "error": {"message": "bad \xed\xa0\x80 here"}}',  # a surrogate encoded as bytes
        '{"id": "t", "error": {"message": "bad \\ud800 here"}}'.encode("utf-16"),
    ],
)
def test_lone_surrogates_from_an_answer_become_replacement_characters(raw: bytes) -> None:
    """No encoder takes a lone surrogate (SQLite, files, the terminal): a hostile answer's text
    must not carry one into the journal or the CLI's output."""
    import json

    from evolink_async._core.transport import decode_json

    body = decode_json(raw)
    json.dumps(body, ensure_ascii=False).encode()  # raises UnicodeEncodeError on a lone surrogate
    assert body["error"]["message"] == "bad \ufffd here"


def test_a_surrogate_pair_written_as_escapes_stays_one_character() -> None:
    from evolink_async._core.transport import decode_json

    assert decode_json(b'{"m": "smile \\ud83d\\ude00 \\u00e9"}') == {"m": "smile \U0001f600 \u00e9"}
