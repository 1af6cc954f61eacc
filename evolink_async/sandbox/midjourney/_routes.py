"""The Midjourney-proxy routes, mounted on the task API app under ``MidjourneyOptions.prefix``.

Order of checks, as on the Evolink side: auth (401, the proxies' bare answer), the token bucket
(429, new-api's code 30), injected faults (the sandbox's shared ``Faults``: 5xx in Spring's
error shape, dropped connections before or after the request took effect, truncated bodies,
slow answers), then the request. Faults hit the submit endpoints, ``task/{id}/fetch``,
``task/list-by-condition`` and ``task/list``; result images are public, like a CDN's.
"""

from __future__ import annotations

import functools
import json
import time
from typing import Any

from aiohttp import web

from .._config import format_seconds
from .._fault_answers import fault_after, fault_before
from .._faults import ServerErrorKind
from .._http import Handler, json_response
from .._state import SandboxState
from ._state import IMAGES, MjState
from ._submit import MjSubmit, envelope

__all__ = ["add_mj_routes"]

SUBMITS = ("imagine", "blend", "describe", "shorten", "change", "simple-change", "action", "modal")
_EMPTY = b""


def _empty(status: int = 200) -> web.Response:
    return web.Response(body=_EMPTY, status=status)


class _MjApi:
    def __init__(self, state: SandboxState, secret: str) -> None:
        self.state = state
        self.mj: MjState = state.mj
        self.options = state.mj.options
        self.secret = secret
        self.submitter = MjSubmit(state.mj, secret)

    # -- shared steps ------------------------------------------------------------------------

    def _authorized(self, request: web.Request) -> bool:
        offered: list[str] = []
        if self.options.auth in ("any", "mj-api-secret"):
            offered.append(request.headers.get("mj-api-secret", "").strip())
        if self.options.auth in ("any", "bearer"):
            value = request.headers.get("Authorization", "").strip()
            scheme, _, rest = value.partition(" ")
            offered.append(rest.strip() if scheme.lower() == "bearer" else value)
        return self.secret in offered

    def _refusal(self, request: web.Request) -> web.Response | None:
        if not self._authorized(request):
            text = self.options.unauthorized_body
            return web.Response(text=text, status=401, content_type="text/plain") if text else _empty(401)
        buckets = self.state.buckets
        if buckets is not None:
            wait = buckets.take(f"mj:{self.secret}", self.state.clock())
            if wait > 0:
                response = envelope(30, "请求过于频繁\uff0c请稍后再试", status=429)
                response.headers["Retry-After"] = format_seconds(wait)
                return response
        return None

    # How a Midjourney proxy answers the faults the sandbox injects (``_fault_answers.ErrorAnswers``).

    def server_error(self, request: web.Request, kind: ServerErrorKind, retry_after: str) -> web.Response:
        reason = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}[kind.status]
        body = {
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000+00:00", time.gmtime()),
            "status": kind.status,
            "error": reason,
            "path": request.path,
        }
        return json_response(body, status=kind.status)

    def rate_limited(self, request: web.Request, retry_after: str) -> web.Response:
        response = envelope(30, "请求过于频繁\uff0c请稍后再试", status=429)
        response.headers["Retry-After"] = retry_after
        return response

    async def _guarded(self, request: web.Request, answer: Any) -> web.StreamResponse:
        """Auth, rate limit and faults around ``answer(raw_body)``."""
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        raw = await request.read()  # before any delay: the server has the request once it is sent
        decision, early = await fault_before(self.state, request, self)
        if early is not None:
            return early
        response: web.Response = await answer(raw)
        return fault_after(request, decision, response)

    @staticmethod
    def _json(raw: bytes) -> Any:
        try:
            return json.loads(raw) if raw.strip() else None
        except ValueError:
            return ...

    # -- handlers ----------------------------------------------------------------------------

    async def submit(self, endpoint: str, request: web.Request) -> web.StreamResponse:
        async def answer(raw: bytes) -> web.Response:
            body = self._json(raw)
            if not isinstance(body, dict):
                problem = {
                    "timestamp": int(time.time() * 1000),
                    "status": 400,
                    "error": "Bad Request",
                    "path": request.path,
                }
                return json_response(problem, status=400)
            return await self.submitter.handle(endpoint, body)

        return await self._guarded(request, answer)

    async def fetch(self, request: web.Request) -> web.StreamResponse:
        async def answer(_raw: bytes) -> web.Response:
            task = self.mj.book.get(request.match_info["task_id"])
            if task is not None:
                return json_response(self.mj.body(task))
            quirk = self.options.unknown_fetch
            return _empty(200 if quirk == "empty" else 204 if quirk == "no_content" else 404)

        return await self._guarded(request, answer)

    async def list_by_condition(self, request: web.Request) -> web.StreamResponse:
        async def answer(raw: bytes) -> web.Response:
            body = self._json(raw)
            ids = body.get("ids") if isinstance(body, dict) else None
            tasks = self.mj.book.many(ids) if isinstance(ids, list) else []
            return json_response([self.mj.body(t) for t in tasks])

        return await self._guarded(request, answer)

    async def list_all(self, request: web.Request) -> web.StreamResponse:
        async def answer(_raw: bytes) -> web.Response:
            return json_response([self.mj.body(t) for t in self.mj.book.recent(self.options.list_limit)])

        return await self._guarded(request, answer)

    async def cancel(self, request: web.Request) -> web.StreamResponse:
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        task = self.mj.book.get(request.match_info["task_id"])
        now = self.state.clock()
        if task is not None and self.mj.book.cancel(task, now):
            self.mj.hooks.schedule(task, after=now - 1e-9)
        return _empty(200)

    async def image_seed(self, request: web.Request) -> web.StreamResponse:
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        task = self.mj.book.get(request.match_info["task_id"])
        if task is None:
            return envelope(3, "关联任务不存在或已失效", status=404)
        event = task.event_at(self.state.clock())
        if event is None or event.status != "SUCCESS":
            return envelope(4, "关联任务状态错误", status=400)
        return envelope(1, "成功", str(int(task.job[:8], 16)))

    async def image(self, request: web.Request) -> web.StreamResponse:
        task = self.mj.book.get(request.match_info["task_id"])
        kind = request.match_info["kind"]
        event = task.event_at(self.state.clock()) if task is not None else None
        shown = event is not None and (event.image == kind or (kind == "preview" and event.image == "result"))
        if task is None or not shown or task.action == "SHORTEN":
            return _empty(404)
        return web.Response(body=await self.mj.images.png(task, kind), content_type="image/png")


def add_mj_routes(app: web.Application, state: SandboxState) -> None:
    """Mount the MJ routes on ``app`` (a no-op when ``MidjourneyOptions.enabled`` is false)."""
    options = state.config.midjourney
    if not options.enabled:
        return
    secret = options.api_key or next(iter(sorted(state.config.api_keys)))
    api = _MjApi(state, secret)
    root = options.prefix
    for endpoint in SUBMITS:
        handler: Handler = functools.partial(api.submit, endpoint)
        app.router.add_post(f"{root}/submit/{endpoint}", handler)
    app.router.add_get(root + "/task/{task_id}/fetch", api.fetch)
    app.router.add_get(root + "/task/list", api.list_all)
    if options.list_by_condition:
        app.router.add_post(root + "/task/list-by-condition", api.list_by_condition)
        app.router.add_post(root + "/task/list-by-ids", api.list_by_condition)
    if options.cancel:
        app.router.add_post(root + "/task/{task_id}/cancel", api.cancel)
    app.router.add_get(root + "/task/{task_id}/image-seed", api.image_seed)
    app.router.add_get(root + IMAGES + "/{task_id}/{kind:result|preview}.png", api.image)
