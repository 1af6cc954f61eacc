"""Viewer tokens: an HMAC over one task id and an expiry, so a page can watch that task only.

A token is ``<expiry>.<signature>``: the expiry in whole epoch seconds, the signature
HMAC-SHA256 over the task id and the expiry, URL-safe base64 without padding. The task id is not
in the token (it is in the URL beside it), so a token copied to another task's URL fails the
check. The page never holds the API key, and a leaked token shows one task until it expires.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time

from .._core.checks import check_number
from ..errors import ValidationError

__all__ = ["MAX_TTL", "TokenSigner"]

#: The longest a token may live (a day): a page that watches longer asks its app for a new one.
MAX_TTL = 86_400.0
#: Longer tokens are refused unread (a forged one the size of a megabyte costs nothing to refuse).
_MAX_TOKEN_LENGTH = 128


def _signing_key(secret: str | bytes | None) -> bytes:
    if secret is None:
        # Tokens then last as long as this process: fine for one app instance; several
        # instances behind a load balancer must share a secret.
        return secrets.token_bytes(32)
    if isinstance(secret, str):
        secret = secret.encode()
    if not isinstance(secret, bytes):
        raise ValidationError("secret", f"must be str, bytes or None, got {type(secret).__name__}")
    if len(secret) < 16:
        raise ValidationError("secret", "must be at least 16 bytes (a guessable secret forges every token)")
    return secret


class TokenSigner:
    """Signs and checks viewer tokens with one secret (never shown in a repr)."""

    __slots__ = ("_key",)

    def __init__(self, secret: str | bytes | None) -> None:
        self._key = _signing_key(secret)

    def __repr__(self) -> str:
        return "TokenSigner(<secret>)"

    def _signature(self, task_id: str, expires: int) -> str:
        mac = hmac.new(self._key, f"{task_id}\n{expires}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

    def sign(self, task_id: str, *, ttl: float, now: float | None = None) -> str:
        """A token good for ``task_id`` for ``ttl`` seconds from ``now`` (default: the wall clock)."""
        if not isinstance(task_id, str) or not task_id:
            raise ValidationError("task_id", "must be a non-empty string")
        ttl = check_number("ttl", ttl, above=True)
        if ttl > MAX_TTL:
            raise ValidationError("ttl", f"must be at most {MAX_TTL:g} seconds, got {ttl!r}")
        expires = int((time.time() if now is None else now) + ttl) + 1
        return f"{expires}.{self._signature(task_id, expires)}"

    def check(self, task_id: str, token: str, *, now: float | None = None) -> bool:
        """True when ``token`` was signed for ``task_id`` and has not expired."""
        if not token or len(token) > _MAX_TOKEN_LENGTH:
            return False
        expiry, _, signature = token.partition(".")
        if not expiry.isascii() or not expiry.isdigit() or not signature:
            return False
        expires = int(expiry)
        # The signature first, in constant time, and the clock after: a forged token learns
        # nothing from how fast it is refused.
        valid = hmac.compare_digest(signature.encode(), self._signature(task_id, expires).encode())
        return valid and expires > (time.time() if now is None else now)
