"""evolink_async: an asyncio-first SDK for Evolink's asynchronous image-generation API.

Every public name is importable from here. The batch (and with it ``sqlite3``) loads on first
use of one of its names, so ``import evolink_async`` stays light for web apps and bots.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._callbacks.receiver import CallbackReceiver
from ._clients.evolink import EvolinkClient, MissingAPIKeyError
from ._core.config import ClientConfig
from ._core.retry import RetryPolicy
from ._models.events import EventKind, TaskEvent
from ._models.requests import ImageInput, ImageRequest, QwenImageEdit, RemoveBackground, Request, Retexture, Speed
from ._models.task import Task, TaskError, TaskInfo, TaskStatus, Usage
from ._protocols.evolink.files import UploadedFile
from ._version import __version__
from ._watching.fan_out import FanOut, FanOutItem, FanOutSummary
from ._watching.poll_policy import PollPolicy
from ._watching.stream import TaskStream
from .errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ClientClosedError,
    DownloadError,
    EvolinkError,
    FilesAPIError,
    InsufficientCreditsError,
    NotFoundError,
    NotSubmittedError,
    PermissionDeniedError,
    RateLimitError,
    RequestTooLargeError,
    ResponseFormatError,
    ServerError,
    TaskCancelledError,
    TaskFailedError,
    TaskTimeoutError,
    ValidationError,
)

if TYPE_CHECKING:
    from .batch import Batch, BatchLockedError, BatchPlan, BatchSpec, BatchSummary, plan_batch

# name -> module that defines it, imported on first access (PEP 562).
_LAZY = {name: ".batch" for name in ("Batch", "BatchLockedError", "BatchPlan", "BatchSpec", "BatchSummary",
                                      "plan_batch")}  # fmt: skip


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'evolink_async' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "Batch",
    "BatchLockedError",
    "BatchPlan",
    "BatchSpec",
    "BatchSummary",
    "CallbackReceiver",
    "ClientClosedError",
    "ClientConfig",
    "DownloadError",
    "EvolinkClient",
    "EventKind",
    "EvolinkError",
    "FanOut",
    "FanOutItem",
    "FanOutSummary",
    "FilesAPIError",
    "ImageInput",
    "ImageRequest",
    "InsufficientCreditsError",
    "MissingAPIKeyError",
    "NotFoundError",
    "NotSubmittedError",
    "PermissionDeniedError",
    "PollPolicy",
    "QwenImageEdit",
    "RateLimitError",
    "RemoveBackground",
    "Request",
    "RequestTooLargeError",
    "ResponseFormatError",
    "RetryPolicy",
    "Retexture",
    "ServerError",
    "Speed",
    "Task",
    "TaskCancelledError",
    "TaskError",
    "TaskEvent",
    "TaskFailedError",
    "TaskInfo",
    "TaskStatus",
    "TaskStream",
    "TaskTimeoutError",
    "UploadedFile",
    "Usage",
    "ValidationError",
    "__version__",
    "plan_batch",
]
