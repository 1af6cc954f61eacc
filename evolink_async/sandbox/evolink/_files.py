"""The Files API store (API.md A6): uploaded files kept in memory, keyed by file id.

Nothing touches the disk, and a name from outside is only ever a label: it is reduced to
``[A-Za-z0-9._-]`` characters for the served URL, so no name can escape or collide with
anything. Files expire ``file_ttl`` API seconds after upload (72 h, time-scaled) and are then
gone from downloads, listings and the quota.
"""

from __future__ import annotations

import datetime
import re
import secrets
from collections.abc import Iterator
from urllib.parse import unquote

import attrs

from ._media import KNOWN_SUFFIXES, REFUSED_IMAGE_TYPES, extension_for, sniff, storable

__all__ = ["FileError", "FileStore", "StoredFile", "sanitize_name", "sanitize_path"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_MAX_NAME = 128


class FileError(Exception):
    """A Files API error: ``code`` as in A6 (40001 too large, 40002 type, 40003 quota, ...)."""

    def __init__(self, code: int, msg: str) -> None:
        self.code = code
        self.msg = msg
        super().__init__(f"{code}: {msg}")

    @property
    def http_status(self) -> int:
        # The real HTTP statuses are undocumented; the code's leading digits are the natural guess.
        return self.code // 100


def sanitize_name(name: str | None, *, mime: str, fallback: str) -> str:
    """A safe file name: last path component, ``[A-Za-z0-9._-]`` only, no leading dot, with an extension."""
    # Multipart file names may arrive percent-encoded ("..%2Fetc%2Fpasswd"): decode, then cut.
    base = unquote(name or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = _UNSAFE.sub("_", base).lstrip(".")[:_MAX_NAME]
    if not base.strip("_"):
        base = fallback
    if not base.lower().endswith(KNOWN_SUFFIXES):
        base += extension_for(mime)
    return base


def sanitize_path(path: str | None) -> str:
    """A safe ``upload_path``: segments of ``[A-Za-z0-9._-]``, no ``.``/``..``, at most 8 deep."""
    segments = []
    for raw in unquote(path or "").replace("\\", "/").split("/"):
        segment = _UNSAFE.sub("_", raw).strip(".")
        if segment:
            segments.append(segment[:64])
    return "/".join(segments[:8])


def _iso(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@attrs.frozen(kw_only=True)
class StoredFile:
    file_id: str
    api_key: str = attrs.field(repr=False)
    file_name: str
    original_name: str
    mime_type: str
    upload_path: str
    data: bytes = attrs.field(repr=False)
    uploaded: float  # wall-clock epoch, for the ISO times in answers
    expires: float  # monotonic, for the expiry check

    @property
    def file_size(self) -> int:
        return len(self.data)


class FileStore:
    """Uploaded files of all keys, with a per-key file quota and a size limit."""

    def __init__(self, *, max_bytes: int, max_files: int) -> None:
        self.max_bytes = max_bytes
        self.max_files = max_files
        self._files: dict[str, StoredFile] = {}

    def _purge(self, now: float) -> None:
        for file_id in [f.file_id for f in self._files.values() if f.expires <= now]:
            del self._files[file_id]

    def owned(self, api_key: str, now: float) -> Iterator[StoredFile]:
        self._purge(now)
        return (f for f in self._files.values() if f.api_key == api_key)

    def get(self, file_id: str, now: float) -> StoredFile | None:
        stored = self._files.get(file_id)
        if stored is None or stored.expires <= now:
            return None
        return stored

    def add(
        self,
        *,
        api_key: str,
        data: bytes,
        file_name: str | None,
        original_name: str | None,
        upload_path: str | None,
        wall: float,
        expires: float,
        now: float,
    ) -> StoredFile:
        """Check and store one upload; raises :class:`FileError` (40001/40002/40003)."""
        if len(data) > self.max_bytes:
            raise FileError(40001, f"file too large: {len(data)} bytes, the limit is {self.max_bytes}")
        mime = sniff(data)
        if mime is None or not storable(mime):
            # Decided by the bytes, not the name: a BMP called cat.png is still refused.
            what = f"{mime.split('/')[1].upper()} images are" if mime in REFUSED_IMAGE_TYPES else "this content is"
            raise FileError(
                40002, f"file type not allowed: {what} not stored (images: jpeg, png, gif, webp; audio; video)"
            )
        if sum(1 for _ in self.owned(api_key, now)) >= self.max_files:
            raise FileError(40003, f"file quota exceeded: at most {self.max_files} files")
        file_id = "file_" + secrets.token_hex(8)
        name = sanitize_name(file_name or original_name, mime=mime, fallback=file_id)
        stored = StoredFile(
            file_id=file_id,
            api_key=api_key,
            file_name=name,
            original_name=sanitize_name(original_name or file_name, mime=mime, fallback=name),
            mime_type=mime,
            upload_path=sanitize_path(upload_path),
            data=data,
            uploaded=wall,
            expires=expires,
        )
        self._files[file_id] = stored
        return stored

    def delete(self, api_key: str, file_id: str, now: float) -> bool:
        stored = self.get(file_id, now)
        if stored is None or stored.api_key != api_key:
            return False
        del self._files[file_id]
        return True

    @staticmethod
    def iso(epoch: float) -> str:
        return _iso(epoch)
