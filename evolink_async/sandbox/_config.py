"""Sandbox options as frozen values, and the one place that knows about the scaled clock.

Every duration in the options is in *API seconds*: the seconds the real service would take.
``time_scale`` maps them onto wall-clock seconds (``real = api * time_scale``), and everything a
client can observe (task timelines, ``estimated_time``, ``Retry-After``, expiry times, callback
timeouts and retry delays) is reported in real seconds, so a client's poll policy sees one
consistent clock whatever the scale.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import attrs

from .._core.checks import CREDITS, DELAY, PROBABILITY, SECONDS, NumberRule
from ..errors import ValidationError
from .midjourney._config import MidjourneyOptions

__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_ESTIMATED_TIME",
    "DEFAULT_ESTIMATED_TIMES",
    "DEFAULT_MAX_FILES",
    "DEFAULT_MODEL_COSTS",
    "FAILURE_CODES",
    "Faults",
    "MidjourneyOptions",
    "SandboxConfig",
    "format_seconds",
]

#: The key a sandbox accepts unless told otherwise (it guards nothing: it only lets a client
#: exercise its auth path; a wrong key still gets the documented 401).
DEFAULT_API_KEY = "sk-evo-sandbox-key"

#: ``task_info.estimated_time`` per model, in API seconds (models not listed: 20 s).
DEFAULT_ESTIMATED_TIMES: Mapping[str, float] = MappingProxyType(
    {"mj-v7-retexture": 45.0, "mj-v7-remove-bg": 30.0, "qwen-image-edit": 30.0}
)
DEFAULT_ESTIMATED_TIME = 20.0

#: Credits reserved per call (``usage.credits_reserved``); ``speed: turbo`` doubles a cost.
DEFAULT_MODEL_COSTS: Mapping[str, float] = MappingProxyType(
    {"mj-v7-retexture": 1.8, "mj-v7-remove-bg": 1.8, "qwen-image-edit": 1.0}
)
DEFAULT_MODEL_COST = 1.0
TURBO_COST_FACTOR = 2.0

#: Task-level error codes of API.md A3 that injected failures draw from, both the caller-fixable
#: and the server-side ones (``generation_timeout`` is left to stuck tasks, which end with it).
#: The order is part of seeded runs (a draw picks an index): append, never reorder.
FAILURE_CODES: tuple[str, ...] = (
    "content_policy_violation",
    "image_dimension_mismatch",
    "image_processing_error",
    "invalid_parameters",
    "request_cancelled",
    "generation_failed_no_content",
    "service_error",
    "resource_exhausted",
    "quota_exceeded",
    "service_unavailable",
    "resource_not_found",
    "unknown_error",
)

_MiB = 1024 * 1024
#: The Files API's default quota of live files per key (API.md A6).
DEFAULT_MAX_FILES = 100


#: A fault's probability, in [0, 1] by the library's numeric rules (a ``ValidationError`` naming it).
_rate = PROBABILITY.validator()


def _codes(value: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    codes = tuple(value)
    if not codes or not all(isinstance(c, str) and c for c in codes):
        raise ValidationError("failure_codes", "must be a non-empty sequence of error code strings")
    return codes


@attrs.frozen(kw_only=True)
class Faults:
    """How often the sandbox misbehaves, each a probability in [0, 1] decided with the seeded RNG.

    Per request of the two task endpoints (submit and query), one draw picks at most one of
    ``server_error_rate`` (500/502/503), ``rate_limit_rate`` (429 with ``Retry-After``),
    ``reset_before_rate`` (connection dropped before anything happened), ``reset_after_rate``
    (the request took effect, e.g. a task was created and billed, then the connection dropped)
    and ``malformed_rate`` (200 with a truncated JSON body, after the request took effect), so
    their sum must stay <= 1. ``slow_rate`` is drawn on its own: the answer waits ``slow_delay``
    API seconds first (the request still takes effect if the client gives up meanwhile, as on
    a real server). Per task, ``task_failure_rate`` ends it ``failed`` with a code from
    ``failure_codes`` and ``stuck_rate`` leaves it processing until ``stuck_timeout`` API
    seconds after submit, when it fails with ``generation_timeout``.

    >>> Faults(server_error_rate=0.1, reset_after_rate=0.05)
    """

    server_error_rate: float = attrs.field(default=0.0, validator=_rate)
    rate_limit_rate: float = attrs.field(default=0.0, validator=_rate)
    reset_before_rate: float = attrs.field(default=0.0, validator=_rate)
    reset_after_rate: float = attrs.field(default=0.0, validator=_rate)
    slow_rate: float = attrs.field(default=0.0, validator=_rate)
    malformed_rate: float = attrs.field(default=0.0, validator=_rate)
    task_failure_rate: float = attrs.field(default=0.0, validator=_rate)
    stuck_rate: float = attrs.field(default=0.0, validator=_rate)
    #: Per callback: never sent at all (each retry included), sent twice, and sent late by a
    #: uniform draw in ``callback_delay`` API seconds (which also reorders callbacks of tasks
    #: that finish close together).
    callback_drop_rate: float = attrs.field(default=0.0, validator=_rate)
    callback_duplicate_rate: float = attrs.field(default=0.0, validator=_rate)
    callback_delay: tuple[float, float] = (0.0, 0.0)
    slow_delay: float = 15.0
    retry_after: tuple[float, float] = (1.0, 5.0)
    failure_codes: tuple[str, ...] = attrs.field(default=FAILURE_CODES, converter=_codes)
    stuck_timeout: float = 20 * 60.0

    def __attrs_post_init__(self) -> None:
        exclusive = (
            self.server_error_rate
            + self.rate_limit_rate
            + self.reset_before_rate
            + self.reset_after_rate
            + self.malformed_rate
        )
        if exclusive > 1.0 + 1e-9:
            raise ValidationError("faults", f"the per-request fault rates add up to {exclusive:g}, more than 1")
        if self.task_failure_rate + self.stuck_rate > 1.0 + 1e-9:
            raise ValidationError("task_failure_rate", "plus stuck_rate must be at most 1")
        DELAY.check("slow_delay", self.slow_delay)  # NaN too: a NaN wait never ends
        SECONDS.check("stuck_timeout", self.stuck_timeout)
        low, high = self.retry_after
        if not 0 < low <= high:
            raise ValidationError("retry_after", "must be (low, high) with 0 < low <= high")


def _spread(value: tuple[float, float]) -> tuple[float, float]:
    low, high = (float(v) for v in value)
    if not 0 < low <= high:
        raise ValidationError("duration_spread", f"must be (low, high) with 0 < low <= high, got {value}")
    return (low, high)


#: A positive finite number (a ``ValidationError`` naming the attribute).
_positive = NumberRule(above=True).validator()


def _seed(_instance: object, attribute: attrs.Attribute[int], value: object) -> None:
    if type(value) is not int:  # a seed names one run's draws: NaN, a string or a list names none
        raise ValidationError(attribute.name, f"must be a whole number, got {value!r}")


@attrs.frozen(kw_only=True)
class SandboxConfig:
    """Everything a sandbox was started with (``Sandbox(...)`` keyword arguments, validated)."""

    time_scale: float = attrs.field(default=1.0, validator=_positive)
    seed: int = attrs.field(default=0, validator=_seed)
    faults: Faults = attrs.field(factory=Faults)
    credits: float | None = None
    rate_limit: float | None = None
    api_keys: frozenset[str] = frozenset({DEFAULT_API_KEY})
    estimated_times: Mapping[str, float] = DEFAULT_ESTIMATED_TIMES
    duration_spread: tuple[float, float] = attrs.field(default=(0.5, 1.5), converter=_spread)
    pending_fraction: float = 0.15
    model_costs: Mapping[str, float] = DEFAULT_MODEL_COSTS
    #: The Files API's limits (API.md A6): 100 MB a file, 100 live files a key (500 for VIP
    #: accounts: ``max_files=500``). Files count until deleted or expired (``file_ttl``).
    max_upload_bytes: int = 100 * _MiB
    max_files: int = DEFAULT_MAX_FILES
    #: ``user_group`` in usage blocks and the quota answer ("default"; Evolink's VIP keys differ).
    user_group: str = "default"
    #: False refuses models outside the documented catalogue with 400 ``model_unavailable``, as
    #: the real service refuses a model it does not serve; True accepts any model name.
    accept_any_model: bool = False
    result_ttl: float = 24 * 3600.0
    file_ttl: float = 72 * 3600.0
    callback_timeout: float = attrs.field(default=10.0, validator=_positive)
    callback_retry_delays: tuple[float, ...] = (1.0, 2.0, 4.0)
    #: False emulates a server that ignores ``Idempotency-Key`` (Evolink documents no
    #: de-duplication): every submit, retried or not, creates and bills a task.
    honor_idempotency_keys: bool = True
    midjourney: MidjourneyOptions = attrs.field(factory=MidjourneyOptions)

    def __attrs_post_init__(self) -> None:
        # The library's numeric rules (NaN and infinities refused): an infinite rate limit or a NaN
        # balance would silently switch the limit off.
        NumberRule(above=True).check_optional("rate_limit", self.rate_limit)
        CREDITS.check_optional("credits", self.credits)
        if not 0 <= self.pending_fraction < 1:
            raise ValidationError("pending_fraction", "must be within [0, 1)")
        for name in ("max_files", "max_upload_bytes"):
            value = getattr(self, name)
            if type(value) is not int or value < 1:
                raise ValidationError(name, f"must be a positive integer, got {value!r}")

    def real(self, api_seconds: float) -> float:
        """Wall-clock seconds that stand for ``api_seconds`` of the real service."""
        return api_seconds * self.time_scale

    def estimated_time(self, model: str) -> float:
        return float(self.estimated_times.get(model, DEFAULT_ESTIMATED_TIMES.get(model, DEFAULT_ESTIMATED_TIME)))

    def cost(self, model: str, speed: object) -> float:
        base = float(self.model_costs.get(model, DEFAULT_MODEL_COSTS.get(model, DEFAULT_MODEL_COST)))
        return round(base * TURBO_COST_FACTOR, 6) if speed == "turbo" else base


def format_seconds(seconds: float) -> str:
    """A header value for a duration: ``"45"``, ``"0.45"`` (never exponent notation)."""
    return _trim(f"{max(seconds, 0.0):.6f}")


def json_seconds(seconds: float) -> int | float:
    """A JSON number for a duration: an integer when whole (as the real API sends), else a float."""
    rounded = round(seconds, 6)
    return int(rounded) if rounded == int(rounded) else rounded


def _trim(text: str) -> str:
    text = text.rstrip("0").rstrip(".")
    return text or "0"
