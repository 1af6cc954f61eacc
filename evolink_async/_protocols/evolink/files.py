"""``client.files``: turn local images into URLs with the Files API (API.md A6).

Uploads go to ``{files_base_url}/api/v1/files/upload/stream`` as multipart, streamed from the file
(aiohttp reads a file payload in chunks off the event loop), so a large image is never read whole
into memory. Before any byte is sent the file is size-checked and its header probed: a file that
is too large or not an image fails here, with a :class:`~evolink_async.ValidationError` naming it.
"""

from __future__ import annotations

import errno
import os
import random
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import aiohttp
import anyio
import anyio.to_thread
import attrs

from ..._core.checks import check_count
from ..._core.logging import logger
from ..._core.transport import Response, Transport
from ..._files.image_probe import ImageFormat, probe_image
from ..._files.safe_paths import safe_file_name
from ...errors import (
    APIStatusError,
    AuthenticationError,
    EvolinkError,
    FilesAPIError,
    PermissionDeniedError,
    ResponseFormatError,
    ValidationError,
)

__all__ = ["DEFAULT_MAX_UPLOAD_BYTES", "UPLOAD_FORMATS", "Files", "UploadedFile"]

#: The largest file ``upload`` sends unless told otherwise. A6 publishes no limit; the sandbox
#: enforces 20 MiB, and the server's own limit (code 40001) still applies to whatever is sent.
DEFAULT_MAX_UPLOAD_BYTES = 20 * 1024 * 1024
#: What A6 says the Files API stores ("images only: jpeg, png, gif, webp").
UPLOAD_FORMATS = frozenset({ImageFormat.JPEG, ImageFormat.PNG, ImageFormat.GIF, ImageFormat.WEBP})
_MIME = {
    ImageFormat.PNG: "image/png", ImageFormat.JPEG: "image/jpeg", ImageFormat.GIF: "image/gif",
    ImageFormat.WEBP: "image/webp", ImageFormat.BMP: "image/bmp", ImageFormat.TIFF: "image/tiff",
}  # fmt: skip
_FILES = "/api/v1/files"
_UPLOAD_STREAM = f"{_FILES}/upload/stream"


@attrs.frozen(kw_only=True)
class UploadedFile:
    """A stored file; put ``file_url`` in a request's ``image_urls``. Files expire after 72 h.

    >>> uploaded = await client.files.upload(Path("cat.png"))
    >>> QwenImageEdit(prompt="make it autumn", image_urls=[uploaded.file_url])
    """

    file_id: str
    file_url: str
    file_name: str | None = None
    original_name: str | None = None
    file_size: int | None = None
    mime_type: str | None = None
    upload_path: str | None = None
    download_url: str | None = None
    upload_time: str | None = None
    expires_at: str | None = None
    raw: Mapping[str, Any] = attrs.field(factory=dict, eq=False, repr=False, hash=False)


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _uploaded(response: Response) -> UploadedFile:
    body = response.body
    if not isinstance(body, dict):
        raise ResponseFormatError("Files API answered without a JSON object", request_id=response.request_id)
    if body.get("success") is False:  # an error envelope with a 2xx status
        raise _files_error(response.status, body, response.request_id)
    data = body.get("data")
    if not isinstance(data, dict) or not _str(data.get("file_url")) or not _str(data.get("file_id")):
        raise ResponseFormatError("Files API upload answer has no data.file_id / data.file_url",
                                  request_id=response.request_id)
    return _file_from(data)


def _data(response: Response) -> dict[str, Any]:
    body = response.body
    if not isinstance(body, dict):
        raise ResponseFormatError("Files API answered without a JSON object", request_id=response.request_id)
    if body.get("success") is False:
        raise _files_error(response.status, body, response.request_id)
    data = body.get("data")
    if not isinstance(data, dict):
        raise ResponseFormatError("Files API answer has no data object", request_id=response.request_id)
    return data


