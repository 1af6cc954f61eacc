"""PostgreSQL journal URLs: which text is one, how a message may show it, and whether asyncpg can use it.

Apart from the journal interface (``_journal_api``, which opens a ``PgJournal``) so that
``PgJournal`` itself can check its URL without an import cycle.
"""

from __future__ import annotations

import os
import re
from urllib.parse import parse_qsl, urlsplit

from ..errors import ValidationError

__all__ = ["check_postgres_url", "journal_address", "is_postgres_url", "shown_url"]


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


def journal_address(url: str) -> str:
    """Where ``url`` connects, for a message (never its user or password): ``host:port``, or the
    Unix socket file (a ``host`` that is a folder, as in ``?host=/run/postgresql``)."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    host = query.get("host") or parts.hostname or os.environ.get("PGHOST") or ""
    try:
        port = query.get("port") or parts.port or os.environ.get("PGPORT") or 5432
    except ValueError:  # checked by ``check_postgres_url``; a message must not fail anyway
        port = 5432
    if not host:
        return f"the default local socket (port {port}; no host in the URL, PGHOST unset)"
    if host.startswith("/"):
        return f"the socket {host.rstrip('/')}/.s.PGSQL.{port}"
    return f"{host}:{port}"
