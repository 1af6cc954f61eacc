"""``evolink batch plan`` of a manifest whose lines break the rules: exit 2 naming the lines, nothing planned."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import asyncpg
import pytest

from evolink_async.cli import main


def _line(key: str, prompt: str = "autumn") -> str:
    return json.dumps({"key": key, "model": "qwen-image-edit", "prompt": prompt,
                       "image_urls": [f"https://images.example.com/{key}.png"]})  # fmt: skip


async def _planned(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        exists = await conn.fetchval("SELECT to_regclass('evolink_entries') IS NOT NULL")
        return int(await conn.fetchval("SELECT count(*) FROM evolink_entries")) if exists else 0
    finally:
        await conn.close()


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ((_line("a") + "\n" + _line("b") + "\n" + _line("a", prompt="winter") + "\n").encode(),
         "line 3: repeats the key 'a' of line 1 with another request"),
        ((_line("a") + "\n").encode() + b'{"key": "b\xfe"}\n', "line 2: is not UTF-8"),
    ],
)
async def test_a_bad_manifest_exits_2_naming_the_line_and_plans_nothing(
    journal_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], body: bytes, expected: str
) -> None:
    manifest = tmp_path / "edits.jsonl"
    manifest.write_bytes(body)
    code = await anyio.to_thread.run_sync(main, ["batch", "plan", str(manifest), "--journal", journal_url])
    assert code == 2
    err = capsys.readouterr().err
    assert expected in err
    assert "Traceback" not in err
    assert await _planned(journal_url) == 0


async def test_a_key_repeated_with_the_same_request_is_planned_once(
    journal_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = tmp_path / "edits.jsonl"
    manifest.write_text("\n".join([_line("a"), _line("b"), _line("a")]) + "\n")
    code = await anyio.to_thread.run_sync(main, ["batch", "plan", str(manifest), "--journal", journal_url, "--json"])
    assert code == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["inputs"] == 2
    assert await _planned(journal_url) == 2
