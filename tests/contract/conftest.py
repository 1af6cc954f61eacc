"""Running the facts of facts.py: setups, one HTTP call, and the body matcher."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import aiohttp
import attrs
import pytest
from aiohttp import web

from evolink_async.sandbox import Sandbox
from tests.helpers.images import png_bytes

from .facts import (
    A4_ERROR_TYPES,
    FILES,
    PNG,
    PNG_DATA_URL,
    QWEN,
    RETEXTURE,
    SUBMIT,
    TRUNCATED_PNG,
    Absent,
    Call,
    Fact,
    Length,
    Number,
    OneOf,
    Prefix,
    TypeForStatus,
)

FAR_FUTURE = 10_000.0  # fake seconds after which every sandbox task of a fact is terminal
DAY = 24 * 3600.0
# The default Files API limit (100 MiB) and one chunk more: refused after the limit is read.
TOO_BIG = 100 * 1024 * 1024 + 64 * 1024


class FakeClock:
    """The sandbox's monotonic clock, moved by hand: lifetimes and expiries without waiting."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@attrs.define
class Answer:
    status: int
    headers: Mapping[str, str]
    body: Any


@attrs.define
class Receiver:
    """A loopback callback endpoint: keeps every body, answers ``status``."""

    status: int = 200
    bodies: list[Any] = attrs.Factory(list)

    async def handle(self, request: web.Request) -> web.Response:
        self.bodies.append(await request.json())
        return web.Response(status=self.status)


