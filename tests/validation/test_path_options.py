"""Paths and names given to a fleet worker are checked like its numbers: a ``ValidationError`` naming
the field, never a raw ``TypeError`` from ``Path(...)``, and never ``""`` taken as the current folder."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from evolink_async.batch import BatchSpec, WorkerOptions
from evolink_async.errors import ValidationError


@pytest.mark.parametrize(("field", "value"), [
    ("out_dir", 1.5), ("out_dir", ""), ("root", []), ("root", ""), ("wal", 0), ("wal", ""),
    ("worker_id", math.nan), ("worker_id", []), ("worker_id", True), ("worker_id", ""), ("worker_id", "  "),
    ("worker_id", "a\nb"),
])  # fmt: skip
def test_a_worker_refuses_a_path_or_id_that_is_none_naming_the_field(field: str, value: Any) -> None:
    with pytest.raises(ValidationError) as caught:
        WorkerOptions(**{field: value})
    assert caught.value.field == field


def test_a_worker_takes_paths_as_strings_or_paths() -> None:
    options = WorkerOptions(out_dir="out", root=Path("/data"), wal="w.wal", worker_id="host:1")
    assert (options.out_dir, options.root, options.wal) == (Path("out"), Path("/data"), Path("w.wal"))


def test_a_folder_batch_refuses_an_empty_folder_name() -> None:
    with pytest.raises(ValidationError) as caught:
        BatchSpec(model="qwen-image-edit", prompt="p", input_dir="", output_dir="out")
    assert caught.value.field == "input_dir"
