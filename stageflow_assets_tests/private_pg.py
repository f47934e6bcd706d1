"""A private PostgreSQL cluster for tests that stop or restart the server: never the shared one.

`initdb` and `pg_ctl` run as the `postgres` OS user (`runuser`, so the test runs as root) on a
data directory under a temporary directory owned by that user, listening on 127.0.0.1 on a free
port with its socket in that directory, trust authentication.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path


def _bindir() -> Path | None:
    """The directory with initdb, pg_ctl and postgres (Debian keeps them out of PATH)."""
    for name in ("pg_ctl", "initdb"):
        found = shutil.which(name)
        if found and (Path(found).resolve().parent / "postgres").exists():
            return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name))
    return Path(versions[-1]) if versions else None


def unavailable() -> str | None:
    """Why a private cluster cannot be started here, or None."""
    if os.geteuid() != 0:
        return "a private PostgreSQL cluster runs as the postgres user through runuser: run the tests as root"
    if shutil.which("runuser") is None:
        return "runuser (util-linux) is not installed"
    bindir = _bindir()
    if bindir is None or not all((bindir / n).exists() for n in ("initdb", "pg_ctl", "postgres")):
        return "PostgreSQL's server binaries (initdb, pg_ctl, postgres) are not installed"
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return "there is no postgres OS user to run the server as"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrivateCluster:
    def __init__(self) -> None:
        self.bindir = _bindir()
        self.base = Path(tempfile.mkdtemp(prefix="stageflow-pg-"))
        user = pwd.getpwnam("postgres")
        os.chown(self.base, user.pw_uid, user.pw_gid)
        self.data = self.base / "data"
        self.log = self.base / "server.log"
        self.port = _free_port()
        self.running = False

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/postgres"

    def _as_postgres(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(["runuser", "-u", "postgres", "--", *args], cwd=self.base, capture_output=True,
                              text=True, timeout=timeout, check=True)

    def _pg_ctl(self, *args: str) -> None:
        self._as_postgres(str(self.bindir / "pg_ctl"), "-D", str(self.data), *args)

    def start(self) -> None:
        self._as_postgres(str(self.bindir / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
                          "-E", "UTF8", "--no-instructions")
        self.running = True
        self.start_server()

    def start_server(self) -> None:
        # the log file also on restarts: a server writing to pg_ctl's stdout keeps the pipe open
        self._pg_ctl("-o", f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1",
                     "-l", str(self.log), "-w", "-t", "60", "start")

    def stop_server(self) -> None:
        """A fast shutdown: clients' connections are ended, new ones refused."""
        self._pg_ctl("-m", "fast", "-w", "-t", "60", "stop")

    def restart(self) -> None:
        """A fast restart: clients' connections are ended, the server comes back on the same port."""
        self._pg_ctl("-m", "fast", "-l", str(self.log), "-w", "-t", "60", "restart")

    def stop(self) -> None:
        """Stop (immediate) and remove everything, whatever state it is in."""
        if self.running and (self.data / "postmaster.pid").exists():
            subprocess.run(["runuser", "-u", "postgres", "--", str(self.bindir / "pg_ctl"), "-D", str(self.data),
                            "-m", "immediate", "-w", "-t", "30", "stop"], capture_output=True, timeout=60)
        self.running = False
        shutil.rmtree(self.base, ignore_errors=True)
