"""What an answer's bytes mean: its JSON decoded (within the transport's bounds, already read) and
cleaned of an echoed key and of lone surrogates; a non-2xx status and body made the typed error;
the request id a server sent. No I/O here: the transport reads, this module interprets.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Mapping
from typing import Any

import aiohttp
import yarl

from ..errors import APIStatusError, NotJSONAnswerError, ResponseFormatError, status_error_class
from .secret import Secret, redact, scrub_known

__all__ = ["call_name", "decode_json", "not_json", "request_id_of", "status_error", "too_large"]

_REQUEST_ID_HEADERS = ("x-request-id", "x-oneapi-request-id")


def request_id_of(headers: Mapping[str, str]) -> str | None:
    for name in _REQUEST_ID_HEADERS:
        value = headers.get(name)
        if value:
            return scrub_known(value)
    return None


def decode_json(raw: bytes, *, secret: Secret | None = None) -> Any:
    """``json.loads(raw)``, with UTF-8 (what RFC 8259 requires on the wire) decoded in C first,
    and the decoded strings cleaned where the bytes could not show what they hold.

    ``json.loads`` on bytes guesses the encoding in Python, on every answer. What that guess would
    not read as plain UTF-8 (a byte order mark, a NUL in the first two bytes as UTF-16 and UTF-32
    have, bytes that are not UTF-8) still goes its way, so every body parses or fails as before,
    and each is parsed once. Such a body, or one with ``\\u`` escapes, may hold ``secret`` (an
    echoed key the caller's byte replacement could not see) or lone surrogates (which no encoder
    takes: the journal, a file, the terminal); both are replaced in every decoded string.
    """
    if raw[:3] == codecs.BOM_UTF8 or b"\0" in raw[:2]:
        return _clean_decoded(json.loads(raw), secret)
    try:
        text = raw.decode()
    except UnicodeDecodeError:  # not UTF-8, or surrogates encoded as bytes (json reads those)
        return _clean_decoded(json.loads(raw), secret)
    body = json.loads(text)
    return _clean_decoded(body, secret) if b"\\u" in raw else body


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _clean_text(text: str, secret: Secret | None) -> str:
    if secret is not None:
        text = secret.scrub(text)
    if not text.isascii():
        text = _LONE_SURROGATE.sub("\ufffd", text)
    return text


def _clean_decoded(body: Any, secret: Secret | None) -> Any:
    """``body`` (decoded JSON) with every string, keys included, through ``_clean_text``.

    Iterative, not recursive: a body nested close to the parser's limit must not raise here.
    The containers were decoded for this answer alone, so they are changed in place.
    """
    if isinstance(body, str):
        return _clean_text(body, secret)
    stack = [body]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key in list(node):
                value = node[key]
                if isinstance(value, str):
                    value = node[key] = _clean_text(value, secret)
                elif isinstance(value, dict | list):
                    stack.append(value)
                clean_key = _clean_text(key, secret)
                if clean_key != key:
                    del node[key]
                    node[clean_key] = value
        elif isinstance(node, list):
            for index, value in enumerate(node):
                if isinstance(value, str):
                    node[index] = _clean_text(value, secret)
                elif isinstance(value, dict | list):
                    stack.append(value)
    return body


def too_large(resp: aiohttp.ClientResponse, what: str) -> ResponseFormatError:
    # Scrubbed: the URL is the caller's, and a query string could hold anything.
    return ResponseFormatError(
        scrub_known(f"{resp.method.upper()} {resp.url}: {what}"), request_id=request_id_of(resp.headers)
    )


def not_json(method: str, url: str, status: int, headers: Mapping[str, str], exc: BaseException, *,
             secret: Secret | None, request_id: str | None) -> ResponseFormatError:  # fmt: skip
    """The error for a 2xx answer whose body is not JSON: a garbled answer of the API when labelled
    JSON (it may be an acceptance: settled like a lost answer), else a page that is not the API's
    (:class:`NotJSONAnswerError`, naming the call and what came instead)."""
    content_type = headers.get("content-type", "")
    if "json" in content_type.lower():
        return ResponseFormatError(f"{method} {url} answered {status} with invalid JSON ({type(exc).__name__})",
                                   request_id=request_id)  # fmt: skip
    called = call_name(method, url, secret)
    what = redact(content_type[:100], secret) if content_type else "no content type"
    return NotJSONAnswerError(
        f"{called} answered {status} with {what}, not the API's JSON (a web page: is that the API's address?)",
        url=called, status_code=status, request_id=request_id,
    )  # fmt: skip


def call_name(method: str, url: str, secret: Secret | None) -> str:
    """``POST https://host/path`` for an error, without user or password in the URL, nor any key."""
    try:
        shown = str(yarl.URL(url).with_user(None))
    except (ValueError, TypeError):
        shown = url
    return redact(f"{method} {shown}", secret)


def status_error(
    status: int,
    raw: bytes,
    headers: Mapping[str, str],
    *,
    secret: Secret | None = None,
    retry_after: float | None = None,
    url: str | None = None,
) -> APIStatusError:
    """The error for a non-2xx answer, from its body (``{"error": {...}}``) where it has one."""
    request_id = request_id_of(headers)
    code = type_ = param = suggestion = None
    message = ""
    body: Any = None
    try:
        body = decode_json(raw, secret=secret) if raw else None
    except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser's stack
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        # Every field through ``redact``, not only the message: a server may echo the key in any.
        code = None if error.get("code") is None else redact(str(error["code"]), secret)
        type_ = None if error.get("type") is None else redact(str(error["type"]), secret)
        param = None if error.get("param") is None else redact(str(error["param"]), secret)
        hint = error.get("fallback_suggestion") or error.get("suggestion")
        suggestion = None if hint is None else redact(str(hint)[:2000], secret)  # bounded, like every field
        message = str(error.get("message") or "")
    elif isinstance(body, dict) and isinstance(body.get("message") or body.get("msg"), str):
        message = str(body.get("message") or body.get("msg"))
    if not message:
        text = raw[:200].decode("utf-8", "replace").strip()
        message = text or f"HTTP {status} with an empty body"
    return status_error_class(status, code=code, type=type_)(
        redact(message, secret),
        status_code=status,
        code=code,
        type=type_,
        param=param,
        request_id=request_id,
        retry_after=retry_after,
        body=body,
        url=url,
        suggestion=suggestion,
    )
