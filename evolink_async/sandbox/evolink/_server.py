"""The task API app: ``POST /v1/images/generations``, ``GET /v1/tasks/{id}``, result files.

Answers follow API.md A1/A3 for tasks and A4 for errors (``{"error": {code, message, type,
param?}}`` with the documented HTTP statuses). The order of checks on the two task endpoints is
auth (401), rate limit (429), injected faults, then the request itself, so a wrong key is
always a 401 and faults only hit requests that would otherwise be served.
"""

from __future__ import annotations

import json
import re
from typing import Any

import anyio
from aiohttp import web

from ..._models.requests import validate_body
from ...errors import ValidationError
from .._config import format_seconds
from .._fault_answers import fault_after, fault_before
from .._faults import ServerErrorKind
from .._http import bearer_key, is_loopback_url, json_response, request_id_middleware
from .._state import SandboxState
from ._catalogue import SUGGESTED_MODEL, is_known_model
from ._media import image_intact
from ._tasks import TASK_ID_PREFIX, IdempotencyConflict, fingerprint

__all__ = ["build_api_app"]

SUBMIT = "/v1/images/generations"
QUERY = "/v1/tasks/{task_id}"
RESULT = "/files/results/{task_id}/{name}"
LEDGER = "/_sandbox/ledger"

_IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9._-]{16,96}$")
_RESULT_NAME = re.compile(r"^(\d+)\.png$")
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "insufficient_quota_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    409: "invalid_request_error",
    413: "request_too_large_error",
    429: "rate_limit_error",
    500: "internal_server_error",
    502: "upstream_error",
    503: "service_unavailable_error",
}
#: ``error.fallback_suggestion`` (API.md A6) for the errors where there is a fallback to offer:
#: another model, or the same call later. Evolink does not document when it sends one.
FALLBACK_SUGGESTIONS = {
    "model_unavailable": f"Use an available model, for example {SUGGESTED_MODEL}.",
    "upstream_error": "The upstream provider failed: retry in a minute, or use another model.",
    "service_unavailable": "The service is temporarily unavailable: retry in a minute, or use another model.",
}


class ApiError(Exception):
    """An A4 error answer, raised from anywhere inside a handler."""

    def __init__(
        self, status: int, code: str, message: str, *, param: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.param = param
        self.headers = headers

    def response(self) -> web.Response:
        error: dict[str, Any] = {"code": self.code, "message": self.message, "type": ERROR_TYPES.get(self.status)}
        if self.param is not None:
            error["param"] = self.param
        suggestion = FALLBACK_SUGGESTIONS.get(self.code)
        if suggestion is not None:
            error["fallback_suggestion"] = suggestion
        return json_response({"error": error}, status=self.status, headers=self.headers)


def _http_error(exc: web.HTTPException) -> web.Response:
    codes = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}
    return ApiError(exc.status, codes.get(exc.status, "http_error"), exc.reason).response()


