"""Helpers shared by the scenarios: statistics, memory, event-loop lag, machine description."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Iterable, Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any

__all__ = [
    "LagProbe",
    "Scenario",
    "machine_info",
    "mean",
    "median",
    "peak_rss_bytes",
    "percentile",
    "rss_bytes",
    "target",
]

LIBRARIES = ("aiohttp", "httpx", "anyio", "attrs", "cattrs", "evolink_async")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def machine_info() -> dict[str, Any]:
    """What the figures were measured on."""
    versions: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    cpu_model = None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu_model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_total = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem_total = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_model": cpu_model,
        "cpu_count": os.cpu_count(),
        "memory_bytes": mem_total,
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "versions": versions,
    }


def rss_bytes() -> int:
    """Resident set size of this process now (from /proc/self/statm)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE


def peak_rss_bytes() -> int:
    """Highest resident set size of this process so far (``ru_maxrss`` is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0-100), linear interpolation; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * p / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def mean(values: Iterable[float]) -> float:
    values = list(values)
    return statistics.fmean(values) if values else math.nan


def median(values: Iterable[float]) -> float:
    values = list(values)
    return statistics.median(values) if values else math.nan


def paired_ratio(values: Sequence[float], baselines: Sequence[float]) -> float:
    """The median over rounds of ``value / baseline`` of the same round.

    Runs seconds apart share the machine's state, which drifts by 10% and more over a full run
    on a shared machine: a ratio of two medians taken minutes apart carries that drift.
    """
    return median(v / b for v, b in zip(values, baselines, strict=True))


def target(name: str, *, goal: str, value: float | str | None, passed: bool | None, note: str = "") -> dict[str, Any]:
    """One target line: ``passed`` is None when the figure could not be measured."""
    return {"name": name, "goal": goal, "value": value, "passed": passed, "note": note}


class Scenario:
    """The result of one scenario as the report consumes it."""

    def __init__(self, name: str, title: str) -> None:
        self.name = name
        self.title = title
        self.params: dict[str, Any] = {}
        self.columns: list[str] = []
        self.rows: list[dict[str, Any]] = []
        self.targets: list[dict[str, Any]] = []
        self.notes: list[str] = []
        self.extra: dict[str, Any] = {}

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "params": self.params,
            "columns": self.columns,
            "rows": self.rows,
            "targets": self.targets,
            "notes": self.notes,
            "extra": self.extra,
        }


class LagProbe:
    """Event-loop lag: a ticker sleeping ``interval`` and recording how late it wakes up."""

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.samples: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await asyncio.sleep(self.interval)
            self.samples.append(max(0.0, loop.time() - started - self.interval))

    def start(self) -> None:
        self.samples = []
        self._task = asyncio.get_running_loop().create_task(self._tick())

    async def stop(self) -> list[float]:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        return self.samples

    def summary(self) -> dict[str, float]:
        s = self.samples
        return {
            "samples": len(s),
            "p50_ms": percentile(s, 50) * 1000,
            "p99_ms": percentile(s, 99) * 1000,
            "max_ms": (max(s) if s else math.nan) * 1000,
        }


def cpu_time() -> float:
    return time.process_time()
