"""OpenTelemetry SDK providers with in-memory exporters, one pair per test (no global provider)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers.otel import Otel, in_memory_otel

__all__ = ["Otel"]


@pytest.fixture
def otel() -> Iterator[Otel]:
    with in_memory_otel() as providers:
        yield providers