def _file_from(data: Mapping[str, Any]) -> UploadedFile:
    size = data.get("file_size")
    return UploadedFile(
        file_id=str(data["file_id"]), file_url=str(data["file_url"]), file_name=_str(data.get("file_name")),
        original_name=_str(data.get("original_name")), file_size=size if isinstance(size, int) else None,
        mime_type=_str(data.get("mime_type")), upload_path=_str(data.get("upload_path")),
        download_url=_str(data.get("download_url")), upload_time=_str(data.get("upload_time")),
        expires_at=_str(data.get("expires_at")), raw=data,
    )  # fmt: skip


def _files_error(status: int, body: Mapping[str, Any], request_id: str | None) -> FilesAPIError:
    code = body.get("code")
    message = str(body.get("msg") or body.get("message") or "the Files API refused the request")
    return FilesAPIError(
        message, status_code=status, code=None if code is None else str(code), request_id=request_id, body=body
    )


def _as_files_error(error: APIStatusError) -> EvolinkError:
    # 401/403 keep their classes: a batch treats them as fatal, whichever host said it.
    if isinstance(error, (AuthenticationError, PermissionDeniedError)):
        return error
    body = error.body if isinstance(error.body, dict) else {}
    if "code" not in body and error.status_code == 413:
        body = {"code": 40001, "msg": error.message}
    if "code" not in body:
        return error
    return _files_error(error.status_code, body, error.request_id)


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
    """Upload local images to the Files API."""

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

    async def list(self, *, page: int = 1, page_size: int = 20) -> list[UploadedFile]:
        """One page of the files this key stored (``GET /api/v1/files/list``), oldest first.

        >>> [f.file_id for f in await client.files.list(page=1, page_size=50)]
        """
        if not isinstance(page, int) or isinstance(page, bool) or page < 1:
            raise ValidationError("page", "must be an integer >= 1")
        if not isinstance(page_size, int) or isinstance(page_size, bool) or not 1 <= page_size <= 100:
            raise ValidationError("page_size", "must be an integer from 1 to 100")
        url = f"{self._transport.config.files_base_url}{_FILES}/list?page={page}&pageSize={page_size}"
        data = _data(await self._call("GET", url, retry_safe=True))
        files = data.get("files", data.get("list", []))
        if not isinstance(files, list):
            raise ResponseFormatError("Files API list answer has no data.files list")
        return [_file_from(f) for f in files if isinstance(f, dict) and _str(f.get("file_id"))]

    async def quota(self) -> dict[str, Any]:
        """This key's storage quota as the Files API reports it (``GET /api/v1/files/quota``).

        >>> (await client.files.quota())["remaining_files"]
        """
        url = f"{self._transport.config.files_base_url}{_FILES}/quota"
        return dict(_data(await self._call("GET", url, retry_safe=True)))

    async def delete(self, file_id: str) -> None:
        """Delete a stored file before it expires (``DELETE /api/v1/files/{file_id}``).

        >>> await client.files.delete(uploaded.file_id)
        """
        url = f"{self._transport.config.files_base_url}{_file_path(file_id)}"
        _data(await self._call("DELETE", url, retry_safe=True))

    async def _call(self, method: str, url: str, *, retry_safe: bool) -> Response:
        try:
            return await self._transport.request(method, url, retry_safe=retry_safe)
        except FilesAPIError:
            raise
        except APIStatusError as exc:
            raise _as_files_error(exc) from None

    @staticmethod
    async def _probe(source: Path | bytes | None, label: str, check_format: bool) -> ImageFormat | None:
        if not check_format or source is None:
            return None
        info = await anyio.to_thread.run_sync(lambda: probe_image(source, field=label))
        if info.format not in UPLOAD_FORMATS:
            allowed = ", ".join(sorted(f.value.upper() for f in UPLOAD_FORMATS))
            raise ValidationError(label, f"the Files API stores {allowed} images, this is {info.format.value.upper()}")
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
                response = await transport.request("POST", url, data=form, retry_safe=False)
                uploaded = _uploaded(response)
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

