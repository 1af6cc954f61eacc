"""Streaming, bounded, atomic downloads of result images.

Each result is streamed to a hidden temporary file in the destination folder, probed (it must
be an image), then given its final name with ``publish_unique`` (a hard link: claim and publish
in one step; the result gets the umask's mode, not the temporary's 0600), so:

- a crash of the process leaves at most a ``.evolink-*.part`` file, never a truncated result
  under a real name; with ``durable=True`` that holds for a power cut too (the file and then its
  folder are fsynced), at a cost in throughput (benchmarks/downloads.py measures it);
- nothing is ever overwritten, an input included (``O_EXCL`` claims; ``name (1).png`` on a clash);
- a name built from outside text cannot leave the folder (``resolve_inside``);
- at most ``max_bytes`` are read, whatever ``Content-Length`` claims.

No ``Authorization`` header is ever sent: result links are public CDN URLs, and a result host
is not a host the API key may be shown to.
"""

from __future__ import annotations

import contextlib
import functools
import os
import stat
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import anyio
import anyio.to_thread

from .._core.checks import check_count, check_number
from .._core.credentials import SameOrigin, foreign_hop_strip, session_middlewares
from .._core.logging import logger
from .._version import __version__
from ..errors import DownloadError, ValidationError
from .image_probe import ImageFormat, ImageProbeError, probe_image
from .safe_paths import existing_variants, publish_unique, resolve_inside

__all__ = ["DEFAULT_MAX_DOWNLOAD_BYTES", "download_to", "download_urls", "remove_stale_parts"]

#: The largest result saved unless told otherwise (results are images of a few MB).
DEFAULT_MAX_DOWNLOAD_BYTES = 64 * 1024 * 1024
_CHUNK = 64 * 1024
_WRITE_BATCH = 512 * 1024  # bytes gathered before one write in a worker thread
_MAX_REDIRECTS = 5
_IOV_MAX = 512  # below every platform's IOV_MAX (1024 on Linux)

#: Picks the final relative name once the format of the downloaded bytes is known.
NameFor = Callable[[ImageFormat], str]


def _check_url(url: str) -> None:
    try:
        parts = urlsplit(url)
    except ValueError:  # "http://[::1": an unclosed IPv6 bracket
        raise DownloadError(url, "bad_url", "result URLs must be valid absolute http(s) URLs") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DownloadError(url, "bad_url", "result URLs must be absolute http(s) URLs")


_PART_PREFIX, _PART_SUFFIX = ".evolink-", ".part"


def _open_temp(folder: Path) -> tuple[int, str]:
    folder.mkdir(parents=True, exist_ok=True)
    return tempfile.mkstemp(prefix=_PART_PREFIX, suffix=_PART_SUFFIX, dir=folder)


def remove_stale_parts(folder: str | os.PathLike[str]) -> int:
    """Delete the ``.evolink-*.part`` temporaries a killed download left in ``folder``; return how many.

    Only safe while no download into ``folder`` runs (a batch holds its run lock).
    """
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return 0
    for entry in entries:
        if entry.name.startswith(_PART_PREFIX) and entry.name.endswith(_PART_SUFFIX) and \
                entry.is_file(follow_symlinks=False):  # fmt: skip
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
                removed += 1
    return removed


def _read_umask() -> int:
    try:  # Linux: no need to change the process-wide umask to learn it
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


#: Results get the mode any new file of this process gets (0o644 under the usual umask 022),
#: not mkstemp's 0o600: they are the user's files, to share as the user's umask says.
_RESULT_MODE = 0o666 & ~_read_umask()


def _write_all(fd: int, chunks: list[bytes]) -> None:
    # writev rather than a joined copy: no batch-sized buffer per download, which is what kept
    # peak RSS well above a plain loop's (benchmarks/downloads.py).
    if not hasattr(os, "writev"):  # Windows
        for chunk in chunks:
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view) :]
        return
    views = [memoryview(c) for c in chunks]
    while views:
        written = os.writev(fd, views[:_IOV_MAX])
        while views and written >= len(views[0]):
            written -= len(views[0])
            views.pop(0)
        if written:
            views[0] = views[0][written:]


