"""Midjourney task answers with absurd numbers (huge, NaN, not a number) parse to bounded values."""

from __future__ import annotations

from typing import Any

import pytest

import evolink_async as evolink


@pytest.mark.parametrize(
    "body",
    [
        {"submitTime": 10**400, "startTime": 1e308, "progress": 10**400},
        {"submitTime": float("nan"), "progress": "1e999%"},
    ],
)
def test_midjourney_absurd_numbers_are_tolerated(body: dict[str, Any]) -> None:
    task = evolink.MidjourneyClient.parse_task({"id": "1712345678901", "status": "IN_PROGRESS", **body})
    assert task.created is None
    assert 0 <= task.progress <= 100
