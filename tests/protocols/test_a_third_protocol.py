"""A third protocol plugs in through ``TaskAPI`` and ``TaskProtocol`` alone.

The "toy" protocol here is written in this file: a tiny aiohttp app with its own wire shapes
(``POST /jobs``, ``GET /jobs/{id}``, ``POST /jobs:lookup`` for many at once) and a ``TaskAPI``
over it. Nothing in ``_watching/``, ``_clients/`` or ``batch/`` knows it, and ``Client`` runs its
submits, streams, waits and fan-outs as it runs Evolink's and Midjourney's; ``Batch`` runs a
resumable one-machine batch of it over an input source written here too.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import pytest
from aiohttp import web

from evolink_async import Client, ClientConfig, EventKind, Task, TaskStatus
from evolink_async._core.transport import Transport
from evolink_async._protocols.task_api import CallbackURLs, Cancel, FetchMany, Recover, ReleaseUploads, TaskAPI
from evolink_async.batch import Batch, BatchSpec, Entry, PreparedRequest, SourceContext, UnreadableFolder
from evolink_async.errors import ResponseFormatError, TaskFailedError, ValidationError
from tests.helpers.images import png_bytes

KEY = "toy-key-0123456789"


@attrs.frozen
class Shout:
    """The toy's one request: make ``text`` loud in ``steps`` polls."""

    text: str
    steps: int = 3


