"""A local emulator of Evolink's task API and Files API, for tests, benchmarks and demos.

>>> async with Sandbox(time_scale=0.01, seed=7, faults=Faults(server_error_rate=0.1)) as sandbox:
...     ...  # point a client at sandbox.base_url / sandbox.files_base_url with sandbox.api_key

Or standalone: ``python -m evolink_async.sandbox --port 8080 --time-scale 0.1 --seed 7``.
It imports nothing of the client: only aiohttp, attrs, anyio and the SDK's request rules.

Layout: ``evolink/`` serves Evolink's task API and Files API, ``midjourney/`` the Midjourney
proxy's ``/mj/...`` routes; beside them the core both use (options, faults, rate limit, ledger,
HTTP plumbing, the PNG codec, the shared state) and ``Sandbox``, which runs the two servers.
"""

from ._config import (
    DEFAULT_API_KEY,
    DEFAULT_ESTIMATED_TIMES,
    DEFAULT_MAX_FILES,
    DEFAULT_MODEL_COSTS,
    FAILURE_CODES,
    Faults,
    MidjourneyOptions,
    SandboxConfig,
)
from ._ledger import CallbackAttempt, Ledger
from ._samples import make_samples
from ._sandbox import Sandbox
from .evolink._lifecycle import TaskTimeline
from .midjourney._ledger import MjHookAttempt, MjSubmission

__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_ESTIMATED_TIMES",
    "DEFAULT_MAX_FILES",
    "DEFAULT_MODEL_COSTS",
    "FAILURE_CODES",
    "CallbackAttempt",
    "Faults",
    "Ledger",
    "MidjourneyOptions",
    "MjHookAttempt",
    "MjSubmission",
    "Sandbox",
    "SandboxConfig",
    "TaskTimeline",
    "make_samples",
]
