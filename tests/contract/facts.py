"""Every documented fact of /work/shared/API.md parts A and B, stated once, as data.

A ``Fact`` is one request and what the documents say its answer is: the status, and the body's
fields, types or values (``body`` maps a path to an expectation; ``a.b`` walks objects, ``a[]``
checks every item of a list, ``a[0]`` one item). ``test_sandbox_answers.py`` sends each request
to a sandbox over HTTP and checks the answer; ``test_sdk_parses.py`` serves each fact's
``example`` (the body as API.md prints it) to the SDK's own client and checks what it parsed.

A fact the sandbox cannot honour is in ``KNOWN_DIFFERENCES`` with the reason, and its check is a
strict xfail: if the sandbox starts to honour it, the run fails until the entry is removed.
Facts no local emulator can observe (billing after moderation, the real hosts) are there too,
without a check. Nothing is skipped silently: ``test_known_differences.py`` holds the list honest.

The module is long on purpose: it is one table, so that each fact is stated in one place.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any, Literal

import attrs

from evolink_async.sandbox import Faults
from tests.helpers.images import png_bytes

# --- expectations ---------------------------------------------------------------------------


@attrs.frozen
class Prefix:
    """A string starting with ``text``."""

    text: str


@attrs.frozen
class OneOf:
    """Any of ``values``."""

    values: tuple[Any, ...]


@attrs.frozen
class Length:
    """A list (or string) of exactly ``n`` items."""

    n: int


@attrs.frozen
class Number:
    """A JSON number (int or float, never a bool)."""


@attrs.frozen
class Absent:
    """The field is not in the body."""


@attrs.frozen
class TypeForStatus:
    """``error.type`` as A4's table names it for the answer's HTTP status."""


NUMBER, ABSENT, TYPE_FOR_STATUS = Number(), Absent(), TypeForStatus()

#: A4's table: HTTP status -> ``error.type``.
A4_ERROR_TYPES: Mapping[int, str] = {
    400: "invalid_request_error", 401: "authentication_error", 402: "insufficient_quota_error",
    403: "permission_error", 404: "not_found_error", 413: "request_too_large_error", 429: "rate_limit_error",
    500: "internal_server_error", 502: "upstream_error", 503: "service_unavailable_error",
}  # fmt: skip

#: A3's task-level error codes (both groups) and A6's not-retryable ones.
A3_ERROR_CODES = frozenset({
    "content_policy_violation", "invalid_parameters", "image_processing_error", "image_dimension_mismatch",
    "request_cancelled", "generation_failed_no_content", "service_error", "generation_timeout",
    "resource_exhausted", "quota_exceeded", "service_unavailable", "resource_not_found", "unknown_error",
})  # fmt: skip
A6_NOT_RETRYABLE = frozenset({
    "content_policy_violation", "invalid_parameters", "image_dimension_mismatch", "image_processing_error",
    "request_cancelled", "resource_not_found",
})  # fmt: skip

# --- inputs ---------------------------------------------------------------------------------

PNG = png_bytes(400, 400)
PNG_DATA_URL = "data:image/png;base64," + base64.b64encode(PNG).decode()
TRUNCATED_PNG = PNG[: len(PNG) // 2]
BMP = b"BM" + (70).to_bytes(4, "little") + b"\x00" * 64
TIFF = b"II*\x00" + b"\x00" * 64
WAV = b"RIFF" + (36).to_bytes(4, "little") + b"WAVEfmt " + b"\x00" * 28
MP4 = b"\x00\x00\x00\x18ftypisom" + b"\x00" * 32
REMOTE_IMAGE = "https://example.com/input.png"  # never fetched: the sandbox contacts no other host


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# --- the fact type --------------------------------------------------------------------------

Host = Literal["api", "files", "mj"]
Parse = Literal["submit", "task", "http_error", "upload", "list", "quota", "delete", "mj_submit", "mj_task"]


@attrs.frozen(kw_only=True)
class Call:
    """One HTTP request. ``{name}`` in ``path`` or string values of ``json`` is filled by the setup."""

    method: str
    host: Host
    path: str
    json: Any = None
    form: Mapping[str, Any] | None = None  # multipart; a (filename, bytes) value is a file part
    query: Mapping[str, str] | None = None
    raw_body: bytes | None = None
    key: Literal["right", "wrong", "none"] = "right"


@attrs.frozen(kw_only=True)
class Fact:
    id: str
    source: str  # the API.md section that states it
    says: str  # the fact, in the documents' words
    #: None for a fact only a client can hold to (how to read an answer), checked by the parse test.
    call: Call | None
    status: int | OneOf = 200
    body: Mapping[str, Any] = attrs.field(factory=dict)
    headers: Mapping[str, Any] = attrs.field(factory=dict)
    #: A step of conftest.SETUPS run first (an upload, a finished task, a full quota ...).
    setup: str | None = None
    #: ``Sandbox`` options this fact needs (the rest are the defaults the fact is about).
    sandbox: Mapping[str, Any] = attrs.field(factory=dict)
    #: The documented body for the parse test, what the SDK is given, and what it must make of it.
    example: Any = None
    example_status: int = 200
    parse: Parse | None = None
    parsed: Mapping[str, Any] = attrs.field(factory=dict)
    #: For a submit with a ``callback_url``: what its receiver must get once the sandbox is done
    #: delivering (``posts``: how many POSTs; ``body``: expectations on each; ``as_queried``: each
    #: body equals the task query's answer).
    callbacks: Mapping[str, Any] | None = None


SUBMIT = "/v1/images/generations"
FILES = "/api/v1/files"
RETEXTURE = {"model": "mj-v7-retexture", "prompt": "cyberpunk neon", "image_urls": [REMOTE_IMAGE]}
QWEN = {"model": "qwen-image-edit", "prompt": "make it blue", "image_urls": [REMOTE_IMAGE]}

A1_SUBMITTED = {
    "created": 1757165031, "id": "task-unified-1757165031-mjv7", "model": "mj-v7-retexture",
    "object": "image.generation.task", "progress": 0, "status": "pending",
    "task_info": {"can_cancel": True, "estimated_time": 45}, "type": "image",
    "usage": {"billing_rule": "per_call", "credits_reserved": 1.8, "user_group": "default"},
}  # fmt: skip
A3_COMPLETED = {
    "created": 1756817821, "id": "task-unified-1756817821-4x3rx6ny", "model": "gpt-4o-image",
    "object": "image.generation.task", "progress": 100, "results": ["https://files.example/image.jpg"],
    "status": "completed", "task_info": {"can_cancel": False}, "type": "image",
}  # fmt: skip
A3_FAILED = {
    "id": "task-unified-1772618027-cmeisy8h", "object": "image.generation.task", "status": "failed",
    "model": "gemini-3.1-flash-image-preview", "progress": 0,
    "error": {"code": "content_policy_violation", "message": "Content policy violation. ..."},
}  # fmt: skip
A4_ERROR = {
    "error": {"code": "invalid_task_id", "message": "Invalid task ID format, must start with 'task-unified-'",
              "type": "invalid_request_error", "param": "task_id"},
}  # fmt: skip
A6_UPLOADED = {
    "success": True, "code": 200, "msg": "ok",
    "data": {"file_id": "file_abc123", "file_name": "avatar.png", "original_name": "avatar.png",
             "file_size": 2048, "mime_type": "image/png", "upload_path": "avatars",
             "file_url": "https://files.evolink.ai/avatars/avatar.png",
             "download_url": "https://files.evolink.ai/api/v1/files/download/file_abc123",
             "upload_time": "2026-01-01T00:00:00Z", "expires_at": "2026-01-04T00:00:00Z"},
}  # fmt: skip
B2_TASK = {
    "id": "1748339029401828", "action": "IMAGINE", "status": "SUCCESS",
    "prompt": "dog playing ball --v 7", "promptEn": "dog playing ball --v 7",
    "description": "/imagine dog playing ball --v 7", "state": None,
    "submitTime": 1748339029401, "startTime": 1748339030665, "finishTime": 1748339072775,
    "progress": "100%", "imageUrl": "https://cdn.example/x.png", "failReason": None,
    "properties": {"finalPrompt": "..."},
    "buttons": [{"customId": "MJ::JOB::upsample::1::0ddb91a0", "emoji": "", "label": "U1", "type": 2, "style": 2}],
}  # fmt: skip

UPLOAD_FIELDS = {
    "data.file_id": str, "data.file_name": str, "data.original_name": str, "data.file_size": int,
    "data.mime_type": str, "data.upload_path": str, "data.file_url": str, "data.download_url": str,
    "data.upload_time": str, "data.expires_at": str,
}  # fmt: skip
ENVELOPE_OK = {"success": True, "code": 200, "msg": str}
TASK_FIELDS = {
    "created": int, "id": Prefix("task-unified-"), "model": str, "object": "image.generation.task",
    "progress": int, "type": "image", "task_info.can_cancel": bool,
}  # fmt: skip


def files_error(code: int) -> dict[str, Any]:
    return {"success": False, "code": code, "msg": str}


def api_error(code: str | OneOf, **extra: Any) -> dict[str, Any]:
    return {"error.code": code, "error.message": str, "error.type": TYPE_FOR_STATUS, **extra}


FACTS: tuple[Fact, ...] = (
    # --- A1 submit ----------------------------------------------------------------------------
    Fact(
        id="A1.submit.answer", source="A1", says="A submit answers 200 with the task, pending, its estimate and usage",
        call=Call(method="POST", host="api", path=SUBMIT, json=RETEXTURE),
        status=200,
        body={**TASK_FIELDS, "status": "pending", "progress": 0, "task_info.can_cancel": True,
              "task_info.estimated_time": NUMBER, "usage.billing_rule": str, "usage.credits_reserved": NUMBER,
              "usage.user_group": str, "results": ABSENT},
        example=A1_SUBMITTED, parse="submit",
        parsed={"id": "task-unified-1757165031-mjv7", "status": "pending", "progress": 0, "estimated_time": 45.0,
                "task_info.can_cancel": True, "usage.credits_reserved": 1.8, "usage.billing_rule": "per_call",
                "usage.user_group": "default", "results": ()},
    ),
    Fact(
        id="A1.auth.wrong_key", source="A1, A4", says="Every call needs the Bearer key: a wrong one is a 401",
        call=Call(method="POST", host="api", path=SUBMIT, json=RETEXTURE, key="wrong"),
        status=401, body=api_error(str),
    ),
    Fact(
        id="A1.auth.no_key", source="A1, A4", says="Every call needs the Bearer key: none is a 401",
        call=Call(method="GET", host="api", path="/v1/tasks/task-unified-1-abcdefgh", key="none"),
        status=401, body=api_error(str),
    ),
    # --- A2 per-model inputs ----------------------------------------------------------------------
    Fact(
        id="A2.retexture.prompt_required", source="A2", says="mj-v7-retexture needs a prompt",
        call=Call(method="POST", host="api", path=SUBMIT, json={**RETEXTURE, "prompt": None}),
        status=400, body=api_error(str),
    ),
    Fact(
        id="A2.retexture.one_image", source="A2", says="mj-v7-retexture takes at most 1 image",
        call=Call(method="POST", host="api", path=SUBMIT, json={**RETEXTURE, "image_urls": [REMOTE_IMAGE] * 2}),
        status=400, body=api_error(str, **{"error.param": "image_urls"}),
    ),
    Fact(
        id="A2.retexture.speed", source="A2", says="mj-v7-retexture speed is fast or turbo",
        call=Call(method="POST", host="api", path=SUBMIT, json={**RETEXTURE, "model_params": {"speed": "draft"}}),
        status=400, body=api_error(str),
    ),
    Fact(
        id="A2.remove_bg.no_prompt", source="A2", says="mj-v7-remove-bg takes no prompt",
        call=Call(method="POST", host="api", path=SUBMIT,
                  json={"model": "mj-v7-remove-bg", "prompt": "x", "image_urls": [REMOTE_IMAGE]}),
        status=400, body=api_error(str, **{"error.param": "prompt"}),
    ),
    Fact(
        id="A2.remove_bg.formats", source="A2", says="mj-v7-remove-bg takes .png .gif .webp .jpg .jpeg",
        call=Call(method="POST", host="api", path=SUBMIT,
                  json={"model": "mj-v7-remove-bg", "image_urls": ["https://example.com/a.tiff"]}),
        status=400, body=api_error(str),
    ),
    Fact(
        id="A2.qwen.prompt_length", source="A2", says="qwen-image-edit prompts are at most 1000 characters",
        call=Call(method="POST", host="api", path=SUBMIT, json={**QWEN, "prompt": "x" * 1001}),
        status=400, body=api_error(str, **{"error.param": "prompt"}),
    ),
    Fact(
        id="A2.qwen.three_images", source="A2", says="qwen-image-edit takes at most 3 images",
        call=Call(method="POST", host="api", path=SUBMIT, json={**QWEN, "image_urls": [REMOTE_IMAGE] * 4}),
        status=400, body=api_error(str, **{"error.param": "image_urls"}),
    ),
    Fact(
        id="A2.qwen.bmp_by_url", source="A2", says="qwen-image-edit accepts .bmp and .tiff by URL",
        call=Call(method="POST", host="api", path=SUBMIT, json={**QWEN, "image_urls": ["https://example.com/a.bmp"]}),
        status=200, body={"status": "pending"},
    ),
    Fact(
        id="A2.qwen.sides", source="A2", says="qwen-image-edit input sides are within [384, 3072] px",
        call=Call(method="POST", host="api", path=SUBMIT, json={**QWEN, "image_urls": ["{small_file_url}"]}),
        setup="small_png_uploaded", status=400, body=api_error(str),
    ),
    Fact(
        id="A2.other_models", source="A2", says="Other documented models are reached on the same endpoint",
        call=Call(method="POST", host="api", path=SUBMIT,
                  json={"model": "gpt-image-1.5", "prompt": "a lighthouse", "size": "1024x1024"}),
        status=200, body={**TASK_FIELDS, "model": "gpt-image-1.5", "status": "pending"},
    ),
    Fact(
        id="A2.unknown_model", source="A2, A6",
        says="A model the service does not serve is refused (400, model_unavailable) with a fallback_suggestion",
        call=Call(method="POST", host="api", path=SUBMIT, json={"model": "no-such-model-9", "prompt": "x"}),
        status=400, body=api_error("model_unavailable", **{"error.fallback_suggestion": str}),
        example={"error": {"code": "model_unavailable", "message": "Model not available", "type": "invalid_request_error",
                           "param": "model", "fallback_suggestion": "Use qwen-image-edit"}},
        example_status=400, parse="http_error",
        parsed={"status_code": 400, "code": "model_unavailable", "type": "invalid_request_error", "param": "model",
                "suggestion": "Use qwen-image-edit", "class": "ModelUnavailableError"},
    ),
    # --- A3 query -------------------------------------------------------------------------------
    Fact(
        id="A3.completed", source="A3, A6",
        says="A completed task has progress 100, results (URL strings) and result_data[] with image_url",
        call=Call(method="GET", host="api", path="/v1/tasks/{task_id}"), setup="completed_task",
        status=200,
        body={**TASK_FIELDS, "status": "completed", "progress": 100, "task_info.can_cancel": False,
              "results": Length(1), "results[]": str, "result_data": Length(1), "result_data[].image_url": str,
              "error": ABSENT},
        example=A3_COMPLETED, parse="task",
        parsed={"status": "completed", "progress": 100, "results": ("https://files.example/image.jpg",),
                "task_info.can_cancel": False, "estimated_time": None, "result_data": ()},
    ),
    Fact(
        id="A3.result_data", source="A6",
        says="result_data[] items carry image_url, video_url, audio_url, title, duration beside results",
        call=Call(method="GET", host="api", path="/v1/tasks/{task_id}"), setup="completed_task",
        status=200, body={"result_data[0].image_url": "{result_0}"},
        example={**A3_COMPLETED, "result_data": [
            {"image_url": "https://files.example/image.jpg", "result_id": "r1"},
            {"audio_url": "https://files.example/a.mp3", "title": "Song", "duration": 61.5, "tags": "pop"},
            {"video_url": "https://files.example/v.mp4", "duration": 5}]},
        parse="task",
        parsed={"result_data[0].image_url": "https://files.example/image.jpg", "result_data[0].raw.result_id": "r1",
                "result_data[1].audio_url": "https://files.example/a.mp3", "result_data[1].title": "Song",
                "result_data[1].duration": 61.5, "result_data[1].raw.tags": "pop",
                "result_data[2].video_url": "https://files.example/v.mp4", "result_data[2].duration": 5.0},
    ),
    Fact(
        id="A3.failed", source="A3",
        says="A failed task has progress 0 and error {code, message} with a documented code",
        call=Call(method="GET", host="api", path="/v1/tasks/{task_id}"), setup="failed_task",
        status=200,
        body={**TASK_FIELDS, "status": "failed", "progress": 0, "error.code": OneOf(tuple(sorted(A3_ERROR_CODES))),
              "error.message": str, "results": ABSENT},
        example=A3_FAILED, parse="task",
        parsed={"status": "failed", "progress": 0, "error.code": "content_policy_violation",
                "error.retryable": False, "created": None},
    ),
    Fact(
        id="A3.processing", source="A3", says="An unfinished task is pending or processing, progress 0-100",
        call=Call(method="GET", host="api", path="/v1/tasks/{task_id}"), setup="processing_task",
        status=200, body={**TASK_FIELDS, "status": "processing", "progress": OneOf(tuple(range(0, 101))),
                          "task_info.estimated_time": NUMBER, "results": ABSENT},
    ),
    Fact(
        id="A3.results_expire", source="A3", says="Result links expire after 24 h",
        call=Call(method="GET", host="api", path="{result_path}"), setup="completed_task_a_day_later",
        status=404,
    ),
    Fact(
        id="A3.corrupt_input", source="A6",
        says="A truncated or corrupt input image fails the task with image_processing_error (not retryable)",
        call=Call(method="GET", host="api", path="/v1/tasks/{task_id}"), setup="corrupt_input_task",
        status=200, body={"status": "failed", "error.code": "image_processing_error"},
        example={**A3_FAILED, "error": {"code": "image_processing_error", "message": "bad image",
                                        "suggestion": "Use JPG/PNG/WebP under 10 MB"}},
        parse="task",
        parsed={"error.code": "image_processing_error", "error.retryable": False,
                "error.suggestion": "Use JPG/PNG/WebP under 10 MB"},
    ),
    Fact(
        id="A6.retryable_table", source="A6",
        says="Evolink's table: resource_not_found (and the other input errors) is not retryable",
        call=None,
        example={**A3_FAILED, "error": {"code": "resource_not_found", "message": "gone"}},
        parse="task", parsed={"error.retryable": False, "failed_error.retryable": False},
    ),
    # --- A4 HTTP errors -------------------------------------------------------------------------
    Fact(
        id="A4.invalid_task_id", source="A4",
        says="A malformed task id is a 400 invalid_request_error, code invalid_task_id, param task_id",
        call=Call(method="GET", host="api", path="/v1/tasks/not-a-task"),
        status=400, body=api_error("invalid_task_id", **{"error.param": "task_id", "error.type": "invalid_request_error"}),
        headers={"x-request-id": str},
        example=A4_ERROR, example_status=400, parse="http_error",
        parsed={"status_code": 400, "code": "invalid_task_id", "type": "invalid_request_error", "param": "task_id",
                "suggestion": None, "class": "BadRequestError"},
    ),
    Fact(
        id="A4.not_found", source="A4", says="An unknown task is a 404 not_found_error",
        call=Call(method="GET", host="api", path="/v1/tasks/task-unified-1-abcdefgh"),
        status=404, body=api_error(str),
    ),
    Fact(
        id="A4.insufficient_quota", source="A4", says="No balance left is a 402 insufficient_quota_error",
        call=Call(method="POST", host="api", path=SUBMIT, json=RETEXTURE), sandbox={"credits": 0.0},
        status=402, body=api_error(OneOf(("insufficient_quota", "key_quota_exhausted"))),
        example={"error": {"code": "key_quota_exhausted", "message": "quota", "type": "insufficient_quota_error"}},
        example_status=402, parse="http_error",
        parsed={"status_code": 402, "code": "key_quota_exhausted", "class": "InsufficientCreditsError"},
    ),
    Fact(
        id="A4.request_too_large", source="A4, A6", says="A body larger than the service takes is a 413",
        call=Call(method="POST", host="api", path=SUBMIT, raw_body=b'{"model": "' + b"x" * (2 * 1024 * 1024) + b'"}'),
        status=413, body=api_error(str),
    ),
    Fact(
        id="A4.rate_limited", source="A4", says="Too many requests is a 429 rate_limit_error with Retry-After",
        call=Call(method="POST", host="api", path=SUBMIT, json=RETEXTURE), setup="one_request_made",
        sandbox={"rate_limit": 1.0},
        status=429, body=api_error(str), headers={"Retry-After": NUMBER},
        example={"error": {"code": "rate_limit_exceeded", "message": "slow down", "type": "rate_limit_error",
                           "fallback_suggestion": "retry in a minute"}},
        example_status=429, parse="http_error",
        parsed={"status_code": 429, "class": "RateLimitError", "suggestion": "retry in a minute"},
    ),
    Fact(
        id="A4.server_errors", source="A4", says="5xx answers carry the type A4's table names for the status",
        call=Call(method="GET", host="api", path="/v1/tasks/task-unified-1-abcdefgh"),
        sandbox={"faults": Faults(server_error_rate=1.0)},
        status=OneOf((500, 502, 503)), body=api_error(str),
    ),
    Fact(
        id="A6.retryable_unknown", source="A6", says="A code not in Evolink's table is retryable",
        call=None,
        example={**A3_FAILED, "error": {"code": "brand_new_code", "message": "m"}},
        parse="task", parsed={"error.retryable": True, "failed_error.retryable": True},
    ),
    Fact(
        id="A4.integer_code", source="A4", says="error.code may be a string or an integer: accept both",
        call=None,
        example={"error": {"code": 40001, "message": "m", "type": "invalid_request_error"}},
        example_status=400, parse="http_error", parsed={"code": "40001", "class": "BadRequestError"},
    ),
    # --- A5 callbacks -------------------------------------------------------------------------
    Fact(
        id="A5.callback.completed", source="A5",
        says="When the task completes, its callback_url gets one POST of the same JSON as the task query",
        call=Call(method="POST", host="api", path=SUBMIT, json={**QWEN, "callback_url": "{callback_url}"}),
        setup="callback_receiver", sandbox={"real_clock": True},
        status=200, body={"status": "pending"},
        callbacks={"posts": 1, "as_queried": True, "body": {"status": "completed", "results[]": str}},
    ),
    Fact(
        id="A5.callback.failed", source="A5", says="A failed task's callback is sent too, with its error",
        call=Call(method="POST", host="api", path=SUBMIT,
                  json={**QWEN, "image_urls": ["{corrupt_file_url}"], "callback_url": "{callback_url}"}),
        setup="callback_receiver_and_corrupt_file", sandbox={"real_clock": True},
        status=200,
        callbacks={"posts": 1, "as_queried": True, "body": {"status": "failed", "error.code": str}},
    ),
    Fact(
        id="A5.callback.retries", source="A5", says="A non-2xx reply is retried up to 3 times, then no more",
        call=Call(method="POST", host="api", path=SUBMIT, json={**QWEN, "callback_url": "{callback_url}"}),
        setup="refusing_callback_receiver", sandbox={"real_clock": True},
        status=200, callbacks={"posts": 4, "body": {"status": "completed"}},
    ),
    Fact(
        id="A5.callback.https_only", source="A5", says="callback_url must be HTTPS",
        call=Call(method="POST", host="api", path=SUBMIT, json={**QWEN, "callback_url": "http://example.com/hook"}),
        status=400, body=api_error(str, **{"error.param": "callback_url"}),
    ),
    Fact(
        id="A5.callback.length", source="A5", says="callback_url is at most 2048 characters",
        call=Call(method="POST", host="api", path=SUBMIT,
                  json={**QWEN, "callback_url": "https://example.com/" + "a" * 2030}),
        status=400, body=api_error(str, **{"error.param": "callback_url"}),
    ),
    # --- A6 Files API ---------------------------------------------------------------------------
    Fact(
        id="A6.upload.base64", source="A6",
        says="upload/base64 takes a data URL or raw base64 and answers the upload envelope",
        call=Call(method="POST", host="files", path=f"{FILES}/upload/base64",
                  json={"base64_data": PNG_DATA_URL, "upload_path": "avatars", "file_name": "avatar.png"}),
        status=200,
        body={**ENVELOPE_OK, **UPLOAD_FIELDS, "data.mime_type": "image/png", "data.file_name": "avatar.png",
              "data.upload_path": "avatars", "data.file_size": len(PNG)},
        example=A6_UPLOADED, parse="upload",
        parsed={"file_id": "file_abc123", "file_url": "https://files.evolink.ai/avatars/avatar.png",
                "file_size": 2048, "mime_type": "image/png", "upload_path": "avatars",
                "download_url": "https://files.evolink.ai/api/v1/files/download/file_abc123"},
    ),
    Fact(
        id="A6.upload.raw_base64", source="A6", says="base64_data may be raw base64",
        call=Call(method="POST", host="files", path=f"{FILES}/upload/base64", json={"base64_data": b64(PNG)}),
        status=200, body={**ENVELOPE_OK, "data.mime_type": "image/png"},
    ),
    Fact(
        id="A6.upload.stream_camel", source="A6",
        says="upload/stream takes file, uploadPath, fileName as Evolink's client sends them",
        call=Call(method="POST", host="files", path=f"{FILES}/upload/stream",
                  form={"file": ("cat.png", PNG), "uploadPath": "batch-7", "fileName": "renamed.png"}),
        status=200, body={**ENVELOPE_OK, **UPLOAD_FIELDS, "data.upload_path": "batch-7", "data.file_name": "renamed.png"},
    ),
    Fact(
        id="A6.upload.stream_snake", source="A6", says="upload/stream also takes upload_path, file_name (the docs)",
        call=Call(method="POST", host="files", path=f"{FILES}/upload/stream",
                  form={"file": ("cat.png", PNG), "upload_path": "batch-8", "file_name": "renamed.png"}),
        status=200, body={**ENVELOPE_OK, "data.upload_path": "batch-8", "data.file_name": "renamed.png"},
    ),
    Fact(
        id="A6.upload.url", source="A6", says="upload/url stores the file at file_url",
        call=Call(method="POST", host="files", path=f"{FILES}/upload/url", json={"file_url": "{loopback_png_url}"}),
        setup="loopback_image_server", status=200, body={**ENVELOPE_OK, **UPLOAD_FIELDS, "data.file_size": len(PNG)},
    ),
    Fact(
        id="A6.upload.url_failed", source="A6", says="A URL that cannot be downloaded is code 40004",
        call=Call(method="POST", host="files", path=f"{FILES}/upload/url", json={"file_url": "{dead_url}"}),
        setup="loopback_image_server", status=OneOf((200, 400)), body=files_error(40004),
    ),
    Fact(
        id="A6.types.bmp", source="A6", says="Images are JPEG, PNG, GIF and WebP only: a BMP is code 40002",
        call=Call(method="POST", host="files", path=f"{FILES}/upload/base64",
                  json={"base64_data": b64(BMP), "file_name": "looks.png"}),
        status=OneOf((200, 400)), body=files_error(40002),
    ),
    Fact(
        id="A6.types.tiff", source="A6", says="Images are JPEG, PNG, GIF and WebP only: a TIFF is code 40002",
        call=Call(method="POST", host="files", path=f"{FILES}/upload/stream", form={"file": ("scan.png", TIFF)}),
        status=OneOf((200, 400)), body=files_error(40002),
    ),
    Fact(
        id="A6.types.audio", source="A6", says="Any audio/* file is stored",
        call=Call(method="POST", host="files", path=f"{FILES}/upload/base64", json={"base64_data": b64(WAV)}),
        status=200, body={**ENVELOPE_OK, "data.mime_type": Prefix("audio/")},
    ),
    Fact(
        id="A6.types.video", source="A6", says="Any video/* file is stored",
        call=Call(method="POST", host="files", path=f"{FILES}/upload/stream", form={"file": ("clip.bin", MP4)}),
        status=200, body={**ENVELOPE_OK, "data.mime_type": Prefix("video/")},
    ),
    Fact(
        id="A6.size_limit", source="A6", says="Max 100 MB a file; past it, code 40001",
        call=Call(method="POST", host="files", path=f"{FILES}/upload/stream", form={"file": ("big.png", "{too_big}")}),
        status=OneOf((200, 400, 413)), body=files_error(40001),
    ),
    Fact(
        id="A6.quota.answer", source="A6",
        says="quota answers used_files, max_files, remain_files, user_group; 100 files a key by default",
        call=Call(method="GET", host="files", path=f"{FILES}/quota"), setup="one_file_uploaded",
        status=200,
        body={**ENVELOPE_OK, "data.used_files": 1, "data.max_files": 100, "data.remain_files": 99,
              "data.user_group": str},
        example={"success": True, "code": 200, "msg": "ok",
                 "data": {"used_files": 3, "max_files": 100, "remain_files": 97, "user_group": "default"}},
        parse="quota", parsed={"used_files": 3, "max_files": 100, "remain_files": 97, "user_group": "default"},
    ),
    Fact(
        id="A6.quota.exhausted", source="A6", says="Past the quota an upload is code 40003",
        call=Call(method="POST", host="files", path=f"{FILES}/upload/base64", json={"base64_data": PNG_DATA_URL}),
        setup="quota_filled", status=OneOf((200, 400)), body=files_error(40003),
    ),
    Fact(
        id="A6.quota.expiry", source="A6", says="Files count until they expire (72 h)",
        call=Call(method="GET", host="files", path=f"{FILES}/quota"), setup="file_uploaded_three_days_ago",
        status=200, body={"data.used_files": 0, "data.remain_files": 100},
    ),
    Fact(
        id="A6.list.answer", source="A6", says="list answers files[] (file_id, file_name, file_size, upload_time) and total",
        call=Call(method="GET", host="files", path=f"{FILES}/list", query={"page": "1", "pageSize": "100"}),
        setup="one_file_uploaded", status=200,
        body={**ENVELOPE_OK, "data.total": 1, "data.files": Length(1), "data.files[].file_id": str,
              "data.files[].file_name": str, "data.files[].file_size": int, "data.files[].upload_time": str},
        example={"success": True, "code": 200, "msg": "ok",
                 "data": {"files": [{"file_id": "file_1", "file_name": "a.png", "file_size": 10,
                                     "file_url": "https://files.evolink.ai/a.png", "upload_time": "t"}], "total": 1}},
        parse="list", parsed={"file_ids": ("file_1",)},
    ),
    Fact(
        id="A6.list.page_size", source="A6", says="pageSize is at most 100",
        call=Call(method="GET", host="files", path=f"{FILES}/list", query={"page": "1", "pageSize": "500"}),
        setup="one_file_uploaded", status=200, body={"data.total": 1, "data.pageSize": OneOf(tuple(range(1, 101)))},
    ),
    Fact(
        id="A6.delete", source="A6", says="delete answers success; a client needs no data object",
        call=Call(method="DELETE", host="files", path=FILES + "/{file_id}"), setup="one_file_uploaded",
        status=200, body={"success": True},
        example={"success": True, "code": 200, "msg": "ok"}, parse="delete", parsed={"returned": None},
    ),
    Fact(
        id="A6.bad_key", source="A6", says="A bad key is code 40100",
        call=Call(method="GET", host="files", path=f"{FILES}/quota", key="wrong"),
        status=OneOf((200, 401)), body=files_error(40100),
    ),
    # --- B Midjourney proxy ---------------------------------------------------------------------
    Fact(
        id="B1.imagine", source="B1",
        says="submit/imagine answers {code, description, properties, result}; code 1 or 22 creates the task",
        call=Call(method="POST", host="mj", path="/mj/submit/imagine", json={"prompt": "a red fox", "botType": "MID_JOURNEY"}),
        status=200, body={"code": OneOf((1, 22)), "description": str, "result": str},
        example={"code": 22, "description": "In queue", "properties": {}, "result": 1748339029401828},
        parse="mj_submit", parsed={"id": "1748339029401828", "status": "pending"},
    ),
    Fact(
        id="B2.fetch", source="B2",
        says="task/{id}/fetch answers the task: string progress, epoch-ms times, SUCCESS with imageUrl and buttons",
        call=Call(method="GET", host="mj", path="/mj/task/{mj_task_id}/fetch"), setup="mj_task_done",
        status=200,
        body={"id": "{mj_task_id}", "action": "IMAGINE", "status": "SUCCESS", "progress": "100%", "imageUrl": str,
              "submitTime": int, "startTime": int, "finishTime": int, "buttons[].customId": Prefix("MJ::"),
              "buttons[].label": str},
        example=B2_TASK, parse="mj_task",
        parsed={"id": "1748339029401828", "status": "completed", "progress": 100,
                "results": ("https://cdn.example/x.png",), "midjourney.buttons[0].label": "U1"},
    ),
    Fact(
        id="B2.list_by_condition", source="B2", says="task/list-by-condition {ids} answers a list of tasks",
        call=Call(method="POST", host="mj", path="/mj/task/list-by-condition", json={"ids": ["{mj_task_id}"]}),
        setup="mj_task_done", status=200, body={"[]": dict, "[0].id": "{mj_task_id}"},
    ),
)


@attrs.frozen(kw_only=True)
class KnownDifference:
    """A documented fact the sandbox does not honour, and why. ``fact`` names its check, if any."""

    fact: str | None
    source: str
    says: str
    reason: str


KNOWN_DIFFERENCES: tuple[KnownDifference, ...] = (
    KnownDifference(
        fact="A2.qwen.sides", source="A2",
        says="qwen-image-edit input sides must be within [384, 3072] px",
        reason="the sandbox reads no input's dimensions at submit (it never fetches other hosts, and what the real "
               "service answers for a stored image that is too small, 400 or a failed task, is undocumented)",
    ),
    KnownDifference(
        fact=None, source="A5",
        says="callback_url must be HTTPS and must not point at loopback or private addresses",
        reason="tests and demos receive callbacks on 127.0.0.1: the sandbox accepts http:// and loopback callbacks "
               "(only for loopback receivers; other http:// URLs are refused as documented)",
    ),
    KnownDifference(
        fact=None, source="A1",
        says="Images removed by Midjourney moderation are not refunded",
        reason="the sandbox has no moderation and no refunds: every accepted task is billed once (its ledger)",
    ),
    KnownDifference(
        fact=None, source="A6",
        says="upload/url downloads any public URL",
        reason="nothing outside this machine may be contacted: only loopback URLs are fetched, others are 40004",
    ),
    KnownDifference(
        fact=None, source="A6",
        says="Files API errors: the HTTP status of a {success: false} answer is undocumented (may be 2xx)",
        reason="the sandbox answers HTTP code // 100 (40003 -> 400, 40100 -> 401); facts accept either",
    ),
    KnownDifference(
        fact=None, source="A6",
        says="Max 100 MB a file",
        reason="whether MB means 10^6 or 2^20 bytes is undocumented: the sandbox refuses past 100 MiB",
    ),
    KnownDifference(
        fact=None, source="A6",
        says="Quota: 500 files for VIP accounts",
        reason="the sandbox has no account types: start it with max_files=500 (--max-files 500) to be one",
    ),
    KnownDifference(
        fact=None, source="A6",
        says="HTTP errors may carry error.fallback_suggestion",
        reason="when the real service sends it is undocumented: the sandbox sends it on model_unavailable, "
               "upstream_error and service_unavailable",
    ),
    KnownDifference(
        fact=None, source="A4",
        says="Retry-After may come as seconds or an HTTP date; no numeric rate limit is published",
        reason="the sandbox always sends seconds, and its rate limit is an option (rate_limit=), off by default",
    ),
    KnownDifference(
        fact=None, source="B3",
        says="What individual proxies do (trueai's cancel as FAILURE, code 21 with MODAL, FAILED for FAILURE ...)",
        reason="these are quirks of particular servers, not one protocol: the sandbox emulates each behind a "
               "MidjourneyOptions switch (tests/sandbox/test_mj_*.py), and its defaults are novicezk's",
    ),
    KnownDifference(
        fact=None, source="A5",
        says="Callbacks time out after 10 s; retries come 1 s, 2 s and 4 s after a failure; sent after billing",
        reason="timing is not asserted here (no wall-clock assertions): the sandbox's defaults are those numbers "
               "(callback_timeout, callback_retry_delays, time-scaled), and billing happens at submit",
    ),
    KnownDifference(
        fact=None, source="A3",
        says="The cancelled status exists (its body is unconfirmed); no cancel endpoint is documented",
        reason="no Evolink task of the sandbox is ever cancelled: nothing documented can cancel one",
    ),
)