@attrs.define
class Context:
    """One fact's sandbox, clock, HTTP session, and the values its setup produced."""

    sandbox: Sandbox
    clock: FakeClock
    session: aiohttp.ClientSession
    values: dict[str, Any] = attrs.Factory(dict)
    runners: list[web.AppRunner] = attrs.Factory(list)
    receiver: Receiver | None = None

    async def serve(self, app: web.Application) -> str:
        """Run ``app`` on a free loopback port for the fact's life; returns its base URL."""
        runner = web.AppRunner(app)
        await runner.setup()
        self.runners.append(runner)
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        return f"http://127.0.0.1:{runner.addresses[0][1]}"

    async def callbacks_done(self, task_id: str) -> list[Any]:
        """The bodies the receiver got, once the sandbox has made its last attempt for ``task_id``."""
        assert self.receiver is not None
        last_attempt = len(self.sandbox.config.callback_retry_delays) + 1
        async with asyncio.timeout(30):  # tasks take 0.3 s at this scale; the bound is for a loaded machine
            while not any(
                a.task_id == task_id and (a.ok or a.attempt == last_attempt) for a in self.sandbox.ledger.callbacks
            ):
                await asyncio.sleep(0.01)
        return list(self.receiver.bodies)

    def url(self, host: str, path: str) -> str:
        base = {"api": self.sandbox.base_url, "files": self.sandbox.files_base_url, "mj": self.sandbox.base_url}[host]
        return base + path

    def headers(self, call: Call) -> dict[str, str]:
        key = self.sandbox.mj_api_key if call.host == "mj" else self.sandbox.api_key
        if call.key == "none":
            return {}
        return {"Authorization": f"Bearer {key if call.key == 'right' else 'sk-evo-wrong-key-000'}"}

    def fill(self, value: Any) -> Any:
        """``value`` with ``{name}`` placeholders replaced by the setup's values."""
        if isinstance(value, str):
            whole = re.fullmatch(r"\{(\w+)\}", value)
            if whole and whole.group(1) in self.values:
                return self.values[whole.group(1)]
            return re.sub(r"\{(\w+)\}", lambda m: str(self.values.get(m.group(1), m.group(0))), value)
        if isinstance(value, dict):
            return {k: self.fill(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self.fill(v) for v in value)
        return value

    async def send(self, call: Call) -> Answer:
        kwargs: dict[str, Any] = {"headers": self.headers(call)}
        if call.json is not None:
            kwargs["json"] = self.fill(call.json)
        if call.raw_body is not None:
            kwargs["data"] = call.raw_body
            kwargs["headers"]["Content-Type"] = "application/json"
        if call.form is not None:
            form = aiohttp.FormData()
            for name, value in self.fill(dict(call.form)).items():
                if isinstance(value, tuple):
                    filename, data = value
                    form.add_field(name, data, filename=filename, content_type="application/octet-stream")
                else:
                    form.add_field(name, value)
            kwargs["data"] = form
        if call.query is not None:
            kwargs["params"] = dict(call.query)
        url = self.url(call.host, self.fill(call.path))
        async with self.session.request(call.method, url, **kwargs) as response:
            raw = await response.read()
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
            return Answer(response.status, response.headers, body)

    async def upload(self, data_url: str = PNG_DATA_URL) -> dict[str, Any]:
        answer = await self.send(Call(method="POST", host="files", path=f"{FILES}/upload/base64",
                                      json={"base64_data": data_url}))  # fmt: skip
        assert answer.status == 200, answer.body
        return dict(answer.body["data"])

    async def submit(self, body: dict[str, Any]) -> str:
        answer = await self.send(Call(method="POST", host="api", path=SUBMIT, json=body))
        assert answer.status == 200, answer.body
        return str(answer.body["id"])


# --- setups: each prepares the state a fact's request needs, and names values for it -------------


async def _one_file_uploaded(ctx: Context) -> None:
    ctx.values["file_id"] = (await ctx.upload())["file_id"]


async def _file_uploaded_three_days_ago(ctx: Context) -> None:
    await ctx.upload()
    ctx.clock.advance(72 * 3600 + 1)


async def _quota_filled(ctx: Context) -> None:
    for _ in range(ctx.sandbox.config.max_files):
        await ctx.upload()


async def _small_png_uploaded(ctx: Context) -> None:
    small = "data:image/png;base64," + base64.b64encode(png_bytes(8, 8)).decode()
    ctx.values["small_file_url"] = (await ctx.upload(small))["file_url"]


async def _completed_task(ctx: Context) -> None:
    task_id = await ctx.submit(QWEN)
    ctx.clock.advance(FAR_FUTURE)
    answer = await ctx.send(Call(method="GET", host="api", path=f"/v1/tasks/{task_id}"))
    assert answer.body["status"] == "completed", answer.body
    ctx.values.update(task_id=task_id, result_0=answer.body["results"][0])
    ctx.values["result_path"] = answer.body["results"][0].removeprefix(ctx.sandbox.base_url)


async def _completed_task_a_day_later(ctx: Context) -> None:
    await _completed_task(ctx)
    ok = await ctx.send(Call(method="GET", host="api", path=ctx.values["result_path"]))
    assert ok.status == 200  # the link works until it expires
    ctx.clock.advance(DAY)


async def _processing_task(ctx: Context) -> None:
    task_id = await ctx.submit(RETEXTURE)
    timeline = ctx.sandbox.timeline(task_id)
    assert timeline is not None
    ctx.clock.now = (timeline.started + timeline.finishes) / 2
    ctx.values["task_id"] = task_id


async def _failed_task(ctx: Context) -> None:
    await _corrupt_input_task(ctx)


async def _corrupt_input_task(ctx: Context) -> None:
    truncated = await ctx.upload("data:image/png;base64," + base64.b64encode(TRUNCATED_PNG).decode())
    ctx.values["task_id"] = await ctx.submit({**QWEN, "image_urls": [truncated["file_url"]]})
    ctx.clock.advance(FAR_FUTURE)


async def _one_request_made(ctx: Context) -> None:
    await ctx.send(Call(method="GET", host="api", path="/v1/tasks/task-unified-1-abcdefgh"))


async def _loopback_image_server(ctx: Context) -> None:
    async def image(_request: web.Request) -> web.Response:
        return web.Response(body=PNG, content_type="image/png")

    app = web.Application()
    app.router.add_get("/cat.png", image)
    base = await ctx.serve(app)
    ctx.values["loopback_png_url"] = f"{base}/cat.png"
    ctx.values["dead_url"] = f"{base}/missing.png"


async def _callback_receiver(ctx: Context, *, status: int = 200) -> None:
    ctx.receiver = Receiver(status=status)
    app = web.Application()
    app.router.add_post("/hook/s3cret", ctx.receiver.handle)
    ctx.values["callback_url"] = f"{await ctx.serve(app)}/hook/s3cret"


async def _refusing_callback_receiver(ctx: Context) -> None:
    await _callback_receiver(ctx, status=500)


async def _callback_receiver_and_corrupt_file(ctx: Context) -> None:
    await _callback_receiver(ctx)
    corrupt = await ctx.upload("data:image/png;base64," + base64.b64encode(TRUNCATED_PNG).decode())
    ctx.values["corrupt_file_url"] = corrupt["file_url"]


async def _too_big(ctx: Context) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield PNG[:64]
        block = bytes(1024 * 1024)
        sent = 64
        while sent < TOO_BIG:
            piece = block[: min(len(block), TOO_BIG - sent)]
            sent += len(piece)
            yield piece

    ctx.values["too_big"] = chunks()


async def _mj_task_done(ctx: Context) -> None:
    answer = await ctx.send(Call(method="POST", host="mj", path="/mj/submit/imagine", json={"prompt": "a red fox"}))
    assert answer.status == 200, answer.body
    assert answer.body["code"] in (1, 22), answer.body
    ctx.clock.advance(FAR_FUTURE)
    ctx.values["mj_task_id"] = str(answer.body["result"])


SETUPS: Mapping[str, Callable[[Context], Awaitable[None]]] = {
    "one_file_uploaded": _one_file_uploaded,
    "file_uploaded_three_days_ago": _file_uploaded_three_days_ago,
    "quota_filled": _quota_filled,
    "small_png_uploaded": _small_png_uploaded,
    "completed_task": _completed_task,
    "completed_task_a_day_later": _completed_task_a_day_later,
    "processing_task": _processing_task,
    "failed_task": _failed_task,
    "corrupt_input_task": _corrupt_input_task,
    "one_request_made": _one_request_made,
    "loopback_image_server": _loopback_image_server,
    "mj_task_done": _mj_task_done,
    "callback_receiver": _callback_receiver,
    "refusing_callback_receiver": _refusing_callback_receiver,
    "callback_receiver_and_corrupt_file": _callback_receiver_and_corrupt_file,
}
#: Setups implied by a placeholder in the call itself.
IMPLIED_SETUPS = {"{too_big}": _too_big}


@pytest.fixture
async def fact_context() -> AsyncIterator[Callable[[Fact], Awaitable[Context]]]:
    """``await fact_context(fact)``: a fresh sandbox (its options from the fact) with the setup done."""
    contexts: list[tuple[Context, Sandbox]] = []
    session = aiohttp.ClientSession()

    async def start(fact: Fact) -> Context:
        clock = FakeClock()
        options = dict(fact.sandbox)
        if options.pop("real_clock", False):
            # Callbacks are delivered by a background loop that sleeps on real time: such facts
            # run on the real clock, 100x faster than the service.
            options.update(clock=time.monotonic, time_scale=0.01)
        else:
            options.update(clock=clock, time_scale=1.0)
        sandbox = Sandbox(seed=0, **options)
        await sandbox.__aenter__()
        ctx = Context(sandbox=sandbox, clock=clock, session=session)
        contexts.append((ctx, sandbox))
        if fact.setup is not None:
            await SETUPS[fact.setup](ctx)
        form = dict(fact.call.form or {}) if fact.call is not None else {}
        for placeholder, implied in IMPLIED_SETUPS.items():
            if any(v == placeholder or (isinstance(v, tuple) and placeholder in v) for v in form.values()):
                await implied(ctx)
        return ctx

    try:
        yield start
    finally:
        for ctx, sandbox in contexts:
            for runner in ctx.runners:
                await runner.cleanup()
            await sandbox.__aexit__(None, None, None)
        await session.close()


# --- the matcher --------------------------------------------------------------------------------

_MISSING = object()


def _walk(value: Any, path: str) -> list[tuple[str, Any]]:
    """Every (concrete path, value) that ``path`` names; ``[]`` fans out over a list's items."""
    found: list[tuple[str, Any]] = [("", value)]
    for token in re.findall(r"\[\]|\[\d+\]|[^.\[\]]+", path):
        step: list[tuple[str, Any]] = []
        for where, node in found:
            if token == "[]":
                step += [(f"{where}[{i}]", item) for i, item in enumerate(node)] if isinstance(node, list) else [
                    (f"{where}[]", _MISSING)]  # fmt: skip
            elif token.startswith("["):
                index = int(token[1:-1])
                ok = isinstance(node, list) and index < len(node)
                step.append((f"{where}{token}", node[index] if ok else _MISSING))
            else:
                ok = isinstance(node, dict) and token in node
                step.append((f"{where}.{token}".lstrip("."), node[token] if ok else _MISSING))
        found = step
    return found


def _problem(expected: Any, actual: Any, status: int) -> str | None:
    if isinstance(expected, Absent):
        return None if actual is _MISSING else f"must be absent, is {actual!r}"
    if actual is _MISSING:
        return "is missing"
    if isinstance(expected, type):
        ok = isinstance(actual, expected) and not (expected is int and isinstance(actual, bool))
        return None if ok else f"must be {expected.__name__}, is {actual!r}"
    if isinstance(expected, Number):
        return None if isinstance(actual, int | float) and not isinstance(actual, bool) else f"not a number: {actual!r}"
    if isinstance(expected, Prefix):
        return None if isinstance(actual, str) and actual.startswith(expected.text) else f"not {expected.text}...: {actual!r}"
    if isinstance(expected, OneOf):
        return None if actual in expected.values else f"{actual!r} is none of {expected.values[:12]}"
    if isinstance(expected, Length):
        return None if isinstance(actual, list) and len(actual) == expected.n else f"length must be {expected.n}: {actual!r}"
    if isinstance(expected, TypeForStatus):
        wanted = A4_ERROR_TYPES.get(status)
        return None if actual == wanted else f"A4 names {wanted!r} for HTTP {status}, got {actual!r}"
    ok = actual == expected and type(actual) is type(expected)
    return None if ok else f"must be {expected!r}, is {actual!r}"


def mismatches(expectations: Mapping[str, Any], body: Any, status: int) -> list[str]:
    """What in ``body`` breaks ``expectations`` (empty when it holds to all of them)."""
    problems = []
    for path, expected in expectations.items():
        for where, actual in _walk(body, path):
            problem = _problem(expected, actual, status)
            if problem is not None:
                problems.append(f"{where or path}: {problem}")
    return problems


def header_mismatches(expectations: Mapping[str, Any], headers: Mapping[str, str]) -> list[str]:
    problems = []
    for name, expected in expectations.items():
        value = headers.get(name)
        if value is None:
            problems.append(f"header {name} is missing")
        elif isinstance(expected, Number):
            try:
                float(value)
            except ValueError:
                problems.append(f"header {name} is not a number: {value!r}")
        elif expected is not str and value != expected:
            problems.append(f"header {name} must be {expected!r}, is {value!r}")
    return problems
