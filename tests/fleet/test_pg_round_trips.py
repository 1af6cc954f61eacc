"""What one journal call costs on the wire: its own statement, and nothing after it.

asyncpg's pool resets every connection it takes back (advisory unlock, CLOSE ALL, UNLISTEN,
RESET ALL): one more round trip and transaction per journal call. The journal keeps no session
state, so its pool does without it.
"""

from __future__ import annotations

import asyncpg

from evolink_async.batch import ManifestInput, PgJournal


async def _last_statement(url: str, pid: int) -> tuple[str, str]:
    """What the server last ran for the backend ``pid``, and its state (read from another session)."""
    connection = await asyncpg.connect(url)
    try:
        row = await connection.fetchrow("SELECT query, state FROM pg_stat_activity WHERE pid = $1", pid)
    finally:
        await connection.close()
    assert row is not None
    return row["query"], row["state"]


async def test_a_journal_call_is_its_statement_alone_and_an_open_transaction_still_ends(journal_url: str) -> None:
    async with PgJournal(journal_url, connections=1) as journal:
        await journal.plan([ManifestInput(key="k0", model="qwen-image-edit", prompt="autumn",
                                          image_urls=("https://img.example.com/0.png",))])  # fmt: skip
        pid = await journal.run(lambda c: c.fetchval("SELECT pg_backend_pid()"))
        entry = await journal.get("k0")
        assert entry is not None
        query, state = await _last_statement(journal_url, pid)
        # The read was the last thing its connection sent: no reset went after it.
        assert "evolink_entries" in query
        assert "RESET ALL" not in query
        assert state == "idle"

        async def leave_open(connection: asyncpg.Connection) -> int:
            await connection.execute("BEGIN")
            return int(await connection.fetchval("SELECT 1"))

        await journal.run(leave_open)
        query, state = await _last_statement(journal_url, pid)
        # A transaction a call left open is still ended when the pool takes its connection back.
        assert (query, state) == ("ROLLBACK", "idle")
