"""``PgJournal(url, ...)`` checks its arguments as ``evolink batch --journal`` does: a URL asyncpg
could not use, or a NaN, infinite or out-of-range bound, is a ``ValidationError`` naming the
argument (never the password) before any connection is tried.

Once the library took ``postgresql://...:99999/db`` and ``sslmode=bogus`` as they were, and the
first connection failed with asyncpg's own error (a ``ValueError`` traceback from deep inside it).
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from evolink_async.batch._journal_api import open_journal
from evolink_async.batch._pg_store import PgJournal
from evolink_async.errors import ValidationError

PASSWORD = "s3cr3t-pa55"  # a made-up password that must never be shown

BAD_URLS = [
    pytest.param(f"postgresql://app:{PASSWORD}@db.example:99999/edits", "port", id="port-out-of-range"),
    pytest.param(f"postgresql://app:{PASSWORD}@db.example:notaport/edits", "port", id="port-not-a-number"),
    pytest.param(f"postgresql://app:{PASSWORD}@db.example:0/edits", "port", id="port-0"),
    pytest.param(f"postgresql://app:{PASSWORD}@[::1/edits", "not a valid URL", id="unclosed-bracket"),
    pytest.param(f"postgresql://app:{PASSWORD}@127.0.0.1/edits?sslmode=bogus", "sslmode", id="sslmode"),
    pytest.param(f"postgresql://app@127.0.0.1/edits?password={PASSWORD}&sslmode=bogus", "sslmode",
                 id="password-parameter"),
    pytest.param(f"mysql://app:{PASSWORD}@127.0.0.1/edits", "postgresql://", id="not-postgresql"),
]


@pytest.fixture
def no_connection(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every attempt to connect, recorded (and refused): there must be none."""
    asyncpg = pytest.importorskip("asyncpg")  # the [postgres] extra, part of dev
    attempts: list[Any] = []

    async def create_pool(*args: Any, **kwargs: Any) -> Any:
        attempts.append(args)
        raise AssertionError("a connection was tried")

    monkeypatch.setattr(asyncpg, "create_pool", create_pool)
    return attempts


@pytest.mark.parametrize(("url", "says"), BAD_URLS)
async def test_a_bad_url_is_a_validation_error_naming_it_before_connecting(
    url: str, says: str, no_connection: list[Any]
) -> None:
    errors = []
    with pytest.raises(ValidationError) as made:
        PgJournal(url)
    errors.append(made.value)
    with pytest.raises(ValidationError) as opened:
        await PgJournal.open(url)
    errors.append(opened.value)
    if url.startswith("postgresql://"):  # open_journal takes any other text for an SQLite file's path
        with pytest.raises(ValidationError) as through_open_journal:
            await open_journal(url)
        errors.append(through_open_journal.value)
    for error in errors:
        assert error.field == "url"
        assert says in error.rule, error.rule
        assert PASSWORD not in str(error)
    assert no_connection == []


@pytest.mark.parametrize(
    ("option", "value"),
    [("connections", 0), ("connections", 1.5), ("outage", math.nan), ("outage", math.inf), ("outage", 0.0),
     ("session_timeout", math.nan), ("session_timeout", -1.0), ("command_timeout", math.inf)],
)  # fmt: skip
def test_a_bad_bound_is_a_validation_error_naming_it(option: str, value: float) -> None:
    with pytest.raises(ValidationError) as refused:
        PgJournal("postgresql://app@127.0.0.1/edits", **{option: value})
    assert refused.value.field == option


def test_a_good_url_is_kept_as_given() -> None:
    url = "postgresql://app@db.example:5433/edits?sslmode=verify-full"
    assert PgJournal(url, outage=5, connections=2).url == url
