"""``--callbacks URL --listen HOST:PORT``: a batch that takes its tasks' callbacks itself.

The command line runs a :class:`CallbackReceiver` in its own process: an aiohttp server on
``--listen`` serves ``receiver.aiohttp_app()`` at the path of the public URL (``https://public/hooks``
-> ``/hooks``), started before the first submit and stopped, in bounded time, when the batch ends
or is interrupted. What reaches ``--listen`` from the public URL (a reverse proxy, a tunnel, the
sandbox on loopback) is the user's to arrange; the receiver only checks each callback's token.

>>> receiver = callback_receiver(options := callback_options(args))   # None without --callbacks
>>> client = build_client(args, callbacks=receiver)
>>> listener = await start_listening(receiver, options)               # before the first submit
>>> try: ...
... finally: await listener.stop()
"""

from __future__ import annotations

import argparse
import errno
import ipaddress
import os
import re
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import anyio
import attrs

from .. import CallbackReceiver, Tracker
from ..errors import ValidationError
from ._secret_files import read_secret_file
from ._text import printable

if TYPE_CHECKING:
    from aiohttp import web

__all__ = ["CallbackOptions", "CallbackUsageError", "Listener", "add_callback_arguments", "callback_options",
           "callback_receiver", "start_listening", "update_counts"]

#: Seconds the server may take to stop (open connections are cut after that).
STOP_BOUND = 2.0
_SECRET_ENV = "EVOLINK_CALLBACK_SECRET"  # noqa: S105 - the variable's name, not a secret
#: A host name --listen accepts besides an IP address: dot-separated labels (``_`` too, as in some local names).
_HOST_NAME = re.compile(r"[A-Za-z0-9_-]{1,63}(?:\.[A-Za-z0-9_-]{1,63})*\.?")


class CallbackUsageError(Exception):
    """Callback options that cannot run (exit 2): one of --callbacks/--listen alone, a port in use."""


@attrs.frozen(kw_only=True)
class CallbackOptions:
    public_url: str
    host: str
    port: int
    secret: str | None = attrs.field(repr=False)
    allow_local: bool
    #: Where ``secret`` came from, as the user wrote it: a bad one is blamed on what they set.
    secret_origin: str = f"${_SECRET_ENV}"

    @property
    def path(self) -> str:
        """Where the receiver is mounted: the public URL's path, '' for its root."""
        return urlsplit(self.public_url).path.rstrip("/")


def add_callback_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "callbacks", "take each task's end by callback instead of polling (polling stays the safety net)"
    )
    group.add_argument("--callbacks", metavar="URL",
                       help="public URL that reaches --listen (e.g. https://hooks.example.com/evolink); "
                       "each submit gets URL/<token>")  # fmt: skip
    group.add_argument("--listen", metavar="HOST:PORT",
                       help="where the receiver listens (e.g. 127.0.0.1:8080 behind a proxy or tunnel; "
                       "IPv6 in brackets: [::1]:8080; PORT alone: 127.0.0.1)")  # fmt: skip
    group.add_argument("--callback-secret-file", metavar="FILE",
                       help=f"the secret of the callback tokens (first line, 16+ bytes; default: ${_SECRET_ENV}, "
                       "else random per run: a resumed run then cannot match earlier runs' callbacks)")  # fmt: skip
    group.add_argument("--allow-local-callbacks", action="store_true",
                       help="accept an http:// or loopback --callbacks URL (the sandbox, a local tunnel)")  # fmt: skip


def _ip_address(text: str, *, version: int | None = None) -> bool:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    return version is None or address.version == version


def _port(text: str, where: str) -> int:
    # Digits only: int() would also take "+80", " 80", "8_0" and non-ASCII digits.
    if not (text.isascii() and text.isdigit()):
        shown = f"the port {text!r} is not a number" if text else "the port is missing"
        raise CallbackUsageError(f"{where}: {shown}; expected HOST:PORT with a port in 1..65535")
    # The length first: int() refuses a string of thousands of digits with its own ValueError.
    if len(text) > 5 or not 1 <= int(text) <= 65535:
        shown = text if len(text) <= 12 else f"{text[:12]}..."
        raise CallbackUsageError(f"{where}: the port {shown} is out of range; expected HOST:PORT with a port in "
                                 "1..65535")  # fmt: skip
    return int(text)


