"""evolink_async: an asyncio-first SDK for Evolink's asynchronous image-generation API."""

from ._client import EvolinkClient, MissingAPIKeyError
from ._config import ClientConfig
from ._requests import ImageInput, ImageRequest, QwenImageEdit, RemoveBackground, Request, Retexture, Speed
from ._retry import RetryPolicy
from ._task import Task, TaskError, TaskInfo, TaskStatus, Usage
from ._version import __version__
from .errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    EvolinkError,
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

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ClientConfig",
    "EvolinkClient",
    "EvolinkError",
    "ImageInput",
    "ImageRequest",
    "InsufficientCreditsError",
    "MissingAPIKeyError",
    "NotFoundError",
    "PermissionDeniedError",
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
    "TaskFailedError",
    "TaskInfo",
    "TaskStatus",
    "TaskTimeoutError",
    "Usage",
    "ValidationError",
    "__version__",
]
