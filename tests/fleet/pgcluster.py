"""A throwaway PostgreSQL cluster on a Unix socket, for the fleet tests and benchmarks.

The server refuses to run as root, so under root it runs as the ``postgres`` system user; the
data and socket folders are made for that user and the socket is left open to every local user
(trust auth on the local socket only: no TCP listener at all). Every step is bounded in time.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

__all__ = ["PgCluster", "find_bindir", "pg_cluster"]


def find_bindir() -> Path | None:
    """The newest ``.../postgresql/<v>/bin`` with an ``initdb``, or the one on PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path else None


class PgCluster:
    def __init__(self, root: Path, bindir: Path) -> None:
        self.root = root
        self.bindir = bindir
        self.data = root / "data"
        self.socket_dir = root / "sock"
        self.port = 5432

    def _run(self, *argv: str, timeout: float = 60) -> None:
        command = list(argv)
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, timeout=timeout, capture_output=True)

    def start(self) -> None:
        os.chmod(self.root, 0o755)
        self.socket_dir.mkdir(mode=0o777)
        os.chmod(self.socket_dir, 0o777)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
            shutil.chown(self.socket_dir, "postgres")
        user = "postgres" if os.geteuid() == 0 else os.environ.get("USER", "postgres")
        self.user = user
        self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-U", user, "--auth=trust", "-E", "UTF8",
                  "--no-sync")
        self.resume()

    def resume(self) -> None:
        """Start the (initialised) server: at first, or again after ``stop``."""
        options = (f"-c listen_addresses='' -c unix_socket_directories='{self.socket_dir}'"
                   f" -c unix_socket_permissions=0777 -c fsync=off -c max_connections=200 -p {self.port}")
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-o", options, "-w", "-t", "60",
                  "-l", str(self.root / "server.log"), "start", timeout=90)

    def restart(self) -> None:
        """``pg_ctl restart -m fast``: every session is cut, the server is back within seconds."""
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "-t", "60",
                  "-l", str(self.root / "server.log"), "restart", timeout=90)  # fmt: skip

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "-t", "30",
                      "stop", timeout=45)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@/{database}?host={self.socket_dir}&port={self.port}"

    def create_database(self) -> str:
        """A fresh, empty database; returns its URL."""
        name = "fleet_" + uuid.uuid4().hex[:12]
        self._run(str(self.bindir / "createdb"), "-h", str(self.socket_dir), "-p", str(self.port), "-U", self.user,
                  name, timeout=30)
        return self.url(name)


@contextlib.contextmanager
def pg_cluster() -> Iterator[PgCluster]:
    bindir = find_bindir()
    if bindir is None:
        raise RuntimeError("PostgreSQL server binaries not found (apt-get install -y postgresql)")
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # only names the folder, for a reader of /tmp
    root = Path(tempfile.mkdtemp(prefix=f"evolink-pg-{worker}-" if worker else "evolink-pg-"))
    cluster = PgCluster(root, bindir)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
