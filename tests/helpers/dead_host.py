"""A host that is there but never answers: it reads each HTTP request, records it, and resets
the connection (RST) instead of answering; or, with ``refuse=True``, a port nobody listens on."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

__all__ = ["DeadHost", "dead_host"]


class DeadHost:
    """``url`` to point a client at; ``requests``: (method, path, JSON body or None) of each request read."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.requests: list[tuple[str, str, Any]] = []

    def count(self, method: str, path: str) -> int:
        return sum(1 for m, p, _ in self.requests if (m, p) == (method, path))


@asynccontextmanager
async def dead_host(*, refuse: bool = False) -> AsyncIterator[DeadHost]:
    if refuse:
        # Bound and never listening: every connection is refused, and the port stays this test's
        # (closed at once, another program could take it and answer).
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
            yield DeadHost(f"http://127.0.0.1:{port}")
        return

    host: DeadHost

    async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            length = next((int(line.split(":", 1)[1]) for line in lines[1:]
                           if line.lower().startswith("content-length:")), 0)  # fmt: skip
            body = json.loads(await reader.readexactly(length)) if length else None
            host.requests.append((method, path, body))
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError):
            pass
        sock = writer.get_extra_info("socket")
        if sock is not None:  # linger 0: close() sends RST, not FIN
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()

    server = await asyncio.start_server(reset, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    host = DeadHost(f"http://127.0.0.1:{port}")
    try:
        yield host
    finally:
        server.close()
        await server.wait_closed()
