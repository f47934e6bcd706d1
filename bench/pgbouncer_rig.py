"""A private PgBouncer in front of the shared PostgreSQL (127.0.0.1:5432), for benchmarks only.

Transaction pooling: a server connection serves a client for one transaction, then goes back to
the pool instead of ending, so a client that connects once per operation (Dagster's PostgreSQL
storage) no longer makes the server start a backend each time. (Session pooling stalled: the CLIs'
and workers' own pooled connections pinned every server connection.) Dagster writes in
autocommit and uses no server-side prepared statements; LISTEN, which only the webserver uses,
would need session pooling.
PgBouncer refuses to run as root: it runs as the `postgres` user (`runuser`), on a free port.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def unavailable() -> str | None:
    if shutil.which("pgbouncer") is None and not Path("/usr/sbin/pgbouncer").exists():
        return "pgbouncer is not installed (Debian: apt-get install pgbouncer)"
    if os.geteuid() != 0 or shutil.which("runuser") is None:
        return "PgBouncer runs as the postgres user through runuser: run as root"
    return None


class PgBouncer:
    def __init__(self, upstream_port: int = 5432, pool_size: int = 20) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="stageflow-pgbouncer-"))
        shutil.chown(self.dir, "postgres")
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        (self.dir / "users.txt").write_text('"postgres" ""\n')
        (self.dir / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"* = host=127.0.0.1 port={upstream_port}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\nunix_socket_dir =\n"
            f"auth_type = trust\nauth_file = {self.dir / 'users.txt'}\n"
            f"pool_mode = transaction\nmax_client_conn = 1000\ndefault_pool_size = {pool_size}\n"
            f"logfile = {self.dir / 'pgbouncer.log'}\npidfile = {self.dir / 'pgbouncer.pid'}\n"
            "ignore_startup_parameters = extra_float_digits,options\n")
        for path in self.dir.iterdir():
            shutil.chown(path, "postgres")
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
        self.proc = subprocess.Popen(["runuser", "-u", "postgres", "--", binary, str(self.dir / "pgbouncer.ini")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"pgbouncer did not listen on {self.port}: {(self.dir / 'pgbouncer.log').read_text()[-2000:]}")

    def url(self, database: str) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            self.proc.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)
