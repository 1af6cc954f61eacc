"""What the SDK's bare ASGI 3 apps share (the callback receiver, the progress relay).

No framework is imported: Starlette, FastAPI, Quart and plain uvicorn all speak this protocol.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["Receive", "Scope", "Send", "path_below_mount", "send_json", "serve_lifespan"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def path_below_mount(scope: Scope) -> str:
    """The request path below the app's mount point, without leading or trailing slashes."""
    path: str = scope.get("path", "")
    # Mounted apps see either the path below the mount (older Starlette) or the full path with
    # the mount in ``root_path`` (newer): strip it in the second case.
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return path.strip("/")


async def send_json(send: Send, status: int, body: object) -> None:
    """A whole JSON response."""
    data = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


async def serve_lifespan(receive: Receive, send: Send) -> None:
    """Answer a server's lifespan messages (these apps need no start-up of their own)."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
