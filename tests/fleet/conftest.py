"""A real PostgreSQL for the fleet tests: one throwaway cluster per session, a fresh database per test.

Under pytest-xdist every worker is its own session, so every worker that runs a fleet test starts
its own cluster: a private temporary folder, a private Unix socket, no TCP port (pgcluster.py),
so clusters of parallel workers never meet.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .pgcluster import PgCluster, pg_cluster


@pytest.fixture(scope="session")
def pg() -> Iterator[PgCluster]:
    # Not skipped when PostgreSQL is missing: .ci/run installs it, and a fleet left untested is a failure.
    with pg_cluster() as cluster:
        yield cluster


@pytest.fixture
def journal_url(pg: PgCluster) -> str:
    return pg.create_database()


@pytest.fixture
def own_pg() -> Iterator[PgCluster]:
    """A cluster of the test's own, for a test that restarts the server or kills its sessions."""
    with pg_cluster() as cluster:
        yield cluster