def _finish(fd: int, temp: str, root: Path, name: str, durable: bool, reuse_identical: bool) -> Path:
    if hasattr(os, "fchmod"):
        os.fchmod(fd, _RESULT_MODE)
    if durable:
        os.fsync(fd)  # the bytes are on disk before the name points at them
    target = resolve_inside(root, name)
    target.parent.mkdir(parents=True, exist_ok=True)
    resolve_inside(root, target.parent / "x")  # a folder created through a symlink must still be inside
    if reuse_identical:
        for existing in existing_variants(target):
            if _same_content(existing, temp):
                os.unlink(temp)
                return existing
    claimed = publish_unique(temp, target)  # claim and publish in one step: never an empty result
    if durable:
        _fsync_folder(claimed.parent)  # and the rename itself survives a power cut
    return claimed


def _same_content(existing: Path, temp: str) -> bool:
    """True when ``existing`` is a regular file (not a link) with exactly the bytes of ``temp``."""
    try:
        info = os.lstat(existing)
    except OSError:
        return False
    if not stat.S_ISREG(info.st_mode) or info.st_size != os.stat(temp).st_size:
        return False
    with open(existing, "rb") as a, open(temp, "rb") as b:
        while True:
            left, right = a.read(_CHUNK * 4), b.read(_CHUNK * 4)
            if left != right:
                return False
            if not left:
                return True


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # a platform that cannot open folders (Windows): the file's fsync is all it gets
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class _Temp:
    """The download's temporary file, made (with its folder) only once there are bytes to write:
    a fetch that fails leaves no empty folder behind."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.fd: int | None = None
        self.path = ""

    def open(self) -> int:
        if self.fd is None:
            self.fd, self.path = _open_temp(self.folder)
        return self.fd

    def discard(self) -> None:
        if self.fd is not None:
            _discard(self.fd, self.path)


def _check_folder(folder: Path) -> None:
    """Refuse a ``dest_dir`` that is a file before anything is fetched (it is made only when needed)."""
    if folder.exists() and not folder.is_dir():
        raise FileExistsError(folder)


def _complete(
    temp: _Temp, pending: list[bytes], root: Path, name_for: NameFor, durable: bool, reuse_identical: bool
) -> Path:
    fd = temp.open()
    _write_all(fd, pending)
    info = probe_image(temp.path)
    return _finish(fd, temp.path, root, name_for(info.format), durable, reuse_identical)


def _write_batch(temp: _Temp, chunks: list[bytes], root: str | os.PathLike[str]) -> None:
    try:
        fd = temp.open()
    except (FileExistsError, NotADirectoryError):
        raise ValidationError("dest_dir", f"{os.fspath(root)!r} is a file, not a folder") from None
    _write_all(fd, chunks)


def _disk_error(url: str, error: OSError) -> DownloadError:
    """A result that could not be written here (disk full, read-only, no permission): a typed
    error, not a bare ``OSError``. Its cause is this machine, not the result: callers that save
    many results (a batch) stop on it rather than pay for more results they cannot keep."""
    return DownloadError(url, "disk", f"cannot write the result: {error.strerror or error}")


def _discard(fd: int, temp: str) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(temp)


async def download_to(
    session: aiohttp.ClientSession,
    url: str,
    root: str | os.PathLike[str],
    name_for: NameFor,
    *,
    max_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES,
    timeout: float = 300.0,
    durable: bool = False,
    reuse_identical: bool = False,
) -> Path:
    """Save ``url`` under ``root`` as ``name_for(format)`` (a relative name) and return the path.

    Raises :class:`~evolink_async.DownloadError` (``reason``: ``bad_url``, ``http_status``,
    ``too_large``, ``not_an_image``, ``connection``, ``disk``: the result could not be written
    here) and
    :class:`~evolink_async._files.safe_paths.UnsafePathError` when the name would leave ``root``.
    ``durable=True`` fsyncs the file and its folder before returning (see the module docstring).
    ``reuse_identical=True`` returns an existing file under the name (or a numbered variant of
    it) whose bytes are exactly these instead of saving a copy: a resumed batch that had saved a
    result but not yet recorded it finds its own file.

    >>> await download_to(session, task.results[0], "out", lambda fmt: f"cat.result-0.{fmt.value}")
    PosixPath('/home/me/out/cat.result-0.png')
    """
    _check_url(url)
    root_path = Path(root)
    # The temp file lives beside its final name (os.replace stays on one file system); it and the
    # folder are made at the first bytes to write.
    temp = _Temp(root_path)
    try:
        await anyio.to_thread.run_sync(_check_folder, root_path)
    except (FileExistsError, NotADirectoryError):
        raise ValidationError("dest_dir", f"{os.fspath(root)!r} is a file, not a folder") from None
    except OSError as exc:
        raise _disk_error(url, exc) from None
    try:
        size = 0
        client_timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=30.0)
        headers = {"User-Agent": f"evolink-async/{__version__}", "Accept": "image/*"}
        try:
            # No credential of the session's follows a redirect to another origin (a result URL on
            # one host that sends the download elsewhere); downloads themselves send none.
            middlewares = (*session_middlewares(session), SameOrigin(None, foreign_hop_strip(session, ())))
            async with session.get(
                url, headers=headers, timeout=client_timeout, max_redirects=_MAX_REDIRECTS, middlewares=middlewares
            ) as response:
                if response.status != 200:
                    raise DownloadError(url, "http_status", f"HTTP {response.status}")
                if response.content_length is not None and response.content_length > max_bytes:
                    raise DownloadError(url, "too_large", f"{response.content_length} bytes, the limit is {max_bytes}")
                pending: list[bytes] = []
                pending_size = 0
                async for chunk in response.content.iter_chunked(_CHUNK):
                    size += len(chunk)
                    if size > max_bytes:
                        raise DownloadError(url, "too_large", f"more than the {max_bytes}-byte limit")
                    pending.append(chunk)
                    pending_size += len(chunk)
                    if pending_size >= _WRITE_BATCH:
                        await anyio.to_thread.run_sync(_write_batch, temp, pending, root)
                        pending, pending_size = [], 0
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise DownloadError(url, "connection", f"{type(exc).__name__}: {exc}") from None
        except OSError as exc:  # after the two above: aiohttp's connection errors are OSErrors too
            raise _disk_error(url, exc) from None
        if not size:  # nothing to write: no folder made for it
            raise DownloadError(url, "not_an_image", "the answer is empty")
        try:
            # The last write, the probe and the rename in one thread call: each hop to a worker
            # thread costs the loop a wake-up, and a download is only a few of them.
            path = await anyio.to_thread.run_sync(
                _complete, temp, pending, root_path, name_for, durable, reuse_identical
            )
        except (FileExistsError, NotADirectoryError):  # made a file meanwhile, or under one
            raise ValidationError("dest_dir", f"{os.fspath(root)!r} is a file, not a folder") from None
        except ImageProbeError as exc:
            raise DownloadError(url, "not_an_image", exc.rule) from None
        except OSError as exc:
            raise _disk_error(url, exc) from None
    except BaseException:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(temp.discard)
        raise
    with contextlib.suppress(OSError):
        os.close(temp.open())
    logger.info("saved %s (%d bytes)", path, size)
    return path


async def download_urls(
    session: aiohttp.ClientSession,
    urls: Sequence[str],
    root: str | os.PathLike[str],
    name_for: Callable[[int, ImageFormat], str],
    *,
    max_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES,
    timeout: float = 300.0,
    durable: bool = False,
    reuse_identical: bool = False,
) -> tuple[Path, ...]:
    """Save every URL in order (``name_for(index, format)`` names each); stops at the first error."""
    check_count("max_bytes", max_bytes)
    check_number("timeout", timeout, above=True)
    paths = []
    for index, url in enumerate(urls):
        named = functools.partial(name_for, index)
        paths.append(
            await download_to(
                session,
                url,
                root,
                named,
                max_bytes=max_bytes,
                timeout=timeout,
                durable=durable,
                reuse_identical=reuse_identical,
            )
        )
    return tuple(paths)
