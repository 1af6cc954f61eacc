"""URL checks shared by request validation (pure functions, no I/O)."""

from __future__ import annotations

import ipaddress
import re
import unicodedata

from .._core.config import split_url
from ..errors import ValidationError

MAX_CALLBACK_URL_CHARS = 2048


def check_image_url(field: str, url: str) -> str:
    """An input image URL must be absolute http(s) with a host; returns its path's lower-cased
    extension (``""`` when it has none), from the same parse."""
    parts = split_url(field, url)
    if parts.scheme not in ("http", "https"):
        if not parts.scheme or len(parts.scheme) == 1:  # "photo.png", "/tmp/a.png", "C:\\a.png"
            raise ValidationError(field, f"{url!r} is not an http(s) URL; use pathlib.Path for local files")
        raise ValidationError(field, f"must be an http(s) URL or a pathlib.Path, got scheme {parts.scheme!r}")
    if not parts.hostname:
        raise ValidationError(field, "must name a host")
    name = parts.path.rsplit("/", 1)[-1]
    if "." not in name:
        return ""
    return "." + name.rsplit(".", 1)[-1].lower()


# Dots that IDNA (UTS #46) maps to "." before a resolver or browser sees the name.
_DOTS = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})
_UNSAFE_IN_URL = re.compile(r"[\s\\\x00-\x1f\x7f]")
_NAME = re.compile(r"[a-z0-9-]+(\.[a-z0-9-]+)*")
# NAT64 (RFC 6052) carries an IPv4 address in its last 32 bits.
_NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))


def _ipv4_number(part: str) -> int | None:
    """One dotted part as ``inet_aton`` and the WHATWG URL parser read it: hex, octal or decimal."""
    if part.lower().startswith("0x"):
        digits, base = part[2:], 16
    elif len(part) > 1 and part.startswith("0"):
        digits, base = part[1:], 8
    else:
        digits, base = part, 10
    if digits == "":
        return 0 if base == 16 else None
    try:
        return int(digits, base)
    except ValueError:
        return None


def _as_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """``127.1``, ``2130706433``, ``0x7f000001``, ``017700000001``, ``0``: the address they name.

    A host whose last part is a number is an IPv4 address to browsers and resolvers, whatever the
    other parts look like; an impossible one is refused rather than treated as a name.
    """
    parts = host.split(".")
    if _ipv4_number(parts[-1]) is None:
        return None
    numbers = [_ipv4_number(part) for part in parts]
    if len(parts) > 4 or any(n is None for n in numbers):
        raise ValueError(f"{host!r} is not a valid IPv4 address")
    *head, last = [n for n in numbers if n is not None]
    if any(n > 255 for n in head) or last >= 256 ** (5 - len(parts)):
        raise ValueError(f"{host!r} is not a valid IPv4 address")
    value = last
    for index, number in enumerate(head):
        value += number << (8 * (3 - index))
    return ipaddress.IPv4Address(value)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    packed = int(ip)
    if any(ip in net for net in _NAT64) or (packed >> 32 == 0 and packed > 1):  # NAT64, or ::a.b.c.d
        return ipaddress.IPv4Address(packed & 0xFFFFFFFF)
    return None


def _is_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            return _is_public(embedded)
    return ip.is_global and not ip.is_multicast


def _normalized_host(field: str, host: str) -> str:
    """The host as a resolver sees it: NFKC, IDNA dots, lower case, no trailing dot, ASCII."""
    host = unicodedata.normalize("NFKC", host).translate(_DOTS).lower().rstrip(".")
    try:
        host = host.encode("idna").decode("ascii") if not host.isascii() else host
    except UnicodeError:
        raise ValidationError(field, "has a host name that is not valid IDNA") from None
    return host


def check_callback_url(field: str, url: object, *, allow_private: bool = False) -> None:
    """The documented callback rules: https, at most 2048 characters, not loopback or private.

    The host is judged the way resolvers and browsers read it (IDNA, full-width characters, the
    short and numeric IPv4 forms, IPv4 inside IPv6), so no spelling of a local address passes.
    ``allow_private`` exists for local sandboxes and receivers only, which call back to 127.0.0.1.
    """
    if not isinstance(url, str):
        raise ValidationError(field, f"must be a string URL, got {type(url).__name__}")
    if len(url) > MAX_CALLBACK_URL_CHARS:
        raise ValidationError(field, f"must be at most {MAX_CALLBACK_URL_CHARS} characters, got {len(url)}")
    if _UNSAFE_IN_URL.search(url):
        raise ValidationError(field, "must not contain whitespace, backslashes or control characters")
    parts = split_url(field, url)
    if parts.scheme not in ("https", "http") or (parts.scheme != "https" and not allow_private):
        raise ValidationError(field, f"must use https, got {parts.scheme or 'no'} scheme")
    if "@" in parts.netloc:
        raise ValidationError(field, "must not carry user info (user:password@) before the host")
    try:
        parts.port  # noqa: B018 - raises for a port out of range
    except ValueError:
        raise ValidationError(field, "has a port that is not a number in 0..65535") from None
    if not parts.hostname:
        raise ValidationError(field, "must name a host")
    if allow_private:
        return
    host = _normalized_host(field, parts.hostname)
    if host == "localhost" or host.endswith(".localhost") or not host:
        raise ValidationError(field, "must not point at localhost")
    try:
        ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None = (
            ipaddress.IPv6Address(host) if ":" in host else _as_ipv4(host)
        )
    except ValueError as exc:
        raise ValidationError(field, f"has an invalid host: {exc}") from None
    if ip is None:
        if not _NAME.fullmatch(host):
            raise ValidationError(field, f"has a host name with characters a DNS name cannot have ({host!r})")
        return
    if not _is_public(ip):
        raise ValidationError(
            field, f"must not point at a loopback, private, link-local or unspecified address ({host})"
        )
