"""The shared state of one running sandbox, handed to both apps' routes."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import anyio
import attrs

from ._config import SandboxConfig
from ._faults import FaultInjector
from ._ledger import Ledger
from ._ratelimit import TokenBuckets
from .evolink._callbacks import CallbackDispatcher
from .evolink._files import FileStore
from .evolink._lifecycle import TaskRecord, snapshot
from .evolink._results import ResultImages
from .evolink._tasks import TaskBook
from .midjourney._state import MjState

__all__ = ["SandboxState"]

_UPLOAD_PATH = re.compile(r"^/files/(file_[0-9a-f]+)/[^/]+$|^/api/v1/files/download/(file_[0-9a-f]+)$")
_RESULT_PATH = re.compile(r"^/files/results/(task-unified-[A-Za-z0-9-]+)/(\d+)\.png$")
_LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost"})


@attrs.define(kw_only=True)
class SandboxState:
    """Components and addresses; ``base_url``/``files_base_url`` are set once the sockets are bound."""

    config: SandboxConfig
    clock: Callable[[], float] = time.monotonic
    ledger: Ledger = attrs.field(factory=Ledger)
    book: TaskBook = attrs.field(init=False)
    files: FileStore = attrs.field(init=False)
    results: ResultImages = attrs.field(factory=ResultImages)
    faults: FaultInjector = attrs.field(init=False)
    buckets: TokenBuckets | None = attrs.field(init=False)
    callbacks: CallbackDispatcher = attrs.field(init=False)
    mj: MjState = attrs.field(init=False)
    base_url: str = ""
    files_base_url: str = ""

    def __attrs_post_init__(self) -> None:
        config = self.config
        self.book = TaskBook(config, self.ledger)
        self.files = FileStore(max_bytes=config.max_upload_bytes, max_files=config.max_files)
        self.faults = FaultInjector(config.faults, seed=config.seed)
        self.buckets = None
        if config.rate_limit is not None:
            # The limit is in API seconds like every other knob, so it compresses with time_scale.
            rate = config.rate_limit / config.time_scale
            self.buckets = TokenBuckets(rate=rate, burst=max(1.0, config.rate_limit))
        self.callbacks = CallbackDispatcher(config, self.ledger, body_of=self.final_body, clock=self.clock)
        self.mj = MjState(config, self.ledger, clock=self.clock, base_url=lambda: self.base_url)

    async def run_background(self) -> None:
        """Evolink callbacks and MJ notifyHooks, until cancelled."""
        async with anyio.create_task_group() as group:
            group.start_soon(self.callbacks.run)
            group.start_soon(self.mj.hooks.run)

    def body(self, record: TaskRecord) -> dict[str, Any]:
        return snapshot(record, self.clock(), base_url=self.base_url, user_group=self.config.user_group)

    def final_body(self, record: TaskRecord) -> dict[str, Any]:
        """The task as it reads once terminal (what a callback carries)."""
        return snapshot(
            record, max(self.clock(), record.finishes), base_url=self.base_url, user_group=self.config.user_group
        )

    def result_expired(self, record: TaskRecord, now: float) -> bool:
        return now >= record.finishes + self.config.real(self.config.result_ttl)

    async def resolve_input(self, url: str) -> tuple[bytes | None, bool]:
        """The bytes behind an input URL that points at this sandbox.

        Returns ``(data, missing)``: ``(None, False)`` for a URL elsewhere (accepted, not
        fetched: nothing outside this machine may be contacted, and the result is generated),
        ``(None, True)`` for a sandbox URL that serves nothing (the task will fail as a real one
        does when its input cannot be downloaded).
        """
        parts = urlsplit(url)
        if parts.hostname not in _LOCAL_HOSTS:
            return None, False
        origin = f"{parts.scheme}://127.0.0.1:{parts.port}"
        now = self.clock()
        upload = _UPLOAD_PATH.match(parts.path)
        if origin == self.files_base_url and upload:
            stored = self.files.get(upload.group(1) or upload.group(2), now)
            return (stored.data, False) if stored is not None else (None, True)
        result = _RESULT_PATH.match(parts.path)
        if origin == self.base_url and result:
            record = self.book.lookup(result.group(1))
            index = int(result.group(2))
            if (
                record is None
                or record.outcome != "completed"
                or not record.is_finished(now)
                or self.result_expired(record, now)
                or index >= record.result_count
            ):
                return None, True
            return await self.results.png(record, index), False
        if origin in (self.base_url, self.files_base_url):
            return None, True
        return None, False
