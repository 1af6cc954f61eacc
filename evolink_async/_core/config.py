"""Client configuration: one frozen object instead of long argument lists passed around."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from urllib.parse import SplitResult, urlsplit

import attrs

from ..errors import ValidationError
from .checks import SECONDS, count_at_least
from .retry import RetryPolicy
from .secret import Secret

__all__ = [
    "DEFAULT_BASE_URL", "DEFAULT_FILES_BASE_URL", "ClientConfig", "api_key_problem", "check_headers", "env_url",
    "urls_from_env", "wrap_api_key",
]  # fmt: skip

DEFAULT_BASE_URL = "https://api.evolink.ai"
DEFAULT_FILES_BASE_URL = "https://files-api.evolink.ai"


_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110's token


def _check_header_name(field: str, name: object) -> None:
    if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
        raise ValidationError(field, f"must be an HTTP header name such as 'Authorization', got {name!r}")


def _headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    return check_headers("default_headers", headers)


def _base_url(url: object) -> str:
    return check_base_url("base_url", url)


def _files_base_url(url: object) -> str:
    return check_base_url("files_base_url", url)


def _check_retry(retry: object) -> None:
    if not isinstance(retry, RetryPolicy):
        raise ValidationError("retry", f"must be a RetryPolicy, got {type(retry).__name__}")


def _as_secret(key: Secret | str) -> Secret:
    """A plain key wrapped in its ``Secret`` (checked as the clients check theirs; "" sends none)."""
    if isinstance(key, Secret):
        return key
    wrapped = wrap_api_key(key, "", check=True, allow_empty=True) if isinstance(key, str) else None
    if not isinstance(wrapped, Secret):
        raise wrapped if isinstance(wrapped, ValidationError) else ValidationError(
            "api_key", f"must be a string or a Secret, got {type(key).__name__}"
        )
    return wrapped


@attrs.frozen(kw_only=True)
class ClientConfig:
    """Everything a client needs to talk to the API. ``api_key`` never shows in the repr; a plain
    string is wrapped in its ``Secret`` at once."""

    api_key: Secret = attrs.field(converter=_as_secret)
    base_url: str = attrs.field(default=DEFAULT_BASE_URL, converter=_base_url)
    files_base_url: str = attrs.field(default=DEFAULT_FILES_BASE_URL, converter=_files_base_url)
    #: Seconds one HTTP attempt may take in all (connect, send, receive).
    timeout: float = attrs.field(default=60.0, validator=SECONDS.validator())
    #: Seconds to open a connection.
    connect_timeout: float = attrs.field(default=10.0, validator=SECONDS.validator())
    retry: RetryPolicy = attrs.field(factory=RetryPolicy, validator=lambda _, a, v: _check_retry(v))
    #: Open connections at most (the aiohttp connector's limit).
    max_connections: int = attrs.field(default=64, validator=count_at_least(1))
    #: The largest JSON answer read into memory, in bytes.
    max_response_bytes: int = attrs.field(default=8 * 1024 * 1024, validator=count_at_least(1))
    #: Headers sent with every request (a mapping of strings; ``None``: none), checked and copied.
    default_headers: Mapping[str, str] = attrs.field(factory=dict, converter=_headers)
    #: The header that carries the key: ``Authorization`` sends ``Bearer <key>``, any other name
    #: (a Midjourney proxy's ``mj-api-secret``) the bare key. An empty key sends no auth header.
    auth_header: str = attrs.field(default="Authorization", validator=lambda _, a, v: _check_header_name(a.name, v))


def check_headers(field: str, headers: object) -> dict[str, str]:
    """A copy of ``headers`` (a mapping of header names to values; ``None``: none), or a ``ValidationError``."""
    if headers is None:
        return {}
    if not isinstance(headers, Mapping):
        raise ValidationError(field, f"must be a mapping of header names to values, got {type(headers).__name__}")
    for name, value in headers.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise ValidationError(field, f"must map strings to strings, got {name!r}: {type(value).__name__}")
        if any(ch in "\r\n\0" for ch in name + value):  # a header split into two forges the second
            raise ValidationError(field, f"header {name!r} must not contain CR, LF or NUL")
    return dict(headers)


def _env(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def env_url(name: str) -> str | None:
    """The URL in the variable ``name``; None when it is not set. Set but blank is a ``ValidationError``:
    ``EVOLINK_BASE_URL=`` meant some host, and falling back to the paid default one sent a run's
    submits there while its uploads went to the host of the other variable."""
    value = os.environ.get(name)
    if value is None:
        return None
    if not value.strip():
        raise ValidationError(f"${name}", "is set but empty: unset it for the default host, or give a URL")
    return value.strip()


_MIN_KEY_CHARS = 8


def api_key_problem(key: object) -> str | None:
    """Why ``key`` cannot be used (None when it can): long enough, one printable token, so that it
    can be redacted wherever it shows."""
    if not isinstance(key, str):
        return f"must be a string, got {type(key).__name__}"
    if len(key) < _MIN_KEY_CHARS:
        # A one-character key would turn every such character in a message into "***".
        return f"must be at least {_MIN_KEY_CHARS} characters"
    if any(ch.isspace() or not ch.isprintable() for ch in key):
        return "must not contain whitespace or control characters"
    return None


def wrap_api_key(
    api_key: object, env_name: str, *, check: bool = True, allow_empty: bool = False
) -> Secret | ValidationError | None:
    """The key (``api_key``, else the variable ``env_name``) in a ``Secret`` at once; None when
    neither gives one ("" counts as none unless ``allow_empty``); or, for a key that cannot be used
    (``check``), the ``ValidationError`` to raise.

    Returned, not raised: the frames of a traceback keep their locals, and error reporters record
    them. The caller drops its own plain ``api_key`` (``del``) before raising anything.
    """
    if api_key is None:
        api_key = _env(env_name)
    if api_key is None or (api_key == "" and not allow_empty):
        return None
    problem = api_key_problem(api_key) if check and api_key != "" else None
    if problem is not None:
        return ValidationError("api_key", problem)
    if not isinstance(api_key, str):
        return ValidationError("api_key", f"must be a string, got {type(api_key).__name__}")
    return Secret(api_key)


def split_url(field: str, url: str) -> SplitResult:
    """``urlsplit(url)``, its ``ValueError`` (``http://[::1``: an unclosed bracket) a ``ValidationError``."""
    try:
        return urlsplit(url)
    except ValueError as exc:
        raise ValidationError(field, f"is not a valid URL ({exc})") from None


def check_base_url(field: str, url: object) -> str:
    """An absolute http(s) URL with a host, without query or fragment; returned without a trailing slash."""
    if not isinstance(url, str):
        raise ValidationError(field, f"must be a string, got {type(url).__name__}")
    parts = split_url(field, url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError(field, f"must be an http(s) URL with a host, got {url!r}")
    if parts.query or parts.fragment or any(ch.isspace() for ch in url):
        raise ValidationError(field, "must not have a query, a fragment or whitespace")
    try:
        parts.port  # noqa: B018 - raises for a port out of range
    except ValueError:
        raise ValidationError(field, "has a port that is not a number in 0..65535") from None
    return url.rstrip("/")


def urls_from_env(*, base_url: str | None, files_base_url: str | None) -> tuple[str, str]:
    """Resolve the URLs: explicit arguments first, then ``EVOLINK_*`` variables, then defaults."""
    # An explicit "" is a mistake to report, not a reason to fall back to the paid default host.
    base = check_base_url(
        "base_url", base_url if base_url is not None else env_url("EVOLINK_BASE_URL") or DEFAULT_BASE_URL
    )
    files = check_base_url(
        "files_base_url",
        files_base_url if files_base_url is not None else env_url("EVOLINK_FILES_BASE_URL") or DEFAULT_FILES_BASE_URL,
    )
    return base, files
