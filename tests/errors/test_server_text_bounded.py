"""Server text carried by an error is bounded in the error's message."""

from __future__ import annotations

import evolink_async as evolink


def test_server_text_in_errors_is_bounded() -> None:
    error = evolink.MidjourneyError("x" * 100_000, code=10**400)  # type: ignore[arg-type]
    assert len(str(error)) < 1_200
    status = evolink.BadRequestError("y" * 100_000, status_code=400, code="z" * 10_000, param="p" * 10_000)
    assert len(str(status)) < 1_600
