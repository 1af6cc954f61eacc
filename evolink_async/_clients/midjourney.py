"""``MidjourneyClient``: a ``Client`` of a Midjourney proxy, with ``action`` and ``find_submitted``."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import aiohttp

from .._callbacks.receiver import CallbackReceiver
from .._core.config import ClientConfig, check_base_url, env_url, wrap_api_key
from .._core.idempotency import check_idempotency_key
from .._core.retry import RetryPolicy, retry_from
from .._models.task import Task, TaskStatus
from .._protocols.midjourney.api import MidjourneyAPI
from .._protocols.midjourney.buttons import request_for_button
from .._protocols.midjourney.protocol import MidjourneyProtocol
from .._protocols.midjourney.requests import MidjourneyRequest
from .._protocols.midjourney.tasks import structure_mj_task
from .._protocols.task_api import TaskAPI
from .._watching.poll_policy import PollPolicy
from ..errors import (
    EvolinkError,
    MissingAPIKeyError,
    SubmitOutcomeUnknownError,
    UnsupportedOperationError,
    ValidationError,
)
from .client import Client
from .tasks import Tasks

__all__ = ["MidjourneyClient", "MidjourneyTasks"]

#: ``mj.tasks``: the tasks of every client (``get_many`` and ``cancel`` included); kept by this name.
MidjourneyTasks = Tasks

_AUTH_HEADERS = {"bearer": "Authorization", "mj-api-secret": "mj-api-secret"}


class MidjourneyClient(Client[MidjourneyRequest]):
    """An asyncio client for a Midjourney proxy (novicezk or trueai midjourney-proxy, or a gateway).

    The key comes from ``api_key`` or ``MJ_PROXY_API_KEY`` (``api_key=""`` sends none); the host
    from ``base_url`` or ``MJ_PROXY_BASE_URL``. ``auth="bearer"`` sends ``Authorization: Bearer
    <key>`` (gateways), ``auth="mj-api-secret"`` the proxies' own header. ``path_prefix`` is
    ``"/mj"`` upstream, ``"/v1/mj"`` or ``"/mj-fast/mj"`` at some gateways.

    >>> async with MidjourneyClient(base_url="https://proxy.example", path_prefix="/v1/mj") as mj:
    ...     task = await mj.submit(Imagine(prompt="a red fox"))
    ...     done = await mj.tasks.wait(task, timeout=900)
    ...     upscaled = await mj.action(done, "U2")
    """

    _mj: MidjourneyAPI

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        path_prefix: str = "/mj",
        auth: Literal["bearer", "mj-api-secret"] = "bearer",
        poll_policy: PollPolicy | None = None,
        timeout: float = 60.0,
        connect_timeout: float = 10.0,
        max_retries: int | None = None,
        retry: RetryPolicy | None = None,
        max_connections: int = 64,
        default_headers: Mapping[str, str] | None = None,
        session: aiohttp.ClientSession | None = None,
        max_concurrent_queries: int = 32,
        batch_polling: bool = True,
        callbacks: CallbackReceiver | None = None,
        trace_configs: Sequence[aiohttp.TraceConfig] = (),
        tracer_provider: Any = None,
        meter_provider: Any = None,
    ) -> None:
        # In its ``Secret`` before anything can raise (see EvolinkClient); "" is a proxy without auth.
        key = wrap_api_key(api_key, "MJ_PROXY_API_KEY", check=False, allow_empty=True)
        del api_key
        if isinstance(key, ValidationError):
            raise key
        if key is None:
            raise MissingAPIKeyError(
                "no API key: pass api_key=... or set MJ_PROXY_API_KEY (api_key='' for a proxy without auth)"
            )
        base = base_url if base_url is not None else env_url("MJ_PROXY_BASE_URL")
        if not base:
            raise ValidationError("base_url", "pass base_url='https://...' or set MJ_PROXY_BASE_URL")
        base = check_base_url("base_url", base)
        if not isinstance(auth, str) or auth not in _AUTH_HEADERS:
            raise ValidationError("auth", f"must be one of {', '.join(_AUTH_HEADERS)}, got {auth!r}")
        config = ClientConfig(
            api_key=key,
            base_url=base,
            timeout=timeout,
            connect_timeout=connect_timeout,
            retry=retry_from(retry, max_retries),
            max_connections=max_connections,
            default_headers=default_headers,
            auth_header=_AUTH_HEADERS[auth],
        )
        # notifyHook posts every change, so a receiver makes polling a safety net here too.
        super().__init__(
            MidjourneyProtocol(path_prefix=path_prefix), config, session=session, poll_policy=poll_policy,
            max_concurrent_queries=max_concurrent_queries, batch_polling=batch_polling, callbacks=callbacks,
            trace_configs=trace_configs, tracer_provider=tracer_provider, meter_provider=meter_provider,
        )  # fmt: skip

    def _connected(self, api: TaskAPI[MidjourneyRequest]) -> None:
        if not isinstance(api, MidjourneyAPI):  # ``MidjourneyProtocol.connect`` makes nothing else
            raise TypeError(f"a MidjourneyClient needs a MidjourneyAPI, got {type(api).__name__}")
        self._mj = api

    @staticmethod
    def parse_task(body: object) -> Task:
        """A task from a proxy's ``notifyHook`` POST body (the fetch shape), e.g. for ``mj.tracker.push``;
        also callable on the class, as before every client had ``parse_task``.

        >>> mj.tracker.push(mj.parse_task(await request.json()))
        """
        return structure_mj_task(body)

    @property
    def api_base(self) -> str:
        """``base_url`` plus the path prefix, ending in ``/`` (``https://host/mj/``)."""
        return self._mj.base

    async def action(
        self, task: Task | str, label_or_custom_id: str, *, state: str | None = None, idempotency_key: str | None = None
    ) -> Task:
        """Press a button of a finished task: a label (``"U1"``..``"V4"``, ``"🔄"``, ``"Vary (Strong)"``)
        or its ``customId``. Returns the new task's first snapshot.

        >>> upscaled = await mj.tasks.wait(await mj.action(done, "U2"), timeout=600)
        """
        if not isinstance(label_or_custom_id, str) or not label_or_custom_id.strip():
            raise ValidationError("label_or_custom_id", "must be a button label or customId")
        current = task if isinstance(task, Task) and task.status is TaskStatus.COMPLETED else None
        if current is None:
            current = await self.tasks.get(task)
        if current.status is not TaskStatus.COMPLETED:
            raise ValidationError(
                "task", f"must have succeeded before a button is pressed; it is {current.status.value}"
            )
        details = current.midjourney
        buttons = details.buttons if details is not None else ()
        request = request_for_button(current.id, buttons, label_or_custom_id, state=state)
        if request is None:
            names = ", ".join(b.label or b.emoji or b.custom_id for b in buttons) or "none"
            raise ValidationError(
                "label_or_custom_id", f"task {current.id} has no button {label_or_custom_id!r} (buttons: {names})"
            )
        return await self.submit(request, idempotency_key=idempotency_key)

    async def find_submitted(self, idempotency_key: str, *, submitted_after: float | None = None) -> Task | None:
        """The task an earlier ``submit`` under ``idempotency_key`` created (found by its ``state`` in
        ``task/list``), or None when the list proves there is none: e.g. a resumed batch settles a
        submit its killed run never recorded. ``submitted_after`` (epoch seconds) is when that submit
        started at the earliest. Raises ``SubmitOutcomeUnknownError`` when the list cannot tell (no
        ``task/list``, or one cut short that holds only newer tasks): then do not submit again.

        >>> task = await mj.find_submitted(entry.idempotency_key, submitted_after=entry.updated_at)
        """
        key = check_idempotency_key(idempotency_key)
        started = submitted_after if submitted_after is not None else time.time()
        cause = SubmitOutcomeUnknownError(key, UnsupportedOperationError("task/list", "cannot be read"))
        try:
            return await self._mj._find_by_state(key, since_ms=None, started_ms=int(started * 1000), cause=cause)
        except SubmitOutcomeUnknownError:
            raise
        except EvolinkError as exc:
            raise SubmitOutcomeUnknownError(key, exc) from None
