"""``evolink.uploads.alive``: up with each stored upload, down with each deletion."""

from __future__ import annotations

from pathlib import Path

from evolink_async import EvolinkClient
from evolink_async.sandbox import Sandbox
from tests.helpers.images import write_png

from .conftest import Otel


async def test_uploads_alive_follows_uploads_and_deletions(evolink_sandbox: Sandbox, otel: Otel, tmp_path: Path) -> None:
    async with EvolinkClient(
        evolink_sandbox.api_key, base_url=evolink_sandbox.base_url, files_base_url=evolink_sandbox.files_base_url,
        tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider,
    ) as client:
        first = await client.files.upload(write_png(tmp_path / "a.png"))
        second = await client.files.upload(write_png(tmp_path / "b.png", shade=10))
        assert otel.total("evolink.uploads.alive") == 2 == evolink_sandbox.ledger.files_stored
        await client.files.delete(first.file_id)
        assert otel.total("evolink.uploads.alive") == 1
        await client.files.delete(second.file_id)
    assert otel.total("evolink.uploads.alive") == 0
    spans = {s.name for s in otel.spans()}
    assert {"POST /api/v1/files/upload/stream", "DELETE /api/v1/files/{file_id}"} <= spans
