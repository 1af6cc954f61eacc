"""``client.files``: the Files API (API.md A6): turn local images into URLs, list, quota, delete.

Uploads go to ``{files_base_url}/api/v1/files/upload/stream`` as multipart, streamed from the file
(aiohttp reads a file payload in chunks off the event loop), so a large image is never read whole
into memory; ``upload_bytes`` sends bytes already in memory as base64 (``upload/base64``) and
``upload_url`` asks the service to fetch a URL itself (``upload/url``). Before any byte is sent a
local file is size-checked and its header probed: a file that is too large, or an image type the
Files API does not store (JPEG, PNG, GIF, WebP by content), fails here with a
:class:`~evolink_async.ValidationError` naming it.

The key's quota is small (100 files by default): a caller that uploads one file per input must
delete the files whose tasks ended (``client.fan_out`` and the batches do, unless told to keep them).
"""

from __future__ import annotations

import base64
import errno
import os
import random
import stat
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import aiohttp
import anyio
import anyio.to_thread

from ..._core.checks import check_count
from ..._core.logging import logger
from ..._core.transport import Response, Transport
from ..._files.image_probe import ImageFormat, probe_image
from ..._files.local_images import FILES_API_FORMATS, check_upload_format
from ..._files.safe_paths import safe_file_name
from ...errors import (
    APIStatusError,
    EvolinkError,
    FilesAPIError,
    ValidationError,
    is_fatal_to_batch,
)
from .file_answers import (
    FilesPage,
    FilesQuota,
    UploadedFile,
    envelope,
    files_error,
    page_from,
    quota_from,
    uploaded_from,
)

__all__ = ["DEFAULT_MAX_UPLOAD_BYTES", "UPLOAD_FORMATS", "Files", "FilesPage", "FilesQuota", "UploadedFile"]

#: The largest file an upload sends unless told otherwise: the Files API's own limit (A6: 100 MB;
#: code 40001 beyond it).
DEFAULT_MAX_UPLOAD_BYTES = 100 * 1024 * 1024
#: What A6 says the Files API stores of images (JPEG, PNG, GIF, WebP); kept for callers of 0.x.
UPLOAD_FORMATS = FILES_API_FORMATS
_MIME = {
    ImageFormat.PNG: "image/png", ImageFormat.JPEG: "image/jpeg", ImageFormat.GIF: "image/gif",
    ImageFormat.WEBP: "image/webp", ImageFormat.BMP: "image/bmp", ImageFormat.TIFF: "image/tiff",
}  # fmt: skip
_FILES = "/api/v1/files"
_UPLOAD_STREAM = f"{_FILES}/upload/stream"
_UPLOAD_BASE64 = f"{_FILES}/upload/base64"
_UPLOAD_URL = f"{_FILES}/upload/url"
#: ``files.list`` pages hold at most this many files (A6: ``pageSize`` at most 100).
MAX_PAGE_SIZE = 100


def _as_files_error(error: APIStatusError) -> EvolinkError:
    # 401/403 keep their classes: a batch treats them as fatal, whichever host said it.
    if is_fatal_to_batch(error):
        return error
    body = error.body if isinstance(error.body, dict) else {}
    if "code" not in body and error.status_code == 413:
        body = {"code": 40001, "msg": error.message}
    if "code" not in body:
        return error
    return files_error(error.status_code, body, error.request_id, url=error.url)


def _file_path(file_id: str) -> str:
    if not isinstance(file_id, str) or not file_id or file_id in (".", "..") or len(file_id) > 256:
        raise ValidationError("file_id", "must be a non-empty file id (at most 256 characters)")
    return f"{_FILES}/{quote(file_id, safe='')}"


def _upload_name(name: str, image_format: ImageFormat | None) -> str:
    """A name a multipart header can carry: no controls (CR, LF, ESC, DEL), quotes or separators."""
    return safe_file_name(name, default=f"image{_suffix(image_format)}")


def _size_of(path: Path) -> int:
    info = path.stat()
    if not stat.S_ISREG(info.st_mode):
        raise IsADirectoryError(errno.EISDIR, "is a folder or a special file, not an image file")
    return info.st_size