class _Api:
    def __init__(self, state: SandboxState) -> None:
        self.state = state
        self.config = state.config

    # -- shared steps ------------------------------------------------------------------------

    def _admit(self, request: web.Request) -> str:
        """Auth and the token bucket; returns the caller's API key."""
        key = bearer_key(request)
        if key is None or key not in self.config.api_keys:
            raise ApiError(401, "invalid_api_key", "Invalid or missing API key (Authorization: Bearer <key>).")
        if self.state.buckets is not None:
            wait = self.state.buckets.take(key, self.state.clock())
            if wait > 0:
                self.state.ledger.faults["rate_limited"] += 1  # the real limit, not an injected fault
                raise ApiError(
                    429, "rate_limit_exceeded", "Too many requests.", headers={"Retry-After": format_seconds(wait)}
                )
        return key

    # How this protocol answers the faults the sandbox injects (``_fault_answers.ErrorAnswers``).

    def server_error(self, request: web.Request, kind: ServerErrorKind, retry_after: str) -> web.Response:
        headers = {"Retry-After": retry_after} if kind.status == 503 else None
        return ApiError(kind.status, kind.code, kind.message, headers=headers).response()

    def rate_limited(self, request: web.Request, retry_after: str) -> web.Response:
        headers = {"Retry-After": retry_after}
        return ApiError(429, "rate_limit_exceeded", "Too many requests.", headers=headers).response()

    # -- handlers ----------------------------------------------------------------------------

    async def submit(self, request: web.Request) -> web.StreamResponse:
        key = self._admit(request)
        # Read the body before any delay: a server has the request once it is sent, and a
        # client that gives up during a slow answer must still find its task created.
        raw = await request.read()
        decision, early = await fault_before(self.state, request, self)
        if early is not None:
            return early
        return fault_after(request, decision, await self._submit(request, raw, key))

    async def _submit(self, request: web.Request, raw: bytes, key: str) -> web.Response:
        try:
            body = json.loads(raw)
        except ValueError:
            raise ApiError(400, "invalid_request", "The body must be JSON.") from None
        if not isinstance(body, dict):
            raise ApiError(400, "invalid_request", "The body must be a JSON object.")
        idempotency_key = request.headers.get("Idempotency-Key")
        if idempotency_key is not None and not _IDEMPOTENCY_KEY.match(idempotency_key):
            raise ApiError(
                400,
                "invalid_idempotency_key",
                "Idempotency-Key must be 16-96 characters of [A-Za-z0-9._-].",
                param="Idempotency-Key",
            )
        body_fingerprint = fingerprint(body)
        if idempotency_key is not None and self.config.honor_idempotency_keys:
            try:
                replayed = self.state.book.replay(key, idempotency_key, body_fingerprint)
            except IdempotencyConflict:
                raise ApiError(
                    409,
                    "idempotency_conflict",
                    "This Idempotency-Key was already used with a different body.",
                    param="Idempotency-Key",
                ) from None
            if replayed is not None:
                self.state.ledger.record_replay(replayed.id)
                return json_response(self.state.body(replayed), headers={"idempotency-replayed": "true"})
        self._validate(body)
        params = body.get("model_params") or {}
        model = body["model"]
        if not self.config.accept_any_model and not is_known_model(model):
            # Before billing, like every refusal of the request itself.
            raise ApiError(400, "model_unavailable", f"Model {model[:100]!r} is not available.", param="model")
        credits = self.config.cost(body["model"], params.get("speed"))
        input_image, input_unusable = await self._inputs(body.get("image_urls") or [])
        # Checked with no await before the charge: submits reading their inputs at the same time
        # all passed a check made before that read, and overdrew the account (4 billed on 3 credits).
        if not self.state.book.can_afford(credits):
            raise ApiError(402, "insufficient_quota", f"Insufficient credits: this call needs {credits:g}.")
        record = self.state.book.create(
            api_key=key,
            body=body,
            credits=credits,
            now=self.state.clock(),
            idempotency_key=idempotency_key,
            body_fingerprint=body_fingerprint,
            input_image=input_image,
            input_missing=input_unusable,
        )
        self.state.callbacks.schedule(record)
        return json_response(self.state.body(record))

    @staticmethod
    def _validate(body: dict[str, Any]) -> None:
        try:
            validate_body(body, allow_private_callback=True)
            callback = body.get("callback_url")
            # Plain http is the sandbox's concession to local receivers, not a general one.
            if isinstance(callback, str) and not callback.startswith("https://") and not is_loopback_url(callback):
                raise ValidationError("callback_url", "must use https (http only for loopback receivers)")
        except ValidationError as exc:
            raise ApiError(400, "invalid_parameters", str(exc), param=exc.field) from None

    async def _inputs(self, urls: list[str]) -> tuple[bytes | None, bool]:
        """The first input's bytes, and whether any input the sandbox holds is missing or unusable.

        An input that is gone, truncated, corrupt or not an image fails the task with
        ``image_processing_error`` (accepted and billed first, as the real service downloads
        inputs after the submit). Inputs on other hosts are never fetched: they count as fine.
        """
        first: bytes | None = None
        for index, url in enumerate(urls):
            data, missing = await self.state.resolve_input(url)
            if missing:
                return None, True
            if data is not None and not await anyio.to_thread.run_sync(image_intact, data):
                return None, True
            if index == 0:
                first = data
        return first, False

    async def query(self, request: web.Request) -> web.StreamResponse:
        key = self._admit(request)
        decision, early = await fault_before(self.state, request, self)
        if early is not None:
            return early
        task_id = request.match_info["task_id"]
        if not task_id.startswith(TASK_ID_PREFIX):
            raise ApiError(
                400, "invalid_task_id", "Invalid task ID format, must start with 'task-unified-'", param="task_id"
            )
        record = self.state.book.get(key, task_id)
        if record is None:
            raise ApiError(404, "task_not_found", f"Task {task_id} not found.", param="task_id")
        return fault_after(request, decision, json_response(self.state.body(record)))

    async def result(self, request: web.Request) -> web.StreamResponse:
        record = self.state.book.lookup(request.match_info["task_id"])
        match = _RESULT_NAME.match(request.match_info["name"])
        now = self.state.clock()
        if (
            record is None
            or match is None
            or record.outcome != "completed"
            or not record.is_finished(now)
            or int(match.group(1)) >= record.result_count
        ):
            raise ApiError(404, "not_found", "No such result file.")
        if self.state.result_expired(record, now):
            raise ApiError(404, "not_found", "This result link has expired (results are kept 24 h).")
        data = await self.state.results.png(record, int(match.group(1)))
        return web.Response(body=data, content_type="image/png")

    async def ledger(self, _request: web.Request) -> web.StreamResponse:
        return json_response(self.state.ledger.to_json())


@web.middleware
async def _api_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        response: web.StreamResponse = await handler(request)
    except ApiError as exc:
        return exc.response()
    return response


def build_api_app(state: SandboxState) -> web.Application:
    api = _Api(state)
    app = web.Application(middlewares=[request_id_middleware(state.ledger, on_http_error=_http_error), _api_errors])
    app.router.add_post(SUBMIT, api.submit)
    app.router.add_get(QUERY, api.query)
    app.router.add_get(RESULT, api.result)
    app.router.add_get(LEDGER, api.ledger)
    return app
