"""Callback URL tokens: an HMAC of the submit's idempotency key under the receiver's secret.

The token is the only thing that authenticates a callback (Evolink signs nothing, API.md A5), so
it must be unguessable without the secret and checked in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets

from .._core.secret import Secret
from ..errors import ValidationError

__all__ = ["MIN_SECRET_BYTES", "load_secret", "mint_token", "token_matches"]

#: Shorter secrets make tokens guessable by brute force from one leaked URL.
MIN_SECRET_BYTES = 16
_TOKEN_CHARS = 32  # 192 bits of the HMAC, URL-safe


def load_secret(secret: str | bytes | None) -> Secret:
    """The given secret, else ``EVOLINK_CALLBACK_SECRET``, else a random one for this process."""
    if secret is None:
        secret = os.environ.get("EVOLINK_CALLBACK_SECRET") or None
    if secret is None:
        return Secret(secrets.token_urlsafe(32))
    if isinstance(secret, bytes):
        secret = secret.decode("latin-1")
    if not isinstance(secret, str):
        raise ValidationError("secret", f"must be a string or bytes, got {type(secret).__name__}")
    if len(secret.encode()) < MIN_SECRET_BYTES:
        raise ValidationError("secret", f"must be at least {MIN_SECRET_BYTES} bytes")
    return Secret(secret)


def mint_token(secret: Secret, idempotency_key: str) -> str:
    digest = hmac.new(secret.reveal().encode(), idempotency_key.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode()[:_TOKEN_CHARS]


def token_matches(secret: Secret, idempotency_key: str, token: str) -> bool:
    return hmac.compare_digest(mint_token(secret, idempotency_key), token)
