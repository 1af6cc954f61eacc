"""A manifest's lines: a repeated key, NUL, lone surrogates and bytes that are not UTF-8 are refused
with the line number (``ValidationError``), before anything is planned or paid for."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from evolink_async.batch import read_manifest
from evolink_async.errors import ValidationError


def _line(key: str, prompt: str = "make it autumn", **extra: Any) -> str:
    return json.dumps({"key": key, "model": "qwen-image-edit", "prompt": prompt,
                       "image_urls": ["https://example.com/a.png"], **extra})  # fmt: skip


def _manifest(tmp_path: Path, *lines: str | bytes) -> Path:
    path = tmp_path / "edits.jsonl"
    path.write_bytes(b"".join((line if isinstance(line, bytes) else line.encode()) + b"\n" for line in lines))
    return path


def test_a_key_repeated_with_another_request_is_refused_naming_both_lines(tmp_path: Path) -> None:
    path = _manifest(tmp_path, _line("a"), _line("b"), "", _line("a", prompt="make it winter"))
    with pytest.raises(ValidationError) as refused:
        list(read_manifest(path))
    assert refused.value.field == "line 4"
    assert "of line 1" in refused.value.rule
    assert "'a'" in refused.value.rule


def test_a_key_repeated_with_the_same_request_is_one_input(tmp_path: Path) -> None:
    path = _manifest(tmp_path, _line("a"), _line("b"), json.dumps(json.loads(_line("a")), indent=None))
    assert [item.key for item in read_manifest(path)] == ["a", "b"]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b'{"key": "a\xff", "model": "qwen-image-edit"}', "is not UTF-8 (byte 0xff at column 11)"),
        (b'{"key": "a", "model": "qwen\xc3"}', "is not UTF-8"),
        (b'{"key": "a\x00b", "model": "qwen-image-edit"}', "contains a NUL byte (column 11)"),
        (_line("a\\u0000b").replace("\\\\u0000", "\\u0000").encode(), "contains a NUL character"),
        (_line("a", prompt="\\ud800 fox").replace("\\\\ud800", "\\ud800").encode(), "lone surrogate (\\ud800)"),
        (_line("a", model_params={"\\udfff": 1}).replace("\\\\udfff", "\\udfff").encode(), "lone surrogate"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deep"),
    ],
)
def test_lines_that_are_not_text_are_refused_with_their_number(tmp_path: Path, line: bytes, expected: str) -> None:
    path = _manifest(tmp_path, _line("first"), line, _line("third"))
    with pytest.raises(ValidationError) as refused:
        list(read_manifest(path))
    assert refused.value.field == "line 2"
    assert expected in refused.value.rule
