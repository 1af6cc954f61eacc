"""Inputs for fan_out tests and the check every fan_out run must pass: one terminal event per input."""

from __future__ import annotations

from collections.abc import Hashable, Iterator

from evolink_async import EventKind, QwenImageEdit

TERMINAL = {EventKind.COMPLETED, EventKind.FAILED, EventKind.CANCELLED, EventKind.TIMED_OUT, EventKind.SUBMIT_FAILED}


def requests(count: int, prefix: str = "p") -> Iterator[tuple[str, QwenImageEdit]]:
    for i in range(count):
        yield f"{prefix}{i}", QwenImageEdit(prompt=f"edit {i}", image_urls=[f"https://example.com/{i}.png"])


def assert_one_terminal_each(by_key: dict[Hashable, list[EventKind]], count: int) -> None:
    assert len(by_key) == count
    for key, kinds in by_key.items():
        terminal = [k for k in kinds if k in TERMINAL]
        assert len(terminal) == 1, (key, kinds)
        assert kinds[-1] in TERMINAL, (key, kinds)