class ToyServer:
    """Jobs that advance one step per query; ``fail`` in the text fails the job."""

    def __init__(self) -> None:
        self.jobs: dict[str, dict[str, Any]] = {}
        self.queries = 0
        self.lookups = 0
        self.keys_seen: list[str | None] = []
        self._ids = itertools.count(1)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/jobs", self.create)
        app.router.add_get("/jobs/{id}", self.get)
        app.router.add_post("/jobs:lookup", self.lookup)
        app.router.add_get("/out/{name}", self.result)
        return app

    def _advance(self, job: dict[str, Any], request: web.Request) -> dict[str, Any]:
        if job["state"] == "working":
            job["step"] += 1
            if job["step"] >= job["steps"]:
                job["state"] = "broken" if "fail" in job["text"] else "done"
        out = f"http://{request.host}/out/{job['text'].upper()}.png"
        return {"job": job["job"], "state": job["state"], "pct": min(100, 100 * job["step"] // job["steps"]),
                "out": out if job["state"] == "done" else None}  # fmt: skip

    async def result(self, request: web.Request) -> web.Response:
        return web.Response(body=png_bytes(8, 8), content_type="image/png")

    async def create(self, request: web.Request) -> web.Response:
        self.keys_seen.append(request.headers.get("Authorization"))
        body = await request.json()
        job = {"job": f"toy-{next(self._ids)}", "state": "working", "step": 0, "steps": body["steps"],
               "text": body["text"]}  # fmt: skip
        self.jobs[job["job"]] = job
        return web.json_response({"job": job["job"], "state": "working", "pct": 0, "out": None})

    async def get(self, request: web.Request) -> web.Response:
        self.queries += 1
        job = self.jobs.get(request.match_info["id"])
        if job is None:
            return web.json_response({"error": "no such job"}, status=404)
        return web.json_response(self._advance(job, request))

    async def lookup(self, request: web.Request) -> web.Response:
        self.lookups += 1
        ids = (await request.json())["ids"]
        return web.json_response([self._advance(self.jobs[i], request) for i in ids if i in self.jobs])


_STATES = {"working": TaskStatus.PROCESSING, "done": TaskStatus.COMPLETED, "broken": TaskStatus.FAILED}


def toy_task(body: object) -> Task:
    if not isinstance(body, dict) or not isinstance(body.get("job"), str) or body.get("state") not in _STATES:
        raise ResponseFormatError(f"not a toy job: {body!r:.80}")
    out = body.get("out")
    return Task(id=body["job"], status=_STATES[body["state"]], progress=int(body.get("pct") or 0),
                results=(out,) if isinstance(out, str) else (), raw=body)  # fmt: skip


class ToyAPI:
    """The toy's ``TaskAPI``: the only code a new protocol writes besides ``ToyProtocol``."""

    fetch_many_limit = 20
    cancel: Cancel | None = None
    recover: Recover | None = None
    release_uploads: ReleaseUploads | None = None

    def __init__(self, transport: Transport, *, bulk: bool) -> None:
        self._transport = transport
        self._base = transport.config.base_url
        self._bulk = bulk

    async def submit(self, request: Shout, *, idempotency_key: str) -> Task:
        if not isinstance(request, Shout):
            raise ValidationError("request", f"must be a Shout, got {type(request).__name__}")
        response = await self._transport.request(
            "POST", f"{self._base}/jobs", json_body={"text": request.text, "steps": request.steps},
            headers={"Idempotency-Key": idempotency_key}, retry_safe=True,
        )  # fmt: skip
        return toy_task(response.body)

    async def fetch(self, task_id: str) -> Task:
        response = await self._transport.request("GET", f"{self._base}/jobs/{task_id}", retry_safe=True)
        return toy_task(response.body)

    @property
    def fetch_many(self) -> FetchMany | None:
        return self._fetch_many if self._bulk else None

    async def _fetch_many(self, task_ids: Sequence[str]) -> Sequence[Task]:
        response = await self._transport.request(
            "POST", f"{self._base}/jobs:lookup", json_body={"ids": list(task_ids)}, retry_safe=True
        )
        return [toy_task(body) for body in response.body]


class ToyProtocol:
    name = "toy"
    reports_cost = False
    uploads_images = False
    default_max_in_flight = 4

    def __init__(self, *, bulk: bool = False) -> None:
        self.bulk = bulk

    def connect(self, transport: Transport, callbacks: CallbackURLs | None) -> TaskAPI[Shout]:
        return ToyAPI(transport, bulk=self.bulk)

    def parse_task(self, body: object) -> Task:
        return toy_task(body)

    def callback_marker(self, task: Task) -> str | None:
        return None

    def model_of(self, request: Shout) -> str:
        return "shout"


@pytest.fixture
async def toy() -> AsyncIterator[tuple[ToyServer, str]]:
    server = ToyServer()
    runner = web.AppRunner(server.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield server, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def toy_client(url: str, *, bulk: bool = False) -> Client[Shout]:
    from evolink_async import PollPolicy

    fast = PollPolicy(min_interval=0.01, max_interval=0.05, default_estimated_time=0.05)
    return Client(ToyProtocol(bulk=bulk), ClientConfig(api_key=KEY, base_url=url), poll_policy=fast)


async def test_submit_stream_and_wait_on_a_third_protocol(toy: tuple[ToyServer, str]) -> None:
    server, url = toy
    async with toy_client(url) as client:
        task = await client.submit(Shout("hello", steps=4))
        assert task.status is TaskStatus.PROCESSING
        kinds, progress = [], []
        async with client.tasks.stream(task) as events:
            async for event in events:
                kinds.append(event.kind)
                progress.append(event.progress)
        assert kinds[-1] is EventKind.COMPLETED
        assert kinds.count(EventKind.COMPLETED) == 1
        assert progress == sorted(progress)
        assert progress[-1] == 100
        done = await client.tasks.get(task)
        assert done.results == (f"{url}/out/HELLO.png",)
        with pytest.raises(TaskFailedError):
            await client.tasks.wait(await client.submit(Shout("please fail", steps=1)), timeout=30)
        # ``with_options`` goes through the one constructor: same tracker, the toy's own API.
        patient = client.with_options(timeout=120)
        assert type(patient) is Client
        assert patient.config.timeout == 120
        assert (await patient.tasks.wait(await patient.submit(Shout("again", steps=1)), timeout=30)).results
    assert server.keys_seen == [f"Bearer {KEY}"] * 3  # the config's key, through the shared transport


@pytest.mark.parametrize("bulk", [False, True], ids=["one-by-one", "many-per-request"])
async def test_fan_out_on_a_third_protocol_ends_every_input_once(toy: tuple[ToyServer, str], bulk: bool) -> None:
    server, url = toy
    inputs = {f"in-{i}": Shout(f"word {i}" + (" fail" if i % 5 == 0 else ""), steps=1 + i % 3) for i in range(12)}
    ended: dict[object, EventKind] = {}
    async with toy_client(url, bulk=bulk) as client, client.fan_out(inputs.items()) as events:
        async for event in events:
            if event.kind.is_terminal:
                assert event.key not in ended
                ended[event.key] = event.kind
    assert ended == {key: EventKind.FAILED if " fail" in shout.text else EventKind.COMPLETED
                     for key, shout in inputs.items()}  # fmt: skip
    assert events.summary.submitted == 12
    # The tracker's many-task fetch is the protocol's, when it has one (and only then).
    assert (server.lookups > 0) is bulk


async def test_the_protocol_describes_itself_to_the_layers_above(toy: tuple[ToyServer, str]) -> None:
    _, url = toy
    async with toy_client(url) as client:
        with pytest.raises(ValidationError, match="credits_per_task"):
            client.fan_out([Shout("x")], max_credits=5)  # the toy's answers carry no cost
        with pytest.raises(ValidationError, match="normalize"):
            client.fan_out([Shout("x")], normalize=True)  # it uploads no images
        with pytest.raises(ValidationError, match="request"):
            await client.submit("not a shout")  # type: ignore[arg-type]
        assert client.parse_task({"job": "toy-9", "state": "done", "pct": 100, "out": "u"}).id == "toy-9"
        assert repr(client) == f"Client(base_url={url!r}, api_key='***')"
        assert KEY not in repr(client.config)


class Words:
    """The toy's own batch source: one ``Shout`` per word, keyed ``word-<n>``; a resume sends the stored body."""

    def __init__(self, words: Sequence[str]) -> None:
        self.words = words

    async def check(self) -> None:
        if not self.words:
            raise ValidationError("words", "must not be empty")

    def inputs(self, *, on_unreadable: Callable[[UnreadableFolder], None] | None = None) -> Iterator[tuple[str, str]]:
        return ((f"word-{n}", word) for n, word in enumerate(self.words))

    def key_of(self, item: tuple[str, str]) -> str:
        return item[0]

    async def inspect(self, item: tuple[str, str]) -> tuple[str | None, str | None]:
        return (None, item[1]) if item[1].strip() else ("the word is blank", None)

    async def check_request(self, item: tuple[str, str]) -> None:
        Shout(item[1])

    async def prepare(self, item: tuple[str, str], entry: Entry, context: SourceContext) -> PreparedRequest:
        return PreparedRequest(body={"text": item[1], "steps": 2})

    def request_from_body(self, body: Mapping[str, Any]) -> Shout:
        return Shout(str(body["text"]), steps=int(body["steps"]))


async def test_a_resumable_batch_runs_on_a_third_protocol(toy: tuple[ToyServer, str], tmp_path: Path) -> None:
    server, url = toy
    words = Words(["fox", "owl", "please fail", "  ", "hare"])
    spec = BatchSpec(model="shout", input_dir=tmp_path, output_dir=tmp_path / "out", max_in_flight=2)
    async with toy_client(url) as client:
        summary = await Batch(client, spec, source=words).run()
    assert summary.inputs == 5
    assert summary.submitted == 4 == len(server.jobs)  # the blank word failed locally, before any submit
    assert summary.downloaded == 3
    assert {failed.key: failed.code for failed in summary.failed} == {"word-2": "TaskFailedError", "word-3": "invalid_input"}
    assert summary.credits_reserved is None  # the toy's answers carry no cost: "0 reserved" would be false
    for key in ("word-0", "word-1", "word-4"):
        assert (tmp_path / "out" / f"{key}.result-0.png").read_bytes() == png_bytes(8, 8)
    # The same command again: the journal knows every input; nothing is submitted twice.
    async with toy_client(url) as client:
        again = await Batch(client, spec, source=words).run()
    assert again.done_before == 3
    assert again.submitted == 0
    assert len(server.jobs) == 4
