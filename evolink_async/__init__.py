"""evolink_async: an asyncio-first SDK for Evolink's asynchronous image-generation API.

Every public name is importable from here. The batch (and with it ``sqlite3``) loads on first
use of one of its names, so ``import evolink_async`` stays light for web apps and bots.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._callbacks.receiver import CallbackReceiver
from ._clients.client import Client
from ._clients.evolink import EvolinkClient
from ._clients.midjourney import MidjourneyClient, MidjourneyTasks
from ._core.config import ClientConfig
from ._core.retry import RetryPolicy
from ._models.events import EventKind, TaskEvent
from ._models.midjourney import MidjourneyButton, MidjourneyDetails
from ._models.requests import ImageInput, ImageRequest, QwenImageEdit, RemoveBackground, Request, Retexture, Speed
from ._models.task import ResultItem, Task, TaskDetails, TaskError, TaskInfo, TaskStatus, Usage
from ._protocols.evolink.files import FilesPage, FilesQuota, UploadedFile
from ._protocols.midjourney.requests import (
    Action,
    Blend,
    Bot,
    Change,
    ChangeAction,
    Describe,
    Dimensions,
    Imagine,
    MidjourneyImage,
    MidjourneyRequest,
    Modal,
    Shorten,
    SpeedMode,
)
from ._relay import ProgressRelay
from ._version import __version__
from ._watching.fan_out import FanOut, FanOutItem, FanOutSummary
from ._watching.poll_policy import PollPolicy
from ._watching.stream import TaskStream
from ._watching.tracker import Tracker
from .errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    APIUnreachableError,
    AuthenticationError,
    BadRequestError,
    BannedPromptError,
    BatchLockedError,
    ClientClosedError,
    DownloadError,
    DuplicateTaskError,
    EndpointMissingError,
    EvolinkError,
    FilesAPIError,
    InsufficientCreditsError,
    JournalCorruptError,
    JournalError,
    JournalLostError,
    MidjourneyError,
    MissingAPIKeyError,
    ModelUnavailableError,
    NotFoundError,
    NotJSONAnswerError,
    NotSubmittedError,
    PermissionDeniedError,
    QueueFullError,
    RateLimitError,
    RedirectRefusedError,
    Remedy,
    RequestTooLargeError,
    ResponseFormatError,
    ServerError,
    SubmitOutcomeUnknownError,
    TaskCancelledError,
    TaskFailedError,
    TaskNeedsModalError,
    TaskRequiresActionError,
    TaskTimeoutError,
    UnsupportedOperationError,
    ValidationError,
)

if TYPE_CHECKING:
    from .batch import Batch, BatchPlan, BatchSpec, BatchSummary, plan_batch

# name -> module that defines it, imported on first access (PEP 562).
_LAZY = {name: ".batch" for name in ("Batch", "BatchPlan", "BatchSpec", "BatchSummary",
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
    "APIUnreachableError",
    "Action",
    "AuthenticationError",
    "BadRequestError",
    "BannedPromptError",
    "Batch",
    "BatchLockedError",
    "BatchPlan",
    "BatchSpec",
    "BatchSummary",
    "Blend",
    "Bot",
    "CallbackReceiver",
    "Change",
    "ChangeAction",
    "ClientClosedError",
    "Client",
    "ClientConfig",
    "Describe",
    "Dimensions",
    "DownloadError",
    "DuplicateTaskError",
    "EndpointMissingError",
    "EventKind",
    "EvolinkClient",
    "EvolinkError",
    "FanOut",
    "FanOutItem",
    "FanOutSummary",
    "FilesAPIError",
    "FilesPage",
    "FilesQuota",
    "ImageInput",
    "ImageRequest",
    "Imagine",
    "InsufficientCreditsError",
    "ModelUnavailableError",
    "JournalCorruptError",
    "JournalError",
    "JournalLostError",
    "MidjourneyButton",
    "MidjourneyClient",
    "MidjourneyDetails",
    "MidjourneyError",
    "MidjourneyImage",
    "MidjourneyRequest",
    "MidjourneyTasks",
    "MissingAPIKeyError",
    "Modal",
    "NotFoundError",
    "NotJSONAnswerError",
    "NotSubmittedError",
    "PermissionDeniedError",
    "PollPolicy",
    "ProgressRelay",
    "QueueFullError",
    "QwenImageEdit",
    "RateLimitError",
    "RedirectRefusedError",
    "Remedy",
    "RemoveBackground",
    "Request",
    "RequestTooLargeError",
    "ResponseFormatError",
    "ResultItem",
    "Retexture",
    "RetryPolicy",
    "ServerError",
    "SubmitOutcomeUnknownError",
    "Shorten",
    "Speed",
    "SpeedMode",
    "Task",
    "TaskCancelledError",
    "TaskDetails",
    "TaskError",
    "TaskEvent",
    "TaskFailedError",
    "TaskInfo",
    "TaskNeedsModalError",
    "TaskRequiresActionError",
    "TaskStatus",
    "TaskStream",
    "Tracker",
    "TaskTimeoutError",
    "UnsupportedOperationError",
    "UploadedFile",
    "Usage",
    "ValidationError",
    "plan_batch",
    "__version__",
]
