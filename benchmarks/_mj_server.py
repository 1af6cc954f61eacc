"""A small Midjourney-proxy double for benchmarks and tests (aiohttp, in-process or ``python -m``).

It speaks what novicezk/trueai proxies send (see the MJ protocol notes): submit results with
codes, tasks moving NOT_START -> SUBMITTED "0%" -> IN_PROGRESS "N%" -> SUCCESS "100%" (with grid
buttons) or FAILURE (progress ""), ``task/list-by-condition`` as a bare array, ``task/list``,
and trueai's cancel (FAILURE "取消任务"). Knobs: which endpoints exist, durations, answers to
drop after the task was created (a lost submit answer), and a fixed code for the next submits.

Prompts steer outcomes: one containing ``fail`` ends in FAILURE, ``modal`` answers code 21 with
a MODAL task; ``MJ::CustomZoom`` / ``MJ::Inpaint`` actions give MODAL too.

``python -m benchmarks._mj_server [--time-scale S]`` prints ``MJ_BASE_URL=...`` then ``ready``;
``GET /_control/timeline`` answers ``{id: finish_at}`` (``time.monotonic()``), ``GET
/_control/stats`` the request counts by ``X-Contestant`` header and route.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import random
import time
from collections import Counter
from typing import Any

import attrs
from aiohttp import web

__all__ = ["FakeProxy", "FakeTask"]


def _button(custom_id: str, label: str, emoji: str = "") -> dict[str, Any]:
    return {"customId": custom_id, "emoji": emoji, "label": label, "type": 2, "style": 2}


@attrs.define
class FakeTask:
    id: str
    action: str
    prompt: str
    state: str | None
    submitted_at: float
    duration: float
    outcome: str  # "success", "failure", "modal"
    submit_time_ms: int
    cancelled: bool = False

    @property
    def finish_at(self) -> float:
        return self.submitted_at + self.duration

    def body(self, now: float, *, failure_progress: str = "") -> dict[str, Any]:
        elapsed = now - self.submitted_at
        body: dict[str, Any] = {
            "id": self.id, "action": self.action, "prompt": self.prompt, "promptEn": self.prompt,
            "description": f"/imagine {self.prompt}", "state": self.state, "submitTime": self.submit_time_ms,
            "startTime": None, "finishTime": None, "imageUrl": None, "failReason": None, "progress": None,
            "properties": {"finalPrompt": self.prompt}, "buttons": [],
        }  # fmt: skip
        if self.cancelled:
            body.update(status="FAILURE", failReason="取消任务", progress="")
        elif self.outcome == "modal":
            body.update(status="MODAL", progress="0%")
        elif elapsed < 0.1 * self.duration:
            body.update(status="NOT_START")
        elif elapsed < 0.2 * self.duration:
            body.update(status="SUBMITTED", progress="0%", startTime=self.submit_time_ms + 1)
        elif elapsed < self.duration:
            pct = int(100 * (elapsed - 0.2 * self.duration) / (0.8 * self.duration))
            preview = f"https://cdn.test/{self.id}-preview.webp"
            body.update(status="IN_PROGRESS", progress=f"{min(pct, 99)}%", imageUrl=preview)
        elif self.outcome == "failure":
            body.update(status="FAILURE", progress=failure_progress, failReason="[Invalid parameter] bad --ar")
        else:
            job = f"{self.id}-hash"
            body.update(
                status="SUCCESS", progress="100%", imageUrl=f"https://cdn.test/{self.id}.png",
                finishTime=self.submit_time_ms + int(self.duration * 1000),
                buttons=[
                    *(_button(f"MJ::JOB::upsample::{i}::{job}", f"U{i}") for i in range(1, 5)),
                    _button(f"MJ::JOB::reroll::0::{job}::SOLO", "", "🔄"),
                    *(_button(f"MJ::JOB::variation::{i}::{job}", f"V{i}") for i in range(1, 5)),
                ],
            )  # fmt: skip
        return body


class FakeProxy:
    """``async with FakeProxy() as proxy``: serves on 127.0.0.1 (a free port); ``proxy.base_url``."""

    def __init__(
        self,
        *,
        prefix: str = "/mj",
        duration: tuple[float, float] = (0.3, 0.6),
        batch_endpoint: bool = True,
        list_endpoint: bool = True,
        cancel_endpoint: bool = True,
        secret: str | None = None,
        failure_progress: str = "",
        seed: int = 0,
    ) -> None:
        self.prefix = prefix.rstrip("/")
        self.duration = duration
        self.batch_endpoint = batch_endpoint
        self.list_endpoint = list_endpoint
        self.cancel_endpoint = cancel_endpoint
        self.secret = secret
        self.failure_progress = failure_progress
        self.tasks: dict[str, FakeTask] = {}
        self.requests: Counter[tuple[str, str]] = Counter()
        self.bodies: list[tuple[str, Any]] = []
        #: Create the task, then cut the connection without an answer, this many times.
        self.drop_answers = 0
        #: Answer the next submits with this result object instead of creating a task.
        self.next_results: list[dict[str, Any]] = []
        self._rng = random.Random(seed)
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    # --- lifecycle --------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._count])
        p = self.prefix
        for kind in ("imagine", "blend", "describe", "shorten", "change", "action", "modal"):
            app.router.add_post(f"{p}/submit/{kind}", self._submit)
        app.router.add_get(p + "/task/{id}/fetch", self._fetch)
        if self.batch_endpoint:
            app.router.add_post(f"{p}/task/list-by-condition", self._list_by_condition)
        if self.list_endpoint:
            app.router.add_get(f"{p}/task/list", self._list)
        if self.cancel_endpoint:
            app.router.add_post(p + "/task/{id}/cancel", self._cancel)
        app.router.add_get("/_control/timeline", self._timeline)
        app.router.add_get("/_control/stats", self._stats)
        return app

    async def __aenter__(self) -> FakeProxy:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def count(self, route: str, contestant: str = "") -> int:
        return sum(n for (who, r), n in self.requests.items() if r == route and (not contestant or who == contestant))

    # --- handlers ---------------------------------------------------------------------------

    @web.middleware
    async def _count(self, request: web.Request, handler: Any) -> web.StreamResponse:
        route = request.match_info.route.resource.canonical if request.match_info.route.resource else request.path
        route = route.removeprefix(self.prefix)
        if not route.startswith("/_control"):
            self.requests[(request.headers.get("X-Contestant", ""), route)] += 1
            if self.secret is not None and self.secret not in (
                request.headers.get("mj-api-secret"), request.headers.get("Authorization", "").removeprefix("Bearer ")
            ):
                return web.Response(status=401)
        result: web.StreamResponse = await handler(request)
        return result

    async def _submit(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        kind = request.path.rsplit("/", 1)[-1]
        self.bodies.append((kind, body))
        if self.next_results:
            return web.json_response(self.next_results.pop(0))
        prompt = str(body.get("prompt") or body.get("customId") or kind)
        custom = str(body.get("customId") or "")
        if kind in ("change", "action", "modal") and str(body.get("taskId")) not in self.tasks:
            missing = {"code": 3, "description": "关联任务不存在或已失效", "properties": {}, "result": None}
            return web.json_response(missing, status=404 if kind != "change" else 200)
        if kind == "modal":  # the MODAL task itself goes on
            task = self.tasks[str(body["taskId"])]
            task.outcome, task.submitted_at = "success", time.monotonic()
        else:
            modal = "modal" in prompt or custom.startswith(("MJ::CustomZoom::", "MJ::Inpaint::"))
            task = self._create(kind.upper(), prompt, body.get("state"), "modal" if modal else None)
        if self.drop_answers > 0:
            self.drop_answers -= 1
            assert request.transport is not None
            request.transport.abort()  # the task exists; its answer is lost
            return web.Response()
        code = 21 if task.outcome == "modal" else 1
        props = {"finalPrompt": prompt, "remix": True} if code == 21 else {"discordInstanceId": "1"}
        return web.json_response({"code": code, "description": "提交成功", "properties": props, "result": task.id})

    def _create(self, action: str, prompt: str, state: Any, outcome: str | None) -> FakeTask:
        now = time.monotonic()
        task_id = f"{int(time.time() * 1000)}{next(self._ids):04d}"
        task = FakeTask(
            id=task_id, action=action, prompt=prompt, state=state, submitted_at=now,
            duration=self._rng.uniform(*self.duration),
            outcome=outcome or ("failure" if "fail" in prompt else "success"),
            submit_time_ms=int(time.time() * 1000),
        )  # fmt: skip
        self.tasks[task_id] = task
        return task

    async def _fetch(self, request: web.Request) -> web.Response:
        task = self.tasks.get(request.match_info["id"])
        if task is None:
            return web.Response(status=200)  # novicezk: null -> empty body
        return web.json_response(task.body(time.monotonic(), failure_progress=self.failure_progress))

    async def _list_by_condition(self, request: web.Request) -> web.Response:
        ids = (await request.json()).get("ids") or []
        now = time.monotonic()
        found = [self.tasks[i].body(now, failure_progress=self.failure_progress) for i in ids if i in self.tasks]
        return web.json_response(found)

    async def _list(self, request: web.Request) -> web.Response:
        now = time.monotonic()
        newest = sorted(self.tasks.values(), key=lambda t: t.submitted_at, reverse=True)[:100]
        return web.json_response([t.body(now) for t in newest])

    async def _cancel(self, request: web.Request) -> web.Response:
        task = self.tasks.get(request.match_info["id"])
        if task is not None and time.monotonic() < task.finish_at:
            task.cancelled = True
        return web.Response(status=200)

    async def _timeline(self, request: web.Request) -> web.Response:
        return web.json_response({t.id: t.finish_at for t in self.tasks.values()})

    async def _stats(self, request: web.Request) -> web.Response:
        return web.json_response([[who, route, n] for (who, route), n in self.requests.items()])


async def _serve(time_scale: float, batch_endpoint: bool) -> None:
    # Durations of an MJ imagine: 30-60 model seconds.
    proxy = FakeProxy(duration=(30 * time_scale, 60 * time_scale), batch_endpoint=batch_endpoint)
    async with proxy:
        print(f"MJ_BASE_URL={proxy.base_url}", flush=True)
        print("ready", flush=True)
        await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks._mj_server")
    parser.add_argument("--time-scale", type=float, default=0.1)
    parser.add_argument("--no-batch-endpoint", action="store_true")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.time_scale, not args.no_batch_endpoint))


if __name__ == "__main__":
    main()
