"""Dagster's local instance storage, tuned for short processes that run a few runs each.

A `stageflow` CLI process opens the instance, runs a video's 4 runs in-process and exits.
Two of Dagster's local defaults cost it more than the stages' own work on a short video
(bench/subtitles_overhead.py, 60 s of speech on the 2-core reference machine):

* SQLite storage (`PooledSqliteStorage`): Dagster's SQLite storages open a new SQLAlchemy
  engine and connection for every statement batch (`NullPool`). In WAL mode, closing the
  last connection to a database checkpoints its write-ahead log into the database file, so
  each of the ~120 events a video's runs write cost an open, a checkpoint and a close, and
  each new run's database was created through alembic (~0.1 s). Here each database file has
  one pooled engine for the process, and a run's database is a copy of an empty one made
  once by Dagster's own code: the same files, tables and migrations, so a DAGSTER_HOME
  written by either storage opens with the other. ~1 s less per video.
  The webserver follows a running run by watching that run's own `<run_id>.db` for
  modification, so after each write to a run's database that file is touched (closing the
  connection used to change it by checkpointing): the UI stays live. WAL databases commit
  with `synchronous=NORMAL` (synced at checkpoints, not at every commit).
* Compute logs (`RedirectComputeLogManager`): Dagster's `LocalComputeLogManager` captures a
  step's stdout/stderr into files for the UI and also mirrors them to the terminal through a
  `tail -F` process plus a Python watcher process per stream: 4 processes per step. This one
  writes the same files (the UI shows them alike) without the terminal mirror: the CLI
  prints its own lines, and `dagster dev` shows the logs in the UI. ~0.3 s less per video.

Both take DAGSTER_HOME as `base_dir` and keep Dagster's layout under it (history/,
schedules/, storage/). Configured in dagster.yaml.
"""

from __future__ import annotations

import atexit
import os
import sys
import shutil
import tempfile
import threading
import weakref
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager

import sqlalchemy as db
from dagster._core.execution.compute_logs import redirect_to_file
from dagster._core.instance.ref import compute_logs_directory
from dagster._core.storage.compute_log_manager import CapturedLogContext, ComputeIOType
from dagster._core.storage.event_log.sqlite.sqlite_event_log import INDEX_SHARD_NAME, SqliteEventLogStorage
from dagster._core.storage.local_compute_log_manager import IO_TYPE_EXTENSION, LocalComputeLogManager
from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage
from dagster._core.storage.schedules.sqlite.sqlite_schedule_storage import SqliteScheduleStorage
from dagster._core.storage.sqlite import create_db_conn_string
from dagster._core.storage.sqlite_storage import (
    DagsterSqliteStorage,
    _event_logs_directory,
    _runs_directory,
    _schedule_directory,
)
from dagster._serdes import ConfigurableClassData
from dagster._utils import ensure_file, mkdir_p, touch_file
from dagster.version import __version__ as dagster_version
from sqlalchemy.engine import Connection, Engine

SQLITE_BUSY_TIMEOUT_SECONDS = 30  # as Dagster's own SQLite storages wait for a lock
MAX_OPEN_RUN_SHARDS = 16  # a webserver reads many runs' shards; keep the recent ones open


class _Engines:
    """One pooled engine per database URL, per process (a forked child opens its own)."""

    def __init__(self, max_engines: int | None = None) -> None:
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        self._pid = os.getpid()
        self._max = max_engines
        self._lock = threading.Lock()
        _OPEN.add(self)

    def _forget_inherited(self) -> None:
        if self._pid != os.getpid():
            # connections inherited through fork belong to the parent: never use or close them
            # (closing one could checkpoint and remove a WAL the parent is writing)
            for engine in self._engines.values():
                engine.dispose(close=False)
            self._engines.clear()
            self._pid = os.getpid()

    def get(self, url: str) -> Engine:
        with self._lock:
            self._forget_inherited()
            engine = self._engines.get(url)
            if engine is None:
                engine = db.create_engine(
                    url,
                    poolclass=db.pool.QueuePool,
                    pool_size=2,
                    max_overflow=8,
                    connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
                )
                db.event.listen(engine, "connect", _sync_wal_normally)
                self._engines[url] = engine
                if self._max is not None and len(self._engines) > self._max:
                    _, oldest = self._engines.popitem(last=False)
                    oldest.dispose()
            else:
                self._engines.move_to_end(url)
            return engine

    def dispose(self) -> None:
        with self._lock:
            self._forget_inherited()
            for engine in self._engines.values():
                engine.dispose()
            self._engines.clear()


