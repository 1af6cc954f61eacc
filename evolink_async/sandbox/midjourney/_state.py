"""The MJ side's share of a running sandbox: its task book, hook dispatcher and images."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._config import SandboxConfig
from .._ledger import Ledger
from ._hooks import MjHookDispatcher
from ._images import MjImages
from ._tasks import MjBook, MjTask

__all__ = ["MjState"]

IMAGES = "/_images"


class MjState:
    def __init__(
        self, config: SandboxConfig, ledger: Ledger, *, clock: Callable[[], float], base_url: Callable[[], str]
    ) -> None:
        self.config = config
        self.options = config.midjourney
        self.ledger = ledger
        self.clock = clock
        self._base_url = base_url
        self.book = MjBook(config)
        self.images = MjImages()
        self.hooks = MjHookDispatcher(config, ledger, body_of=self.body_at, clock=clock)

    @property
    def url(self) -> str:
        """Where the routes are mounted: ``{base_url}{prefix}``."""
        return self._base_url() + self.options.prefix

    def body_at(self, task: MjTask, at: float) -> dict[str, Any]:
        return self.book.snapshot(task, at, images_url=self.url + IMAGES)

    def body(self, task: MjTask) -> dict[str, Any]:
        return self.body_at(task, self.clock())
