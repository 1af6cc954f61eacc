"""The Files API app (API.md A6): uploads as base64, multipart stream or URL; list, quota, delete.

Answers use the Files API envelope: ``{"success": true, "code": 200, "msg": "ok", "data": ...}``
or ``{"success": false, "code": <int>, "msg": ...}``. The quota answer is ``used_files``,
``max_files``, ``remain_files``, ``user_group``; the list answer ``files[]`` and ``total`` (with
``page`` and ``pageSize``, at most 100); a delete answers the bare envelope, no ``data`` (Evolink's
own client checks only ``success``, so a client must not need more). Multipart fields are read in
both spellings, ``upload_path``/``file_name`` (the docs) and ``uploadPath``/``fileName`` (Evolink's
client). A6 leaves the HTTP statuses and the codes other than 40001-40004/50001 undocumented; the
sandbox answers with HTTP status ``code // 100`` and uses 40000 (bad request), 40100 (bad key),
40400 (no such file). Downloads (``file_url``, ``download_url``) need no key, like the real CDN
links. tests/contract/ holds every one of these facts as data, and the known differences.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from typing import Any

import aiohttp
from aiohttp import web

from .._http import Handler, bearer_key, is_loopback_url, json_response, request_id_middleware
from .._state import SandboxState
from ._files import FileError, StoredFile

__all__ = ["build_files_app"]

PREFIX = "/api/v1/files"
_DATA_URL = re.compile(r"^data:[^,]*;base64,", re.IGNORECASE)
_MAX_PAGE_SIZE = 100
_FETCH_TIMEOUT = 30.0


def _ok(data: Any) -> web.Response:
    return json_response({"success": True, "code": 200, "msg": "ok", "data": data})


def _failure(error: FileError) -> web.Response:
    return json_response({"success": False, "code": error.code, "msg": error.msg}, status=error.http_status)


def _http_error(exc: web.HTTPException) -> web.Response:
    if exc.status == 413:
        return _failure(FileError(40001, "file too large"))
    return _failure(FileError(exc.status * 100, exc.reason))


@web.middleware
async def _file_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except FileError as exc:
        return _failure(exc)


class _Files:
    def __init__(self, state: SandboxState) -> None:
        self.state = state
        self.store = state.files

    def _key(self, request: web.Request) -> str:
        key = bearer_key(request)
        if key is None or key not in self.state.config.api_keys:
            raise FileError(40100, "invalid or missing API key")
        return key

    def _describe(self, stored: StoredFile) -> dict[str, Any]:
        base = self.state.files_base_url
        ttl = self.state.config.real(self.state.config.file_ttl)
        return {
            "file_id": stored.file_id,
            "file_name": stored.file_name,
            "original_name": stored.original_name,
            "file_size": stored.file_size,
            "mime_type": stored.mime_type,
            "upload_path": stored.upload_path,
            "file_url": f"{base}/files/{stored.file_id}/{stored.file_name}",
            "download_url": f"{base}{PREFIX}/download/{stored.file_id}",
            "upload_time": self.store.iso(stored.uploaded),
            "expires_at": self.store.iso(stored.uploaded + ttl),
        }

    def _store(self, key: str, data: bytes, *, file_name: Any, original_name: Any, upload_path: Any) -> web.Response:
        now = self.state.clock()
        stored = self.store.add(
            api_key=key,
            data=data,
            file_name=file_name if isinstance(file_name, str) else None,
            original_name=original_name if isinstance(original_name, str) else None,
            upload_path=upload_path if isinstance(upload_path, str) else None,
            wall=time.time(),
            expires=now + self.state.config.real(self.state.config.file_ttl),
            now=now,
        )
        self.state.ledger.record_file_stored(key, sum(1 for _ in self.store.owned(key, now)))
        return _ok(self._describe(stored))

    @staticmethod
    async def _json(request: web.Request) -> dict[str, Any]:
        try:
            body = json.loads(await request.read())
        except ValueError:
            raise FileError(40000, "the body must be JSON") from None
        if not isinstance(body, dict):
            raise FileError(40000, "the body must be a JSON object")
        return body

    async def upload_base64(self, request: web.Request) -> web.StreamResponse:
        key = self._key(request)
        body = await self._json(request)
        encoded = body.get("base64_data")
        if not isinstance(encoded, str) or not encoded:
            raise FileError(40000, "base64_data is required")
        try:
            data = base64.b64decode("".join(_DATA_URL.sub("", encoded.strip()).split()), validate=True)
        except (binascii.Error, ValueError):
            raise FileError(40000, "base64_data is not valid base64") from None
        name = body.get("file_name")
        return self._store(key, data, file_name=name, original_name=name, upload_path=body.get("upload_path"))

    async def upload_stream(self, request: web.Request) -> web.StreamResponse:
        key = self._key(request)
        try:
            reader = await request.multipart()
        except (AssertionError, ValueError, KeyError):
            raise FileError(40000, "a multipart/form-data body is required") from None
        fields: dict[str, str] = {}
        data: bytes | None = None
        original: str | None = None
        while (part := await reader.next()) is not None:
            if not isinstance(part, aiohttp.BodyPartReader):
                continue
            if part.name == "file":
                original = part.filename
                data = await self._read_limited(part)
            elif part.name:
                fields[part.name] = (await part.read(decode=True)).decode("utf-8", "replace")
        if data is None:
            raise FileError(40000, "the multipart field 'file' is required")
        return self._store(
            key,
            data,
            file_name=fields.get("file_name", fields.get("fileName")),
            original_name=original,
            upload_path=fields.get("upload_path", fields.get("uploadPath")),
        )

    async def _read_limited(self, part: aiohttp.BodyPartReader) -> bytes:
        chunks, size = [], 0
        while chunk := await part.read_chunk(64 * 1024):
            size += len(chunk)
            if size > self.store.max_bytes:
                raise FileError(40001, f"file too large: the limit is {self.store.max_bytes} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    async def upload_url(self, request: web.Request) -> web.StreamResponse:
        key = self._key(request)
        body = await self._json(request)
        url = body.get("file_url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise FileError(40000, "file_url must be an http(s) URL")
        data = await self._download(url)
        name = body.get("file_name") or url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
        return self._store(key, data, file_name=name, original_name=name, upload_path=body.get("upload_path"))

    async def _download(self, url: str) -> bytes:
        own, missing = await self.state.resolve_input(url)
        if own is not None:
            return own
        if missing or not is_loopback_url(url):
            # Nothing outside this machine may be contacted: other hosts fail like a dead link.
            raise FileError(40004, "URL download failed (the sandbox only fetches from loopback hosts)")
        timeout = aiohttp.ClientTimeout(total=_FETCH_TIMEOUT)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as response:
                if response.status != 200:
                    raise FileError(40004, f"URL download failed: HTTP {response.status}")
                data = await response.content.read(self.store.max_bytes + 1)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise FileError(40004, f"URL download failed: {type(exc).__name__}") from None
        if len(data) > self.store.max_bytes:
            raise FileError(40001, f"file too large: the limit is {self.store.max_bytes} bytes")
        return data

    async def list_files(self, request: web.Request) -> web.StreamResponse:
        key = self._key(request)
        try:
            page = max(1, int(request.query.get("page", "1")))
            size = min(_MAX_PAGE_SIZE, max(1, int(request.query.get("pageSize", "20"))))
        except ValueError:
            raise FileError(40000, "page and pageSize must be integers") from None
        owned = sorted(self.store.owned(key, self.state.clock()), key=lambda f: (f.uploaded, f.file_id))
        chunk = owned[(page - 1) * size : page * size]
        return _ok({"files": [self._describe(f) for f in chunk], "total": len(owned), "page": page, "pageSize": size})

    async def quota(self, request: web.Request) -> web.StreamResponse:
        key = self._key(request)
        owned = list(self.store.owned(key, self.state.clock()))
        return _ok(
            {
                "used_files": len(owned),
                "max_files": self.store.max_files,
                "remain_files": max(0, self.store.max_files - len(owned)),
                "user_group": self.state.config.user_group,
            }
        )

    async def delete(self, request: web.Request) -> web.StreamResponse:
        key = self._key(request)
        file_id = request.match_info["file_id"]
        if not self.store.delete(key, file_id, self.state.clock()):
            raise FileError(40400, f"file {file_id} not found")
        return json_response({"success": True, "code": 200, "msg": "ok"})

    async def download(self, request: web.Request) -> web.StreamResponse:
        stored = self.store.get(request.match_info["file_id"], self.state.clock())
        name = request.match_info.get("name")
        if stored is None or (name is not None and name != stored.file_name):
            raise FileError(40400, "file not found or expired")
        return web.Response(body=stored.data, content_type=stored.mime_type)


def build_files_app(state: SandboxState) -> web.Application:
    files = _Files(state)
    # Room for a maximal file in base64 plus the JSON around it; a larger body is a 40001.
    max_body = state.config.max_upload_bytes * 4 // 3 + 64 * 1024
    app = web.Application(
        client_max_size=max_body,
        middlewares=[request_id_middleware(state.ledger, on_http_error=_http_error), _file_errors],
    )
    app.router.add_post(f"{PREFIX}/upload/base64", files.upload_base64)
    app.router.add_post(f"{PREFIX}/upload/stream", files.upload_stream)
    app.router.add_post(f"{PREFIX}/upload/url", files.upload_url)
    app.router.add_get(f"{PREFIX}/list", files.list_files)
    app.router.add_get(f"{PREFIX}/quota", files.quota)
    app.router.add_get(f"{PREFIX}/download/{{file_id}}", files.download)
    app.router.add_delete(f"{PREFIX}/{{file_id}}", files.delete)
    app.router.add_get("/files/{file_id}/{name}", files.download)
    return app
