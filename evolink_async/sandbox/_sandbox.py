"""``Sandbox``: the emulator's public face, an async context manager around two local servers."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Callable, Collection, Mapping
from types import TracebackType
from typing import Any

import attrs
from aiohttp import web

from .._core.config import api_key_problem
from ..errors import ValidationError
from ._config import (
    DEFAULT_API_KEY,
    DEFAULT_ESTIMATED_TIMES,
    DEFAULT_MAX_FILES,
    DEFAULT_MODEL_COSTS,
    Faults,
    MidjourneyOptions,
    SandboxConfig,
)
from ._ledger import Ledger
from ._state import SandboxState
from .evolink._files_server import build_files_app
from .evolink._lifecycle import TaskTimeline
from .evolink._server import build_api_app
from .midjourney._routes import add_mj_routes

__all__ = ["Sandbox"]

HOST = "127.0.0.1"
# In-flight answers (say a "slow" fault asleep) get this long to finish when the sandbox closes.
_SHUTDOWN_GRACE = 0.25


class Sandbox:
    """A faithful local emulator of the Evolink task API and Files API, on 127.0.0.1.

    The task API (``base_url``) and the Files API (``files_base_url``) listen on two ephemeral
    ports, as they are two hosts in production, so a client that mixes them up fails here too.
    All durations are real service seconds multiplied by ``time_scale``; ``seed`` makes task
    outcomes, durations and fault decisions repeat for the same sequence of requests (``None``
    draws a seed, readable as ``sandbox.seed`` to replay a failing run).

    It holds to the facts of API.md A and B (tests/contract/ checks each one): the Files API keeps
    at most ``max_files`` live files a key (100, as the real default; files count until deleted or
    expired after 72 h), and a submit naming a model outside the documented catalogue is a 400
    ``model_unavailable`` unless ``accept_any_model=True``.

    >>> async with Sandbox(time_scale=0.01, seed=1) as sandbox:
    ...     client = EvolinkClient(api_key=sandbox.api_key, base_url=sandbox.base_url)
    ...     ...
    ...     assert len(sandbox.ledger.billed) == 1

    A callback POST waits ``callback_timeout`` API seconds for its answer (10, as the service); a
    test whose receiver shares a busy event loop may give it more, since 10 s at ``time_scale=0.01``
    is 0.1 s of real time.

    Background work (callback deliveries) lives in one task owned by the ``async with`` and is
    cancelled on exit. It is a plain asyncio task rather than an anyio task group so that entering
    and leaving may happen in different tasks, as pytest-asyncio does with async fixtures.
    """

    def __init__(
        self,
        *,
        time_scale: float = 1.0,
        seed: int | None = None,
        faults: Faults | None = None,
        credits: float | None = None,
        rate_limit: float | None = None,
        api_key: str = DEFAULT_API_KEY,
        extra_api_keys: Collection[str] = (),
        estimated_times: Mapping[str, float] | None = None,
        duration_spread: tuple[float, float] = (0.5, 1.5),
        pending_fraction: float = 0.15,
        model_costs: Mapping[str, float] | None = None,
        max_upload_bytes: int = 100 * 1024 * 1024,
        max_files: int = DEFAULT_MAX_FILES,
        user_group: str = "default",
        accept_any_model: bool = False,
        honor_idempotency_keys: bool = True,
        callback_timeout: float = 10.0,
        port: int = 0,
        files_port: int = 0,
        clock: Callable[[], float] = time.monotonic,
        midjourney: MidjourneyOptions | None = None,
    ) -> None:
        for key in (api_key, *extra_api_keys):  # a key no client could send is a sandbox nobody can use
            if (problem := api_key_problem(key)) is not None:
                raise ValidationError("api_key" if key is api_key else "extra_api_keys", problem)
        midjourney = midjourney if midjourney is not None else MidjourneyOptions()
        if midjourney.api_key is None:
            midjourney = attrs.evolve(midjourney, api_key=api_key)
        self.seed = secrets.randbits(32) if seed is None else seed
        self.config = SandboxConfig(
            time_scale=time_scale,
            seed=self.seed,
            faults=faults if faults is not None else Faults(),
            credits=credits,
            rate_limit=rate_limit,
            api_keys=frozenset({api_key, *extra_api_keys}),
            estimated_times={**DEFAULT_ESTIMATED_TIMES, **(estimated_times or {})},
            duration_spread=duration_spread,
            pending_fraction=pending_fraction,
            model_costs={**DEFAULT_MODEL_COSTS, **(model_costs or {})},
            max_upload_bytes=max_upload_bytes,
            max_files=max_files,
            user_group=user_group,
            accept_any_model=accept_any_model,
            honor_idempotency_keys=honor_idempotency_keys,
            callback_timeout=callback_timeout,
            midjourney=midjourney,
        )
        self.api_key = api_key
        self._ports = (port, files_port)
        self._clock = clock
        self._state: SandboxState | None = None
        self._runners: list[web.AppRunner] = []
        self._background: asyncio.Task[None] | None = None
        self._live = False

    def __repr__(self) -> str:
        where = self._state.base_url if self._state else "not running"
        return f"<Sandbox {where} time_scale={self.config.time_scale} seed={self.seed}>"

    @property
    def _running(self) -> SandboxState:
        # After the ``async with`` the state stays readable (the ledger above all), frozen.
        if self._state is None:
            raise RuntimeError("the sandbox was never started: use `async with Sandbox(...) as sandbox`")
        return self._state

    @property
    def base_url(self) -> str:
        """The task API, e.g. ``http://127.0.0.1:54321`` (no trailing slash)."""
        return self._running.base_url

    @property
    def files_base_url(self) -> str:
        """The Files API, e.g. ``http://127.0.0.1:54322``."""
        return self._running.files_base_url

    @property
    def mj_base_url(self) -> str:
        """The base URL for a Midjourney-proxy client whose path prefix is ``/mj``.

        ``mj_base_url + "/mj/submit/imagine"`` is the sandbox's imagine route: it is ``base_url``
        with the default prefix, ``base_url + "/v1"`` with ``prefix="/v1/mj"``. For a prefix not
        ending in ``/mj``, use ``mj_url`` (the mount point) with an empty client prefix.
        """
        prefix = self.config.midjourney.prefix
        return self.base_url + (prefix[: -len("/mj")] if prefix.endswith("/mj") else prefix)

    @property
    def mj_url(self) -> str:
        """Where the MJ routes are mounted: ``base_url + prefix`` (``.../mj``)."""
        return self.base_url + self.config.midjourney.prefix

    @property
    def mj_api_key(self) -> str:
        """The secret the MJ routes accept (``mj-api-secret`` or ``Authorization``)."""
        key = self.config.midjourney.api_key
        assert key is not None
        return key

    def mj_task(self, task_id: str) -> dict[str, Any] | None:
        """An MJ task as ``task/{id}/fetch`` would answer it now (None for an unknown id)."""
        mj = self._running.mj
        task = mj.book.get(task_id)
        return None if task is None else mj.body(task)

    @property
    def ledger(self) -> Ledger:
        return self._running.ledger

    @property
    def credits_remaining(self) -> float | None:
        """The balance left, or None when credits are unlimited."""
        return self._running.book.credits_remaining

    def timeline(self, task_id: str) -> TaskTimeline | None:
        """The planned life of a task this sandbox accepted (None for an unknown id).

        >>> sandbox.timeline(task.id).finishes  # time.monotonic() when it turns terminal
        """
        record = self._running.book.lookup(task_id)
        return None if record is None else record.timeline

    async def __aenter__(self) -> Sandbox:
        if self._live:
            raise RuntimeError("a Sandbox can only be entered once at a time")
        self._live = True
        state = SandboxState(config=self.config, clock=self._clock)
        self._state = state
        try:
            api_port, files_port = self._ports
            state.base_url = await self._serve(_task_app(state), api_port)
            state.files_base_url = await self._serve(build_files_app(state), files_port)
            self._background = asyncio.create_task(state.run_background(), name="evolink-sandbox-callbacks")
        except BaseException:
            await self._close()
            raise
        return self

    async def _serve(self, app: web.Application, port: int) -> str:
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=_SHUTDOWN_GRACE)
        await runner.setup()
        self._runners.append(runner)
        site = web.TCPSite(runner, HOST, port)
        await site.start()
        bound = runner.addresses[0][1]
        return f"http://{HOST}:{bound}"

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._close()

    async def _close(self) -> None:
        # Servers first, so no new task can schedule a callback; then the deliveries.
        runners, self._runners = self._runners, []
        for runner in reversed(runners):
            await runner.cleanup()
        background, self._background = self._background, None
        if background is not None:
            background.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await background
        self._live = False


def _task_app(state: SandboxState) -> web.Application:
    """Evolink's task API with the Midjourney proxy's routes on the same server (``mj_base_url``)."""
    app = build_api_app(state)
    add_mj_routes(app, state)
    return app
