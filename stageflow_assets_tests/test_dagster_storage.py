"""The instance storage dagster.yaml configures (stageflow_assets/core/dagster_storage.py).

Dagster's SQLite storage on pooled connections and its compute logs without the terminal
mirror must stay Dagster's: the same files and schema (a home opens with either storage),
a live event stream for the UI, the step logs the UI shows, and safe with two processes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as db
import yaml
from dagster._core.storage.event_log.sqlite import sqlite_event_log
from dagster._core.storage.sql import check_alembic_revision, get_alembic_config

from stageflow_assets.core import dagster_storage
from stageflow_assets.core.settings import project_root

TEMPLATE = project_root() / "dagster.yaml"
STEP_LINE = "hello from the step"


@dg.asset
def greeting() -> str:
    print(STEP_LINE)
    print("a warning from the step", file=sys.stderr)
    return "hi"


def make_home(path: Path, storage: str) -> Path:
    """A DAGSTER_HOME with the project's dagster.yaml, or with Dagster's own storage defaults."""
    config = yaml.safe_load(TEMPLATE.read_text())
    if storage == "dagster":
        config.pop("storage")
        config.pop("compute_logs")
    path.mkdir(parents=True, exist_ok=True)
    (path / "dagster.yaml").write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "dagster"
    monkeypatch.setenv("DAGSTER_HOME", str(home))  # dagster.yaml's base_dir comes from it
    return make_home(home, "pooled")


def materialize(home: Path) -> str:
    with dg.DagsterInstance.from_config(str(home)) as instance:
        result = dg.materialize([greeting], instance=instance)
        assert result.success
        return result.run_id


def latest_run(instance: dg.DagsterInstance) -> str:
    event = instance.get_latest_materialization_event(dg.AssetKey("greeting"))
    return event.run_id


def test_the_project_instance_uses_the_pooled_storage(home):
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.event_log_storage) is dagster_storage.PooledSqliteEventLogStorage
        assert type(instance.run_storage) is dagster_storage.PooledSqliteRunStorage
        assert type(instance.compute_log_manager) is dagster_storage.RedirectComputeLogManager
    # Dagster's own layout under DAGSTER_HOME
    assert (home / "history" / "runs.db").is_file()
    assert (home / "history" / "runs" / "index.db").is_file()
    assert (home / "schedules" / "schedules.db").is_file()


def test_a_home_opens_with_dagsters_own_storage_and_back(home):
    first = materialize(home)
    make_home(home, "dagster")  # the same files, now read and written by Dagster's defaults
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.event_log_storage).__name__ == "SqliteEventLogStorage"
        assert instance.get_run_by_id(first).status == dg.DagsterRunStatus.SUCCESS
        assert latest_run(instance) == first
        assert any(e.user_message for e in instance.all_logs(first))
    second = materialize(home)
    make_home(home, "pooled")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.event_log_storage) is dagster_storage.PooledSqliteEventLogStorage
        assert {r.dagster_run.run_id for r in instance.get_run_records()} == {first, second}
        assert latest_run(instance) == second
        events = [e.dagster_event_type for e in instance.all_logs(second) if e.is_dagster_event]
        assert dg.DagsterEventType.RUN_SUCCESS in events
    third = materialize(home)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert latest_run(instance) == third


def shard_schema(path: Path) -> set[tuple[str, str]]:
    import sqlite3

    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'").fetchall()
    return set(rows)


def test_a_new_run_database_is_what_dagster_itself_creates(home, tmp_path):
    run_id = materialize(home)
    shard = home / "history" / "runs" / f"{run_id}.db"
    engine = db.create_engine(f"sqlite:///{shard}")
    with engine.connect() as conn:
        db_revision, head_revision = check_alembic_revision(get_alembic_config(sqlite_event_log.__file__), conn)
    engine.dispose()
    assert db_revision and db_revision == head_revision
    # the same tables and indexes as a run database made by Dagster's own storage
    plain = sqlite_event_log.SqliteEventLogStorage(str(tmp_path / "plain"))
    with plain.run_connection("some-run"):
        pass
    assert shard_schema(shard) == shard_schema(tmp_path / "plain" / "some-run.db")
    # and nothing but run databases where Dagster lists runs
    storage = dagster_storage.PooledSqliteEventLogStorage(str(home / "history" / "runs"))
    assert storage.get_all_run_ids() == [run_id]


def log_entry(run_id: str, message: str):
    from dagster._core.events.log import EventLogEntry

    return EventLogEntry(error_info=None, level=20, user_message=message, run_id=run_id,
                         timestamp=time.time(), dagster_event=None)


def test_the_ui_sees_a_running_runs_events_as_they_are_written(home):
    """The webserver follows a run by watching its .db file: pooled writes must still reach it."""
    with dg.DagsterInstance.from_config(str(home)) as writer, \
            dg.DagsterInstance.from_config(str(home)) as reader:
        writer.event_log_storage.store_event(log_entry("run-a", "first"))  # creates the run's db
        seen: list[str] = []
        arrived = threading.Event()

        def callback(entry, cursor):
            seen.append(entry.user_message)
            if "third" in seen:
                arrived.set()

        reader.event_log_storage.watch("run-a", None, callback)
        try:
            time.sleep(0.5)  # the observer is running
            writer.event_log_storage.store_event(log_entry("run-a", "second"))
            writer.event_log_storage.store_event(log_entry("run-a", "third"))
            assert arrived.wait(10), f"the watcher saw only {seen}"
        finally:
            reader.event_log_storage.end_watch("run-a", callback)
    assert seen[-2:] == ["second", "third"]


def test_without_the_touch_the_ui_would_not_see_them(home, monkeypatch):
    """The control for the test above: it is the touch after each write that the watcher sees."""
    monkeypatch.setattr(dagster_storage, "_wrote", lambda conn: False)
    with dg.DagsterInstance.from_config(str(home)) as writer, \
            dg.DagsterInstance.from_config(str(home)) as reader:
        writer.event_log_storage.store_event(log_entry("run-b", "first"))
        seen: list[str] = []
        reader.event_log_storage.watch("run-b", None, lambda entry, cursor: seen.append(entry.user_message))
        time.sleep(0.5)
        writer.event_log_storage.store_event(log_entry("run-b", "second"))
        time.sleep(3)
        assert "second" not in seen
        # while the event is stored all the same
        assert [r.user_message for r in reader.all_logs("run-b")] == ["first", "second"]


def test_step_output_is_captured_for_the_ui_and_not_mirrored_to_the_terminal(home, capfd):
    run_id = materialize(home)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        captured = [e for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.LOGS_CAPTURED)]
        assert captured, "no LOGS_CAPTURED event"
        manager = instance.compute_log_manager
        file_key = captured[0].dagster_event.logs_captured_data.file_key
        data = manager.get_log_data(manager.build_log_key_for_run(run_id, file_key))  # as the UI asks
    assert STEP_LINE in data.stdout.decode()
    assert "a warning from the step" in data.stderr.decode()
    terminal = capfd.readouterr()
    assert STEP_LINE not in terminal.out + terminal.err


WRITER = textwrap.dedent("""
    import sys
    import dagster as dg

    @dg.asset
    def counter():
        return 1

    with dg.DagsterInstance.get() as instance:
        for _ in range(int(sys.argv[1])):
            assert dg.materialize([counter], instance=instance).success
