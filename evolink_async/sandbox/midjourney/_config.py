"""``MidjourneyOptions``: how the sandbox's Midjourney-proxy side behaves, quirks included.

Defaults follow novicezk/midjourney-proxy (the open-source reference server): routes under
``/mj``, 401 with an empty body for a wrong key, code 22 when the executor is busy and 23 when
its queue is full, code 24 for a banned word, ``FAILURE`` with progress ``""``, an unknown task
id fetched as HTTP 200 with an empty body, and a 5 minute execution timeout. Every other
server's behaviour (trueai, new-api style gateways) is one switch away. Durations are in API
seconds, scaled by the sandbox's ``time_scale`` like everything else.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Literal

import attrs

from ..._core.checks import DELAY, PROBABILITY, SECONDS
from ..._protocols.midjourney.api import normalize_prefix
from ...errors import ValidationError

__all__ = ["DEFAULT_MJ_DURATIONS", "MidjourneyOptions"]

#: How long a job runs once a Discord slot took it, per action (API seconds).
DEFAULT_MJ_DURATIONS: Mapping[str, float] = MappingProxyType(
    {
        "IMAGINE": 40.0,
        "BLEND": 40.0,
        "VARIATION": 35.0,
        "REROLL": 40.0,
        "ZOOM": 35.0,
        "PAN": 35.0,
        "UPSCALE": 8.0,
        "UPSCALE_HD": 20.0,
        "DESCRIBE": 6.0,
        "SHORTEN": 6.0,
    }
)

AuthHeader = Literal["any", "mj-api-secret", "bearer"]
UnknownFetch = Literal["empty", "no_content", "not_found"]


def _prefix(value: str) -> str:
    # The client's rule ("mj" and "/mj/" are "/mj"): a prefix one accepts the other serves.
    try:
        return normalize_prefix(value)
    except ValidationError as exc:
        raise ValidationError("prefix", exc.rule) from None


def _words(value: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    return tuple(str(w).strip().lower() for w in value if str(w).strip())


def _pair(value: tuple[float, float]) -> tuple[float, float]:
    low, high = (float(v) for v in value)
    if not 0 <= low <= high or not math.isfinite(high):
        raise ValidationError("range", f"must be (low, high) with 0 <= low <= high, got {value}")
    return (low, high)


@attrs.frozen(kw_only=True)
class MidjourneyOptions:
    """The Midjourney-proxy emulation (``Sandbox(midjourney=MidjourneyOptions(...))``).

    Routes and auth:

    - ``enabled``: serve the MJ routes at all; ``prefix``: where (``"/mj"``; ``""`` for none);
    - ``api_key``: the accepted secret (``None``: the sandbox's Evolink ``api_key``);
    - ``auth``: which header carries it: ``"mj-api-secret"``, ``"bearer"`` (``Authorization``,
      with or without ``Bearer ``) or ``"any"`` of the two; a wrong key is HTTP 401 with
      ``unauthorized_body`` (``""`` as novicezk; trueai sends ``"Authorization header missing."``).

    Server quirks:

    - ``failure_status``: ``"FAILURE"`` (every real proxy) or ``"FAILED"``;
    - ``failure_progress``: progress of a failed task, ``""`` (proxies) or ``"100%"`` (new-api);
    - ``blank_status_for``: API seconds after submit during which status reads ``""`` (a gateway
      before its first upstream poll);
    - ``unknown_fetch``: ``task/{id}/fetch`` of an unknown id: ``"empty"`` (200, empty body,
      novicezk), ``"no_content"`` (204, trueai) or ``"not_found"`` (404);
    - ``list_by_condition``/``cancel``: serve ``task/list-by-condition`` and ``task/{id}/cancel``
      (off: 404, to test a client's fallback); ``list_limit``: ``task/list`` length (None: all);
    - ``concurrency`` jobs run at once; up to ``queue_size`` more wait (submit code 22 with
      ``numberOfQueues``); past that a submit is refused with ``queue_full_code`` (23 novicezk,
      9 trueai) and no task;
    - ``banned_words`` (whole words, any case): ``banned_check="submit"`` refuses with code 24
      and ``properties.bannedWord``; ``"execute"`` accepts, then fails the task (trueai);
    - ``modal_prefixes``: customIds that answer code 21 and leave a MODAL task for
      ``submit/modal`` (``enableRemix: true`` does it for variations, pans and rerolls too);
    - ``timeout``: API seconds after a job starts when a stuck job fails with ``"任务超时"``;
      stuck and failed jobs come from the sandbox's ``Faults.stuck_rate``/``task_failure_rate``;
    - ``durations`` per action (API seconds; spread by the sandbox's ``duration_spread``),
      ``dispatch_delay`` from submit (or a free slot) to SUBMITTED ``"0%"``;
    - notifyHook: one POST per change, never retried; ``hook_drop_rate`` of them are not sent,
      ``hook_duplicate_rate`` sent twice, each delayed by a random ``hook_delay`` (API seconds:
      a spread reorders them); ``hook_timeout`` per POST;
    - ``cost``: credits recorded in the ledger per created task.
    """

    enabled: bool = True
    prefix: str = attrs.field(default="/mj", converter=_prefix)
    api_key: str | None = None
    auth: AuthHeader = "any"
    unauthorized_body: str = ""
    failure_status: Literal["FAILURE", "FAILED"] = "FAILURE"
    failure_progress: Literal["", "100%"] = ""
    blank_status_for: float = 0.0
    unknown_fetch: UnknownFetch = "empty"
    list_by_condition: bool = True
    cancel: bool = True
    list_limit: int | None = 100
    concurrency: int = 3
    queue_size: int = 10
    queue_full_code: int = 23
    banned_words: tuple[str, ...] = attrs.field(default=("nude", "naked", "gore"), converter=_words)
    banned_check: Literal["submit", "execute"] = "submit"
    modal_prefixes: tuple[str, ...] = (
        "MJ::CustomZoom::",
        "MJ::Inpaint::",
        "MJ::Job::PicReader::",
        "MJ::Job::PromptAnalyzer::",
    )
    timeout: float = 300.0
    durations: Mapping[str, float] = DEFAULT_MJ_DURATIONS
    dispatch_delay: float = 1.5
    hook_drop_rate: float = attrs.field(default=0.0, validator=PROBABILITY.validator())
    hook_duplicate_rate: float = attrs.field(default=0.0, validator=PROBABILITY.validator())
    hook_delay: tuple[float, float] = attrs.field(default=(0.0, 0.0), converter=_pair)
    hook_timeout: float = 10.0
    cost: float = 1.0

    def __attrs_post_init__(self) -> None:
        if self.auth not in ("any", "mj-api-secret", "bearer"):
            raise ValidationError("auth", f"must be 'any', 'mj-api-secret' or 'bearer', got {self.auth!r}")
        if self.unknown_fetch not in ("empty", "no_content", "not_found"):
            raise ValidationError(
                "unknown_fetch", f"must be 'empty', 'no_content' or 'not_found', got {self.unknown_fetch!r}"
            )
        if self.failure_status not in ("FAILURE", "FAILED") or self.failure_progress not in ("", "100%"):
            raise ValidationError("failure_status", "must be FAILURE or FAILED, failure_progress '' or '100%'")
        if self.banned_check not in ("submit", "execute"):
            raise ValidationError("banned_check", "must be 'submit' or 'execute'")
        if self.concurrency < 1 or self.queue_size < 0:
            raise ValidationError("concurrency", "must be >= 1 and queue_size >= 0")
        if self.list_limit is not None and self.list_limit < 1:
            raise ValidationError("list_limit", "must be >= 1, or None for every task")
        # The library's numeric rules: NaN and infinities refused (a NaN timeout never fires).
        for name in ("timeout", "hook_timeout"):
            SECONDS.check(name, getattr(self, name))
        for name in ("dispatch_delay", "blank_status_for"):
            DELAY.check(name, getattr(self, name))
        if self.hook_drop_rate + self.hook_duplicate_rate > 1.0 + 1e-9:
            raise ValidationError("hook_drop_rate", "plus hook_duplicate_rate must be at most 1")

    def duration(self, action: str) -> float:
        return float(self.durations.get(action, DEFAULT_MJ_DURATIONS.get(action, 30.0)))

    def banned_word(self, prompt: str) -> str | None:
        """The first configured banned word in ``prompt`` (whole word, any case), or None."""
        for word in self.banned_words:
            if re.search(rf"(?<!\w){re.escape(word)}(?!\w)", prompt, re.IGNORECASE):
                return word
        return None
