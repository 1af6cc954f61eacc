"""evolink_async: an asyncio-first SDK for Evolink's asynchronous image-generation API."""

from ._batch import Batch, plan_batch
from ._batch_types import BatchLockedError, BatchPlan, BatchSpec, BatchSummary
from ._client import EvolinkClient, MissingAPIKeyError
from ._config import ClientConfig
from ._events import EventKind, TaskEvent
from ._fan_out import FanOut, FanOutItem, FanOutSummary
from ._poll_policy import PollPolicy
from ._requests import ImageInput, ImageRequest, QwenImageEdit, RemoveBackground, Request, Retexture, Speed
from ._retry import RetryPolicy
from ._stream import TaskStream
from ._task import Task, TaskError, TaskInfo, TaskStatus, Usage
from ._version import __version__
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
from .resources.files import UploadedFile

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
