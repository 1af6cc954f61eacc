"""URL checks shared by request validation (pure functions, no I/O)."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from ..errors import ValidationError

MAX_CALLBACK_URL_CHARS = 2048


def check_image_url(field: str, url: str) -> None:
    """An input image URL must be absolute http(s) with a host."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValidationError(field, f"must be an http(s) URL or a local path, got scheme {parts.scheme!r}")
    if not parts.hostname:
        raise ValidationError(field, "must name a host")


def url_suffix(url: str) -> str:
    """The lower-cased extension of the URL's path (``""`` when it has none)."""
    path = urlsplit(url).path
    name = path.rsplit("/", 1)[-1]
    if "." not in name:
        return ""
    return "." + name.rsplit(".", 1)[-1].lower()


def _is_public_ip(host: str) -> bool | None:
    """True/False for an IP literal, None for a name."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped or ip.sixtofour
        if mapped is not None:
            ip = mapped
    return ip.is_global and not ip.is_multicast


def check_callback_url(field: str, url: str, *, allow_private: bool = False) -> None:
    """The documented callback rules: https, at most 2048 characters, not loopback or private.

    ``allow_private`` exists for the local sandbox only, which calls back to 127.0.0.1.
    """
    if len(url) > MAX_CALLBACK_URL_CHARS:
        raise ValidationError(field, f"must be at most {MAX_CALLBACK_URL_CHARS} characters, got {len(url)}")
    parts = urlsplit(url)
    if parts.scheme != "https" and not allow_private:
        raise ValidationError(field, f"must use https, got {parts.scheme or 'no'} scheme")
    if parts.scheme not in ("https", "http"):
        raise ValidationError(field, f"must use https, got {parts.scheme or 'no'} scheme")
    host = parts.hostname
    if not host:
        raise ValidationError(field, "must name a host")
    if allow_private:
        return
    if host == "localhost" or host.endswith(".localhost"):
        raise ValidationError(field, "must not point at localhost")
    public = _is_public_ip(host)
    if public is False:
        raise ValidationError(
            field, f"must not point at a loopback, private, link-local or unspecified address ({host})"
        )