def _unbracketed_ipv6(text: str, where: str) -> CallbackUsageError:
    # "::1:8080" is the address ::1 with port 8080, or the address ::1:8080 without one: never guess.
    head, _, tail = text.rpartition(":")
    if _ip_address(head, version=6) and tail.isascii() and tail.isdigit():
        hint = f"write [{head}]:{tail}"
        if _ip_address(text, version=6):
            hint += f" (or [{text}]:PORT if {text} is the whole address)"
        return CallbackUsageError(f"{where}: an IPv6 address with a port is ambiguous without brackets; {hint}")
    if _ip_address(text, version=6):
        return CallbackUsageError(f"{where}: needs a port, and an IPv6 address needs brackets; write [{text}]:PORT "
                                  "(e.g. [::1]:8080)")  # fmt: skip
    return CallbackUsageError(f"{where}: expected HOST:PORT (an IPv6 host in brackets, e.g. [::1]:8080)")


def _listen_address(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[IPV6]:PORT`` or ``PORT`` alone (then 127.0.0.1); anything else is a usage error."""
    shown = printable(text if len(text) <= 80 else text[:60] + "...")
    where = f"--listen {shown}"
    if not text:
        raise CallbackUsageError("--listen: empty; expected HOST:PORT (e.g. 127.0.0.1:8080)")
    if any(char.isspace() or not char.isprintable() for char in text):
        # Quoted: a space at either end would be invisible in the message.
        raise CallbackUsageError(f"--listen '{shown}': spaces and control characters are not allowed; "
                                 "expected HOST:PORT")  # fmt: skip
    if text.startswith("["):  # [::1]:8080
        host, closed, rest = text[1:].partition("]")
        if not closed or (rest and not rest.startswith(":")):
            raise CallbackUsageError(f"{where}: expected [IPV6]:PORT (e.g. [::1]:8080)")
        if not host:
            raise CallbackUsageError(f"{where}: the host is empty; expected [IPV6]:PORT (e.g. [::1]:8080)")
        if not _ip_address(host, version=6):
            raise CallbackUsageError(f"{where}: brackets are for an IPv6 address only; write {host}{rest or ':PORT'}")
        if not rest:
            raise CallbackUsageError(f"{where}: needs a port; write [{host}]:PORT (e.g. [{host}]:8080)")
        return host, _port(rest[1:], where)
    if text.count(":") > 1:
        raise _unbracketed_ipv6(text, where)
    host, colon, port_text = text.rpartition(":")
    if not colon:
        if not text.isdigit() and (_ip_address(text) or _HOST_NAME.fullmatch(text)):
            raise CallbackUsageError(f"{where}: needs a port; write {text}:PORT (e.g. {text}:8080) or the port alone")
        return "127.0.0.1", _port(text, where)
    if not host:
        # ":8080" means every interface to some tools and this machine to others: ask which.
        raise CallbackUsageError(f"{where}: the host is empty; write 127.0.0.1{text} (this machine only), "
                                 f"0.0.0.0{text} (every interface) or the port alone")  # noqa: S104 - advice, not a bind  # fmt: skip
    if not (_ip_address(host) or _HOST_NAME.fullmatch(host)):
        raise CallbackUsageError(f"{where}: {host!r} is not a host name or an IP address; expected HOST:PORT")
    return host, _port(port_text, where)


def _shown_address(host: str, port: int) -> str:
    return f"[{printable(host)}]:{port}" if ":" in host else f"{printable(host)}:{port}"


def _read_secret(path: str) -> str:
    return read_secret_file(path, flag="--callback-secret-file", error=CallbackUsageError)


def callback_options(args: argparse.Namespace) -> CallbackOptions | None:
    """The callback options of a batch command, checked; None without ``--callbacks``."""
    url: str | None = getattr(args, "callbacks", None)
    listen: str | None = getattr(args, "listen", None)
    secret_file: str | None = getattr(args, "callback_secret_file", None)
    if url is None and listen is None:
        others = [flag for flag, value in (("--callback-secret-file", secret_file),
                                           ("--allow-local-callbacks", getattr(args, "allow_local_callbacks", False)))
                  if value]  # fmt: skip
        if others:
            raise CallbackUsageError(f"{others[0]} needs --callbacks URL and --listen HOST:PORT")
        return None
    if url is None:
        raise CallbackUsageError("--listen needs --callbacks URL (the public URL that reaches it)")
    if listen is None:
        raise CallbackUsageError("--callbacks needs --listen HOST:PORT (where the receiver listens)")
    host, port = _listen_address(listen)
    secret = _read_secret(secret_file) if secret_file is not None else os.environ.get(_SECRET_ENV) or None
    origin = "--callback-secret-file" if secret_file is not None else f"${_SECRET_ENV}"
    return CallbackOptions(public_url=url, host=host, port=port, secret=secret, secret_origin=origin,
                           allow_local=bool(getattr(args, "allow_local_callbacks", False)))  # fmt: skip


def callback_receiver(options: CallbackOptions | None) -> CallbackReceiver | None:
    """The receiver of ``options`` (None without them); a bad public URL or secret is a ``ValidationError``."""
    if options is None:
        return None
    try:
        return CallbackReceiver(options.public_url, secret=options.secret, allow_local=options.allow_local)
    except ValidationError as exc:
        field = {"public_url": "--callbacks", "secret": options.secret_origin}
        hint = " (--allow-local-callbacks accepts http:// and loopback URLs)" \
            if exc.field == "public_url" and not options.allow_local else ""  # fmt: skip
        raise ValidationError(field.get(exc.field, exc.field), exc.rule + hint) from None


def _bind_failure(options: CallbackOptions, exc: OSError) -> CallbackUsageError:
    where = f"--listen {_shown_address(options.host, options.port)}"
    if exc.errno == errno.EADDRINUSE:
        return CallbackUsageError(f"{where}: the port is in use (another process listens there); choose another")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return CallbackUsageError(f"{where}: not allowed to listen there (ports below 1024 need privileges)")
    reason = exc.strerror or str(exc) or type(exc).__name__
    return CallbackUsageError(f"{where}: cannot listen there ({printable(reason)})")


class Listener:
    """The receiver's aiohttp server on ``--listen``; ``stop`` is bounded and survives a cancellation."""

    def __init__(self, runner: web.AppRunner) -> None:
        self._runner = runner

    async def stop(self) -> None:
        # Shielded: after a Ctrl-C the cancelled command must still close its listening socket.
        with anyio.move_on_after(STOP_BOUND + 1, shield=True):
            await self._runner.cleanup()


async def start_listening(receiver: CallbackReceiver | None, options: CallbackOptions | None) -> Listener | None:
    """Serve ``receiver`` at the public URL's path on ``options.host:options.port`` (None without one).

    A port in use, or an address this machine cannot listen on, is a ``CallbackUsageError``.
    """
    if receiver is None or options is None:
        return None
    # Here, not at the top: every command imports this module, and only --listen serves anything
    # (aiohttp's server side is about 20 ms of CPU at each start, six times for six fleet workers).
    from aiohttp import web

    app = web.Application()
    if options.path:
        app.add_subapp(options.path, receiver.aiohttp_app())
    else:
        app = receiver.aiohttp_app()
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=STOP_BOUND)
    await runner.setup()
    listener = Listener(runner)
    try:
        await web.TCPSite(runner, options.host, options.port).start()
    except OSError as exc:
        await listener.stop()
        raise _bind_failure(options, exc) from None
    except BaseException:
        await listener.stop()
        raise
    return listener


def update_counts(receiver: CallbackReceiver, tracker: Tracker) -> dict[str, int]:
    """How the batch learnt of its tasks' changes: callbacks taken, and queries sent."""
    return {"by_callback": receiver.accepted, "by_query": tracker.queries_sent}