_OPEN: weakref.WeakSet[_Engines] = weakref.WeakSet()


def _sync_wal_normally(dbapi_connection, _record) -> None:
    """`synchronous=NORMAL` on a WAL database: commits stop waiting for the disk.

    Dagster's databases are in WAL mode, where SQLite's default (FULL) syncs the log at every
    commit: ~120 events per video, each one to three commits. NORMAL syncs at checkpoints only;
    the database stays consistent, and what a power cut can lose is the last transactions
    before it (a process being killed loses nothing). A database in another journal mode
    keeps SQLite's default.
    """
    cursor = dbapi_connection.cursor()
    try:
        if cursor.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
            cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


@atexit.register
def close_connections() -> None:
    """Close this process's pooled connections: at exit, before a fork, at the end of a forked run.

    Closing checkpoints each WAL into its database file and removes the -wal/-shm files.
    """
    for engines in list(_OPEN):
        engines.dispose()


class _PooledConnect:
    """`connect()` for Dagster's single-file SQLite storages (runs.db, schedules.db)."""

    _conn_string: str
    _db_name: str  # runs / schedules
    _tables: tuple[str, ...]  # what Dagster's `from_local` would create if missing

    @classmethod
    def from_local(cls, base_dir: str, inst_data: ConfigurableClassData | None = None):
        """Dagster's `from_local`, without its alembic look-up when the database is set up.

        Dagster's checks the stamped revision against alembic's head, which parses every
        migration script (~25 ms per database per process), and only acts when either is
        missing. A database with a stamped revision and its tables is opened as it is;
        anything else goes through Dagster's own code.
        """
        path = os.path.join(base_dir, f"{cls._db_name}.db")
        if os.path.isfile(path) and _is_set_up(path, cls._tables):
            return cls(create_db_conn_string(base_dir, cls._db_name), inst_data)
        return super().from_local(base_dir, inst_data)  # type: ignore[misc]

    def __init__(self, *args, **kwargs) -> None:
        self._engines = _Engines()
        super().__init__(*args, **kwargs)

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        with self._engines.get(self._conn_string).connect() as conn:
            with conn.begin():
                yield conn

    def dispose(self) -> None:
        super().dispose()  # type: ignore[misc]
        self._engines.dispose()


def _is_set_up(path: str, tables: tuple[str, ...]) -> bool:
    import sqlite3

    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=SQLITE_BUSY_TIMEOUT_SECONDS)) as conn:
            present = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if not {"alembic_version", *tables} <= present:
                return False
            return conn.execute("SELECT version_num FROM alembic_version").fetchone() is not None
    except sqlite3.Error:
        return False


class PooledSqliteRunStorage(_PooledConnect, SqliteRunStorage):
    _db_name = "runs"
    _tables = ("runs", "instance_info")


class PooledSqliteScheduleStorage(_PooledConnect, SqliteScheduleStorage):
    _db_name = "schedules"
    _tables = ("jobs",)


