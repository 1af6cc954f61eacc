"""A short callback secret is blamed on where it came from: the file, or $EVOLINK_CALLBACK_SECRET.

Before, a short ``EVOLINK_CALLBACK_SECRET`` was reported as ``--callback-secret-file: must be at
least 16 bytes``, a flag the user had not passed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from evolink_async import ValidationError
from evolink_async.cli._callbacks import callback_options, callback_receiver


def _args(secret_file: str | None) -> argparse.Namespace:
    return argparse.Namespace(callbacks="http://127.0.0.1:9/hooks", listen="127.0.0.1:9",
                              callback_secret_file=secret_file, allow_local_callbacks=True)  # fmt: skip


def test_a_short_secret_from_the_environment_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVOLINK_CALLBACK_SECRET", "short")
    with pytest.raises(ValidationError) as info:
        callback_receiver(callback_options(_args(None)))
    assert info.value.field == "$EVOLINK_CALLBACK_SECRET"
    assert "at least 16 bytes" in str(info.value)


def test_a_short_secret_file_names_the_flag_even_with_the_variable_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVOLINK_CALLBACK_SECRET", "a-long-enough-secret-0123456789")
    short = tmp_path / "secret"
    short.write_text("too short\n")
    with pytest.raises(ValidationError) as info:
        callback_receiver(callback_options(_args(str(short))))
    assert info.value.field == "--callback-secret-file"
