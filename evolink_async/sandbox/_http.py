"""HTTP plumbing shared by the two sandbox apps: request ids, endpoint counting, dropping a connection."""

from __future__ import annotations

import ipaddress
import json
import socket
import struct
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from ._ledger import Ledger

__all__ = [
    "Handler",
    "bearer_key",
    "drop_connection",
    "endpoint_of",
    "is_loopback_url",
    "json_response",
    "request_id_middleware",
]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
REQUEST_ID = web.AppKey("request_id", str)


# The sandbox only ever calls back to this machine (callbacks, MJ notify hooks, uploads by URL).
def is_loopback_url(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def endpoint_of(request: web.Request) -> str:
    """``"METHOD /route/{template}"``, the key of ``Ledger.requests``."""
    resource = request.match_info.route.resource
    path = resource.canonical if resource is not None else "<unmatched>"
    return f"{request.method} {path}"


def json_response(body: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=json.dumps(body, ensure_ascii=False).encode(),
        status=status,
        headers=headers,
        content_type="application/json",
    )


def bearer_key(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    return key.strip() if scheme.lower() == "bearer" and key.strip() else None


def request_id_middleware(ledger: Ledger, *, on_http_error: Callable[[web.HTTPException], web.Response]) -> Any:
    """Count every request per endpoint and give every answer an ``x-request-id``.

    aiohttp's own errors (no route, wrong method, body too large) are turned into the app's
    error shape by ``on_http_error``, so even those answers look like the real service's.
    """

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        ledger.requests[endpoint_of(request)] += 1
        request_id = f"req-{uuid.uuid4().hex[:24]}"
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            response = on_http_error(exc)
        except ConnectionResetError:
            # The client went away while its body was read (a CLI stopped by ``| head``, a killed
            # process): a real service shrugs that off. Raised on, aiohttp would log a traceback
            # into the output of whatever runs this sandbox in-process (``evolink demo``); an
            # answer to a closed connection fails to write quietly.
            return web.Response(status=400)
        response.headers["x-request-id"] = request_id
        return response

    return middleware


def drop_connection(request: web.Request) -> web.Response:
    """Reset the client's connection without an answer, like a proxy dying mid-request.

    SO_LINGER 0 makes the close an RST (the client sees "connection reset", not a clean EOF);
    the response returned to aiohttp then fails to write, which aiohttp treats as a client
    that went away: no traceback, no log noise, and the connection is not reused.
    """
    transport = request.transport
    if transport is not None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    return web.Response(status=499)