class PooledSqliteEventLogStorage(SqliteEventLogStorage):
    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        self._engines = _Engines(max_engines=MAX_OPEN_RUN_SHARDS + 1)
        super().__init__(base_dir, inst_data)
        self._template = os.path.join(self._base_dir, f".empty-run-shard-{dagster_version}.sqlite")
        if not os.path.exists(self._template):
            self._build_template()

    def _build_template(self) -> None:
        """An empty run database at the current schema, made by Dagster's own `_initdb`."""
        building = tempfile.mkdtemp(prefix=".empty-run-shard-", dir=self._base_dir)
        try:
            engine = db.create_engine(create_db_conn_string(building, "empty"))
            try:
                self._initdb(engine)
            finally:
                engine.dispose()  # checkpoints the WAL: the whole database is in the one file
            os.replace(os.path.join(building, "empty.db"), self._template)
        finally:
            shutil.rmtree(building, ignore_errors=True)

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        with self._db_lock:
            if shard not in self._initialized_dbs and self._create_from_template(shard):
                self._initialized_dbs.add(shard)
            engine = self._engines.get(self.conn_string_for_shard(shard))
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn:
                with conn.begin():
                    yield conn
                if shard != INDEX_SHARD_NAME and _wrote(conn):
                    _touch(self.path_for_shard(shard))

    def _create_from_template(self, shard: str) -> bool:
        """Create a new run's database as a copy of an empty one at the current schema.

        Dagster creates each run's database with SQLAlchemy's `create_all` and stamps it with
        alembic, which parses every migration script: ~0.1 s per run. The empty database it
        produces is the same every time for a Dagster version, so it is made once (by that
        same code, `_initdb`, when the storage opens without one) and copied. False if the
        shard exists: then `_initdb` checks it as usual.
        """
        target = self.path_for_shard(shard)
        if shard == INDEX_SHARD_NAME or os.path.exists(target):
            return False
        if not os.path.exists(self._template):  # removed since start-up
            self._build_template()
        partial = f"{target}.{os.getpid()}.{threading.get_ident()}.tmp"
        shutil.copyfile(self._template, partial)
        try:
            os.link(partial, target)  # never replaces a database another process just created
        except FileExistsError:
            return False
        finally:
            os.unlink(partial)
        return True

    def has_table(self, table_name: str) -> bool:
        engine = self._engines.get(self.conn_string_for_shard(INDEX_SHARD_NAME))
        with engine.connect() as conn:
            return bool(engine.dialect.has_table(conn, table_name))

    def dispose(self) -> None:
        super().dispose()
        self._engines.dispose()


def _touch(path: str) -> None:
    """Tell file watchers that a run's database changed.

    The webserver follows a running run by watching its `<run_id>.db` for modification
    (watchdog; inotify reports a changed mtime as one) and then reads the new events, WAL
    included. Dagster's own storage closed its connection after every write, and closing the
    last one checkpoints the WAL into that file; a pooled connection stays open, so the file
    is touched instead (a checkpoint would cost a write and two disk syncs per event).
    """
    try:
        os.utime(path)
    except FileNotFoundError:
        pass


def _wrote(conn: Connection) -> bool:
    # sqlite3 counts the rows the connection has changed since it was opened
    raw = conn.connection.dbapi_connection
    before = conn.info.get("stageflow_changes", 0)
    now = raw.total_changes
    conn.info["stageflow_changes"] = now
    return now != before


class PooledSqliteStorage(DagsterSqliteStorage):
    """`DagsterSqliteStorage` (the default SQLite instance storage) on pooled connections."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        self.base_dir = base_dir
        mkdir_p(base_dir)
        runs_dir = _runs_directory(base_dir)
        mkdir_p(runs_dir)
        self._run_storage = PooledSqliteRunStorage.from_local(runs_dir)
        self._event_log_storage = PooledSqliteEventLogStorage(_event_logs_directory(base_dir))
        self._schedule_storage = PooledSqliteScheduleStorage.from_local(_schedule_directory(base_dir))
        self._inst_data = inst_data
        super(DagsterSqliteStorage, self).__init__()

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData, config_value) -> PooledSqliteStorage:
        return cls(config_value["base_dir"], inst_data=inst_data)


class RedirectComputeLogManager(LocalComputeLogManager):
    """`LocalComputeLogManager` (same files, same UI) without mirroring steps' output to the terminal."""

    def __init__(self, base_dir: str, polling_timeout: float | None = None,
                 inst_data: ConfigurableClassData | None = None) -> None:
        super().__init__(compute_logs_directory(base_dir), polling_timeout, inst_data)

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData | None, config_value) -> RedirectComputeLogManager:
        return cls(inst_data=inst_data, **config_value)

    @contextmanager
    def capture_logs(self, log_key: Sequence[str]) -> Iterator[CapturedLogContext]:
        outpath = self.get_captured_local_path(log_key, IO_TYPE_EXTENSION[ComputeIOType.STDOUT])
        errpath = self.get_captured_local_path(log_key, IO_TYPE_EXTENSION[ComputeIOType.STDERR])
        ensure_file(outpath)
        ensure_file(errpath)
        with redirect_to_file(sys.stdout, outpath), redirect_to_file(sys.stderr, errpath):
            yield CapturedLogContext(log_key)
        # as Dagster's: the artifact that says the capture is complete
        touch_file(self.complete_artifact_path(log_key))
