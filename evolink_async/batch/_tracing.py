"""One span around a whole batch run or fleet worker run (telemetry on): the parent of everything the
run does, its fan-out and through it every input's task span, its uploads and its result queries.

Why no span per input: each input's task span already is one (``evolink.fan_out.key`` names the
input; status, ``error.type``, credits and update counts are on it), and a second span per input
would double the spans of a large batch for fields it already has. An input failed before any
submit (unreadable, invalid) has no task span; the run span counts those in its ``failed``.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import attrs

from .._core.telemetry import Telemetry

__all__ = ["summary_attributes", "traced_run"]

Runner = TypeVar("Runner")
Result = TypeVar("Result")
Attributes = Mapping[str, str | int | float | bool]


def summary_attributes(prefix: str, summary: Any) -> dict[str, str | int | float | bool]:
    """A run summary's counts as span attributes (lists by their length). Its strings (paths, an
    error's text) stay out: the span carries names, counts and codes only."""
    attributes: dict[str, str | int | float | bool] = {}
    for field in attrs.fields(type(summary)):
        value = getattr(summary, field.name)
        if isinstance(value, bool | int | float):
            attributes[f"{prefix}.{field.name}"] = value
        elif isinstance(value, list):
            attributes[f"{prefix}.{field.name}"] = len(value)
    return attributes


def traced_run(
    name: str, *, started: Callable[[Any], Attributes], ended: Callable[[Any], Attributes]
) -> Callable[[Callable[[Runner], Awaitable[Result]]], Callable[[Runner], Awaitable[Result]]]:
    """Run the decorated ``run(self)`` under a span ``name``, current for all it does, when
    ``self._client`` has telemetry on; otherwise call it as it is (one attribute read)."""

    def wrap(run: Callable[[Runner], Awaitable[Result]]) -> Callable[[Runner], Awaitable[Result]]:
        @functools.wraps(run)
        async def traced(runner: Runner) -> Result:
            telemetry = getattr(getattr(runner, "_client", None), "telemetry", None)
            if not isinstance(telemetry, Telemetry):
                return await run(runner)
            span = telemetry.span(name, started(runner))
            if span is None:  # tracing off (metrics only), or the span could not be made
                return await run(runner)
            # Current while the run runs: the tasks it spawns copy this context, so its fan-out,
            # uploads and queries are the span's children.
            token = span.attach()
            error: str | None = None
            try:
                return await run(runner)
            except BaseException as exc:
                error = type(exc).__name__
                raise
            finally:
                span.detach(token)
                try:
                    span.set(ended(runner))
                finally:  # telemetry never raises into the caller, nor leaves a span open
                    span.end(error_type=error)

        return traced

    return wrap
