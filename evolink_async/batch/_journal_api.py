"""One journal interface, two stores: the embedded SQLite file (one machine, the default) and
PostgreSQL (a fleet of workers on many machines).

Both hold the same facts per input (key, request, idempotency key written before the submit, task
id after it, status, result URLs and files); :class:`JournalStore` is what they share. The fleet's
claims and leases exist only in PostgreSQL (:class:`~evolink_async.batch.PgJournal`).

>>> journal = await open_journal("out/evolink-journal.sqlite3")      # a Journal
>>> journal = await open_journal("postgresql://db.internal/edits")   # a PgJournal (needs asyncpg)
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qsl, urlsplit

from ..errors import ValidationError
from ._entries import Entry, EntryStatus

if TYPE_CHECKING:
    from ._journal import Journal
    from ._pg_store import PgJournal

__all__ = ["JournalStore", "check_postgres_url", "is_postgres_url", "open_journal", "shown_url"]


class JournalStore(Protocol):
    """What every journal store answers (``Journal`` and ``PgJournal`` both satisfy it)."""

    async def get(self, key: str) -> Entry | None: ...

    async def find_task(self, task_id: str) -> Entry | None: ...

    async def counts(self) -> dict[EntryStatus, int]: ...

    async def get_meta(self, name: str) -> str | None: ...

    async def set_meta(self, name: str, value: str) -> None: ...

    async def ensure_meta(self, values: Mapping[str, str]) -> None: ...

    async def aclose(self) -> None: ...


def is_postgres_url(target: str | os.PathLike[str]) -> bool:
    """Whether ``target`` names a PostgreSQL journal (``postgresql://`` or ``postgres://``)."""
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


# libpq's values; asyncpg refuses any other with an error of its own, deep in the connect.
_SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


def shown_url(url: str) -> str:
    """``url`` with its password replaced by ``***``: what a message may show of a journal URL."""
    url = re.sub(r"([?&]password=)[^&#]*", r"\1***", url)  # asyncpg also takes it as a query parameter
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    return f"{scheme}{sep}{userinfo.split(':', 1)[0]}:***@{host}"


def check_postgres_url(field: str, url: str) -> str:
    """A ``postgresql://`` URL that asyncpg can connect with, or a ``ValidationError`` (never showing
    the password): a parseable host (``[::1`` is not), a port in 1..65535, a known ``sslmode``."""
    shown = shown_url(url)
    if not is_postgres_url(url):
        raise ValidationError(field, f"must be a postgresql:// URL, got {shown}")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises for a port out of range or not a number
    except ValueError as exc:
        reason = "the port is not a number in 1..65535" if "port" in str(exc).lower() else str(exc)
        raise ValidationError(field, f"is not a valid URL ({reason}): {shown}") from None
    if parts.port == 0:
        raise ValidationError(field, f"the port must be in 1..65535: {shown}")
    for name, value in parse_qsl(parts.query):
        if name == "sslmode" and value not in _SSL_MODES:
            raise ValidationError(field, f"sslmode must be one of {', '.join(_SSL_MODES)}, got {value!r}")
    return url


async def open_journal(target: str | os.PathLike[str], **options: Any) -> Journal | PgJournal:
    """Open the journal ``target`` names: a PostgreSQL URL, else an SQLite file path.

    asyncpg is imported only for a PostgreSQL URL; the caller must ``await journal.aclose()``.
    """
    if is_postgres_url(target):
        from ._pg_store import PgJournal

        return await PgJournal.open(str(target), **options)
    from ._journal import Journal

    return await Journal.open(target, **options)


if TYPE_CHECKING:  # mypy proves both stores answer the interface

    def _both_stores_fit(sqlite: Journal, postgres: PgJournal) -> tuple[JournalStore, JournalStore]:
        return sqlite, postgres
