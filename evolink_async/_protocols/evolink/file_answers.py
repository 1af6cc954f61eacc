"""What the Files API answers (API.md A6), as typed values: a stored file, a page of files, the quota.

The parsers are liberal in what they accept: the real service and Evolink's own client disagree on
some spellings (``remain_files`` in the real quota answer, ``remaining_files`` in older sandboxes;
``pageSize`` or ``page_size``), and unknown fields are kept in ``raw``. An envelope that says
``"success": false`` is a :class:`~evolink_async.FilesAPIError` whatever its HTTP status.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import attrs

from ..._core.transport import Response
from ...errors import FilesAPIError, ResponseFormatError

__all__ = ["FilesPage", "FilesQuota", "UploadedFile", "files_error", "page_from", "quota_from", "uploaded_from"]


@attrs.frozen(kw_only=True)
class UploadedFile:
    """A stored file; put ``file_url`` in a request's ``image_urls``. Files expire after 72 h.

    A file from ``files.list`` may lack some fields (the listing need not repeat ``file_url``:
    then it is ``""``).

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


@attrs.frozen(kw_only=True)
class FilesPage:
    """One page of ``files.list``: the files on it and how many the key stores in all.

    Iterating a page iterates its files.

    >>> page = await client.files.list(page=1, page_size=100)
    >>> page.total, [f.file_id for f in page]
    """

    files: tuple[UploadedFile, ...]
    total: int
    page: int
    page_size: int

    def __iter__(self) -> Iterator[UploadedFile]:
        return iter(self.files)

    def __len__(self) -> int:
        return len(self.files)

    @property
    def has_more(self) -> bool:
        """Whether a later page holds more files."""
        return self.page * self.page_size < self.total


@attrs.frozen(kw_only=True)
class FilesQuota:
    """The key's file quota (``GET /api/v1/files/quota``): 100 files by default, 500 for VIP keys.

    Stored files count until they are deleted or expire (72 h).

    >>> quota = await client.files.quota()
    >>> quota.remain_files, quota.max_files, quota.user_group
    """

    used_files: int
    max_files: int
    remain_files: int
    user_group: str | None = None
    raw: Mapping[str, Any] = attrs.field(factory=dict, eq=False, repr=False, hash=False)


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _count(value: object) -> int | None:
    """A non-negative integer field (``12`` or ``"12"``), or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    return value if isinstance(value, int) and value >= 0 else None


def files_error(
    status: int, body: Mapping[str, Any], request_id: str | None, *, url: str | None = None
) -> FilesAPIError:
    code = body.get("code")
    message = str(body.get("msg") or body.get("message") or "the Files API refused the request")
    return FilesAPIError(
        message, status_code=status, code=None if code is None else str(code), request_id=request_id, body=body,
        url=url,
    )


def envelope(response: Response, *, need_data: bool = True) -> dict[str, Any]:
    """The ``data`` of a successful answer (``{}`` when absent and not needed); raises on a failure."""
    body = response.body
    if not isinstance(body, dict):
        raise ResponseFormatError("Files API answered without a JSON object", request_id=response.request_id)
    if body.get("success") is False:  # an error envelope, also with a 2xx status
        raise files_error(response.status, body, response.request_id)
    data = body.get("data")
    if isinstance(data, dict):
        return data
    if need_data:
        raise ResponseFormatError("Files API answer has no data object", request_id=response.request_id)
    return {}


def file_from(data: Mapping[str, Any]) -> UploadedFile:
    return UploadedFile(
        file_id=str(data["file_id"]), file_url=_str(data.get("file_url")) or "", file_name=_str(data.get("file_name")),
        original_name=_str(data.get("original_name")), file_size=_count(data.get("file_size")),
        mime_type=_str(data.get("mime_type")), upload_path=_str(data.get("upload_path")),
        download_url=_str(data.get("download_url")), upload_time=_str(data.get("upload_time")),
        expires_at=_str(data.get("expires_at")), raw=data,
    )  # fmt: skip


def uploaded_from(response: Response) -> UploadedFile:
    """The stored file of an upload answer; it must name ``file_id`` and ``file_url``."""
    data = envelope(response)
    if not _str(data.get("file_url")) or not _str(data.get("file_id")):
        raise ResponseFormatError("Files API upload answer has no data.file_id / data.file_url",
                                  request_id=response.request_id)  # fmt: skip
    return file_from(data)


def page_from(response: Response, *, page: int, page_size: int) -> FilesPage:
    """A list answer: ``data.files`` (or ``data.list``) and ``data.total``; absent paging echoes the request."""
    data = envelope(response)
    files = data.get("files", data.get("list", []))
    if not isinstance(files, list):
        raise ResponseFormatError("Files API list answer has no data.files list", request_id=response.request_id)
    items = tuple(file_from(f) for f in files if isinstance(f, dict) and _str(f.get("file_id")))
    total = _count(data.get("total"))
    size = _count(data.get("pageSize", data.get("page_size")))
    return FilesPage(
        files=items,
        # Without a total, the page itself is the only count known: at least what came back.
        total=total if total is not None else (page - 1) * page_size + len(items),
        page=_count(data.get("page")) or page,
        page_size=size or page_size,
    )


def quota_from(response: Response) -> FilesQuota:
    """A quota answer. ``remain_files`` (the real spelling) or ``remaining_files``; else max - used."""
    data = envelope(response)
    used, most = _count(data.get("used_files")), _count(data.get("max_files"))
    if used is None or most is None:
        raise ResponseFormatError("Files API quota answer has no data.used_files / data.max_files",
                                  request_id=response.request_id)  # fmt: skip
    remain = _count(data.get("remain_files"))
    if remain is None:
        remain = _count(data.get("remaining_files"))
    if remain is None:
        remain = max(0, most - used)
    return FilesQuota(used_files=used, max_files=most, remain_files=remain, user_group=_str(data.get("user_group")),
                      raw=data)  # fmt: skip
