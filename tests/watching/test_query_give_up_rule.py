"""The one rule by which a watch gives up after failed queries, single or bulk: each row is an
error and the number of failed queries in a row at which the watch ends with it (None: never)."""

from __future__ import annotations

import pytest

from evolink_async._watching.queries import MAX_CONSECUTIVE_ERRORS, NOT_FOUND_TOLERANCE, gives_up
from evolink_async.errors import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    InsufficientCreditsError,
    MidjourneyError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RequestTooLargeError,
    ResponseFormatError,
    ServerError,
    ValidationError,
)

TABLE: list[tuple[BaseException, int | None]] = [
    (AuthenticationError("invalid key", status_code=401), 1),
    (PermissionDeniedError("forbidden", status_code=403), 1),
    (BadRequestError("bad id", status_code=400), 1),
    (InsufficientCreditsError("no credits", status_code=402), 1),
    (RequestTooLargeError("too large", status_code=413), 1),
    (ValidationError("task_id", "must not be empty"), 1),
    (KeyError("a bug"), 1),
    (NotFoundError("no such task", status_code=404), NOT_FOUND_TOLERANCE),
    (ResponseFormatError("truncated JSON"), NOT_FOUND_TOLERANCE),
    (APIConnectionError("connection reset"), MAX_CONSECUTIVE_ERRORS),
    (APITimeoutError("timed out"), MAX_CONSECUTIVE_ERRORS),
    (ServerError("bad gateway", status_code=502), MAX_CONSECUTIVE_ERRORS),
    (MidjourneyError("proxy code 3", code=3), MAX_CONSECUTIVE_ERRORS),
    # The server is there and asks for fewer queries: every query slows down, none gives up.
    (RateLimitError("slow down", status_code=429), None),
]


@pytest.mark.parametrize(("error", "ends_at"), TABLE, ids=[type(row[0]).__name__ for row in TABLE])
def test_a_watch_gives_up_at_the_failure_the_table_says(error: BaseException, ends_at: int | None) -> None:
    answers = [gives_up(error, in_a_row) for in_a_row in range(1, 3 * MAX_CONSECUTIVE_ERRORS)]
    first = answers.index(True) + 1 if True in answers else None
    assert first == ends_at
    if first is not None:
        assert all(answers[first - 1 :])  # and it stays given up