class Files:
    """The Files API: upload (a path, bytes, a URL), list, quota, delete."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport
        self._rng = random.Random()

    async def upload(
        self,
        source: str | os.PathLike[str] | bytes,
        *,
        file_name: str | None = None,
        upload_path: str | None = None,
        max_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
        check_format: bool = True,
    ) -> UploadedFile:
        """Upload a local image (a path, or the bytes of one) and return where it is stored.

        Raises :class:`~evolink_async.ValidationError` before sending anything when the file is
        larger than ``max_bytes`` or (with ``check_format``) not a JPEG, PNG, GIF or WEBP image;
        :class:`~evolink_async.FilesAPIError` when the Files API refuses it. Transient failures
        are retried per the client's retry policy (a retried upload stores a file at most twice
        and costs no credits).

        >>> uploaded = await client.files.upload(Path("photos/cat.png"), upload_path="batch-7")
        >>> uploaded.file_url
        'https://files.evolink.ai/batch-7/cat.png'
        """
        check_count("max_bytes", max_bytes)
        if isinstance(source, bytes | bytearray | memoryview):
            content = bytes(source)
            data: bytes | None = content
            path = None
            label = file_name or "image"
            size = len(content)
        elif isinstance(source, str | os.PathLike):
            data = None
            path = Path(source)
            label = path.name
            try:
                size = await anyio.to_thread.run_sync(_size_of, path)
            except OSError as exc:
                raise ValidationError(label, f"cannot be read: {exc.strerror or exc}") from None
        else:
            raise ValidationError("source", f"must be a path or bytes, got {type(source).__name__}")
        if size > max_bytes:
            raise ValidationError(label, f"is {size} bytes; uploads may be at most {max_bytes} bytes")
        if size == 0:
            raise ValidationError(label, "is empty")
        image_format = await self._probe(path if path is not None else data, label, check_format)
        name = _upload_name(file_name or (path.name if path is not None else ""), image_format)
        mime = _MIME.get(image_format) if image_format is not None else None
        return await self._send(path, data, name=name, upload_path=upload_path, mime=mime)

    async def upload_bytes(
        self,
        data: bytes,
        *,
        file_name: str | None = None,
        mime_type: str | None = None,
        upload_path: str | None = None,
        max_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    ) -> UploadedFile:
        """Upload bytes held in memory as base64 (``POST /api/v1/files/upload/base64``).

        An image (``mime_type`` None or ``image/...``) must be a JPEG, PNG, GIF or WebP by
        content, and ``mime_type`` (when given) must agree with the content; ``audio/...`` and
        ``video/...`` bytes are sent as they are. Base64 makes the body a third larger: for a big
        file on disk, ``upload(path)`` streams it instead.

        >>> uploaded = await client.files.upload_bytes(png, file_name="cat.png")
        """
        check_count("max_bytes", max_bytes)
        if not isinstance(data, bytes | bytearray | memoryview):
            raise ValidationError("data", f"must be bytes, got {type(data).__name__}")
        content = bytes(data)
        label = file_name or "data"
        if not content:
            raise ValidationError(label, "is empty")
        if len(content) > max_bytes:
            raise ValidationError(label, f"is {len(content)} bytes; uploads may be at most {max_bytes} bytes")
        if mime_type is not None and (not isinstance(mime_type, str) or "/" not in mime_type):
            raise ValidationError("mime_type", f"must be a MIME type like image/png, got {mime_type!r}")
        image_format: ImageFormat | None = None
        if mime_type is None or mime_type.startswith("image/"):
            image_format = await self._probe(content, label, check_format=True)
            assert image_format is not None
            if mime_type is not None and mime_type != _MIME[image_format]:
                raise ValidationError("mime_type", f"is {mime_type}, but the content is {_MIME[image_format]}")
            mime_type = _MIME[image_format]
        elif not mime_type.startswith(("audio/", "video/")):
            raise ValidationError("mime_type", f"the Files API stores images, audio and video, not {mime_type}")
        body: dict[str, str] = {
            "base64_data": f"data:{mime_type};base64,{base64.b64encode(content).decode('ascii')}",
            "file_name": _upload_name(file_name or "", image_format),
        }
        if upload_path:
            body["upload_path"] = upload_path
        url = f"{self._transport.config.files_base_url}{_UPLOAD_BASE64}"
        uploaded = uploaded_from(await self._call("POST", url, json_body=body, retry_safe=True, spends=True))
        logger.info("uploaded %s as %s", body["file_name"], uploaded.file_id)
        return uploaded

    async def upload_url(
        self, url: str, *, file_name: str | None = None, upload_path: str | None = None
    ) -> UploadedFile:
        """Have the Files API fetch ``url`` and store it (``POST /api/v1/files/upload/url``).

        The service downloads the file itself: a link it cannot reach is a
        :class:`~evolink_async.FilesAPIError` with code ``"40004"``.

        >>> uploaded = await client.files.upload_url("https://example.com/cat.png")
        """
        if not isinstance(url, str) or not url.startswith(("http://", "https://")) or len(url) > 2048:
            raise ValidationError("url", "must be an http(s) URL of at most 2048 characters")
        if any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in url):
            raise ValidationError("url", "must not contain spaces or control characters")
        body: dict[str, str] = {"file_url": url}
        if file_name:
            body["file_name"] = _upload_name(file_name, None)
        if upload_path:
            body["upload_path"] = upload_path
        endpoint = f"{self._transport.config.files_base_url}{_UPLOAD_URL}"
        return uploaded_from(await self._call("POST", endpoint, json_body=body, retry_safe=True, spends=True))

    async def list(self, *, page: int = 1, page_size: int = MAX_PAGE_SIZE) -> FilesPage:
        """One page of the files this key stores (``GET /api/v1/files/list``), with their ``total``.

        >>> page = await client.files.list(page=1, page_size=100)
        >>> page.total, [f.file_id for f in page.files]
        """
        if not isinstance(page, int) or isinstance(page, bool) or page < 1:
            raise ValidationError("page", "must be an integer >= 1")
        if not isinstance(page_size, int) or isinstance(page_size, bool) or not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValidationError("page_size", f"must be an integer from 1 to {MAX_PAGE_SIZE}")
        url = f"{self._transport.config.files_base_url}{_FILES}/list?page={page}&pageSize={page_size}"
        return page_from(await self._call("GET", url, retry_safe=True), page=page, page_size=page_size)

    async def quota(self) -> FilesQuota:
        """This key's file quota (``GET /api/v1/files/quota``): used, max and remaining files.

        >>> (await client.files.quota()).remain_files
        """
        url = f"{self._transport.config.files_base_url}{_FILES}/quota"
        return quota_from(await self._call("GET", url, retry_safe=True))

    async def delete(self, file_id: str) -> None:
        """Delete a stored file before it expires (``DELETE /api/v1/files/{file_id}``); frees quota.

        The answer needs no ``data`` (Evolink's own client checks only ``success``).

        >>> await client.files.delete(uploaded.file_id)
        """
        url = f"{self._transport.config.files_base_url}{_file_path(file_id)}"
        envelope(await self._call("DELETE", url, retry_safe=True), need_data=False)

    async def _call(
        self, method: str, url: str, *, retry_safe: bool, json_body: Any = None, spends: bool = False
    ) -> Response:
        try:
            return await self._transport.request(method, url, json_body=json_body, retry_safe=retry_safe, spends=spends)
        except FilesAPIError:
            raise
        except APIStatusError as exc:
            raise _as_files_error(exc) from None

    @staticmethod
    async def _probe(source: Path | bytes | None, label: str, check_format: bool) -> ImageFormat | None:
        if not check_format or source is None:
            return None
        info = await anyio.to_thread.run_sync(lambda: probe_image(source, field=label))
        check_upload_format(info, field=label)
        return info.format

    async def _send(
        self, path: Path | None, data: bytes | None, *, name: str, upload_path: str | None, mime: str | None
    ) -> UploadedFile:
        transport = self._transport
        policy = transport.config.retry
        url = f"{transport.config.files_base_url}{_UPLOAD_STREAM}"
        attempt = 0
        while True:
            # A consumed multipart body cannot be sent again: each attempt opens the file anew.
            handle: IO[bytes] | None = None
            try:
                form = aiohttp.FormData()
                if path is not None:
                    try:
                        handle = await anyio.to_thread.run_sync(path.open, "rb")
                    except OSError as exc:  # gone or unreadable since the checks: this file fails, alone
                        raise ValidationError(name, f"cannot be read: {exc.strerror or exc}") from None
                    form.add_field("file", handle, filename=name, content_type=mime or "application/octet-stream")
                else:
                    form.add_field("file", data, filename=name, content_type=mime or "application/octet-stream")
                form.add_field("file_name", name)
                if upload_path:
                    form.add_field("upload_path", upload_path)
                response = await transport.request("POST", url, data=form, retry_safe=False, spends=True)
                uploaded = uploaded_from(response)
            except APIStatusError as exc:
                error: EvolinkError = _as_files_error(exc) if not isinstance(exc, FilesAPIError) else exc
            except EvolinkError as exc:
                error = exc
            else:
                logger.info("uploaded %s as %s", name, uploaded.file_id)
                return uploaded
            finally:
                if handle is not None:
                    await anyio.to_thread.run_sync(handle.close)
            if attempt >= policy.max_retries or not _retryable(error):
                raise error
            await anyio.sleep(policy.backoff(attempt, rng=self._rng))
            attempt += 1


def _retryable(error: EvolinkError) -> bool:
    if isinstance(error, FilesAPIError):
        return error.status_code >= 500 or error.code == "50001"
    return Transport._should_retry(error)


def _suffix(image_format: ImageFormat | None) -> str:
    return "" if image_format is None else {ImageFormat.JPEG: ".jpg"}.get(image_format, f".{image_format.value}")

