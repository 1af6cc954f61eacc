"""Credentials go only where they were meant to go: each hop of a request at its first origin.

aiohttp follows redirects itself and drops only ``Authorization`` (and cookies) when a redirect
leaves the origin; a Midjourney proxy's ``mj-api-secret``, a gateway key in ``default_headers`` or
a header of the caller's own session would follow a ``302 Location: http://elsewhere/``. So the
client's credentials are not passed to aiohttp with the request at all: :class:`SameOrigin`, an
aiohttp client middleware (run for every hop, redirects included), attaches them to a hop whose
origin (scheme, host and port) is the request's first one, and strips every credential-like header
from a hop anywhere else.

Attaching them at the last moment also keeps the key out of the locals of every frame between the
caller and the socket (an error reporter that records frame locals, such as Sentry, shows those):
it lives in the request object aiohttp sends, never in a dict a frame holds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import aiohttp
from multidict import CIMultiDict

__all__ = ["CREDENTIAL_HEADERS", "ForeignRedirect", "SameOrigin", "foreign_hop_strip", "session_middlewares"]

#: Header names that carry credentials whatever the client was configured with (lower case).
CREDENTIAL_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "mj-api-secret", "x-api-key", "api-key", "x-goog-api-key"}
)
#: Headers a caller may configure that say nothing about who is asking: they follow any redirect.
_HARMLESS = frozenset({"accept", "accept-encoding", "accept-language", "user-agent", "content-type"})

Sign = Callable[["CIMultiDict[str]"], None]


class ForeignRedirect(aiohttp.ClientError):
    """A redirect to another origin, refused before its hop was sent (``status``: the redirect's)."""

    def __init__(self, status: int | None, target: str) -> None:
        self.status = status
        self.target = target
        super().__init__(f"redirected ({status}) to another origin: {target}")


def foreign_hop_strip(session: aiohttp.ClientSession, configured: Iterable[str]) -> frozenset[str]:
    """The headers removed from a hop at another origin: every credential-like name, the client's
    configured headers (its auth header, ``default_headers``) and the session's default headers."""
    names = {name.lower() for name in configured} | {name.lower() for name in session.headers}
    return CREDENTIAL_HEADERS | (names - _HARMLESS)


def session_middlewares(session: aiohttp.ClientSession) -> tuple[Any, ...]:
    """The session's own middlewares: a request's ``middlewares=`` replaces them, so they go first."""
    return tuple(getattr(session, "_middlewares", None) or ())


class SameOrigin:
    """One request's middleware: ``sign`` the hops at its first origin, strip ``strip`` elsewhere.

    A new one per request (it remembers that request's first origin).
    """

    __slots__ = ("_last_status", "_origin", "_refuse", "_sign", "_strip")

    def __init__(self, sign: Sign | None, strip: frozenset[str], *, refuse_foreign: bool = False) -> None:
        self._sign = sign
        self._strip = strip
        #: An API call refuses a hop elsewhere (its body, a callback URL's token among it, and the
        #: answer taken as the task's would belong to a server nobody pointed the client at); a
        #: download of results follows it (CDNs redirect), without credentials.
        self._refuse = refuse_foreign
        self._origin: tuple[str, str | None, int | None] | None = None
        self._last_status: int | None = None

    async def __call__(
        self, request: aiohttp.ClientRequest, handler: Callable[[aiohttp.ClientRequest], Any]
    ) -> aiohttp.ClientResponse:
        url = request.url
        origin = (url.scheme, url.host, url.port)  # ``port`` is the scheme's default when not written
        if self._origin is None:
            self._origin = origin
        if origin == self._origin:
            if self._sign is not None:
                self._sign(request.headers)
        else:
            if self._refuse:
                raise ForeignRedirect(self._last_status, str(url.with_user(None).with_query(None)))
            headers = request.headers
            for name in self._strip:
                headers.popall(name, None)
        response: aiohttp.ClientResponse = await handler(request)
        # ``getattr``: a mocked session (aioresponses, in tests of request shapes) answers None here.
        self._last_status = getattr(response, "status", None)
        return response