""")


def test_two_processes_write_to_one_home_at_once(home):
    """E.g. the UI's run workers and a CLI run. (The home exists: `stageflow` creates it first.)"""
    runs_each = 8
    dg.DagsterInstance.from_config(str(home)).dispose()
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(runs_each)], env=os.environ.copy(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=300) for p in procs]
    for proc, (_, err) in zip(procs, outputs):
        assert proc.returncode == 0, err[-2000:]
    with dg.DagsterInstance.from_config(str(home)) as instance:
        records = instance.get_run_records()
        assert len(records) == 2 * runs_each
        assert {r.dagster_run.status for r in records} == {dg.DagsterRunStatus.SUCCESS}
        materializations = instance.fetch_materializations(dg.AssetKey("counter"), limit=100).records
        assert len(materializations) == 2 * runs_each


def test_wal_databases_commit_without_a_disk_sync_each_time(home, tmp_path):
    """Dagster's databases (WAL) get synchronous=NORMAL; any other journal mode keeps SQLite's FULL."""
    run_id = materialize(home)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        storage = instance.event_log_storage
        with storage._connect(run_id) as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
        with instance.run_storage.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1
    plain = tmp_path / "rollback-journal.db"
    engines = dagster_storage._Engines()
    try:
        with engines.get(f"sqlite:///{plain}").connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "delete"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL, SQLite's default
    finally:
        engines.dispose()
