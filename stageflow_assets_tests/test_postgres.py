"""The instance configs: dagster.yaml (SQLite) and dagster-postgres.yaml (PostgreSQL).

A typo in either breaks `make ui` and every `stageflow` command, so both are loaded as real
instances. The PostgreSQL tests each get a fresh database on 127.0.0.1:5432 (dropped after) and
run the real `stageflow subtitles` against it.
"""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import dagster as dg
import pytest
import yaml

from stageflow_assets.core.instance import POSTGRES_ENV, ensure_dagster_home
from stageflow_assets.core.settings import project_root
from stageflow_assets_tests.conftest import run_cli

PG_SERVER = dict(host="127.0.0.1", port=5432, user="postgres")
SQLITE_TEMPLATE = project_root() / "dagster.yaml"
POSTGRES_TEMPLATE = project_root() / "dagster-postgres.yaml"


def pg_url(database: str) -> str:
    # SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3; the psycopg2 driver is the one installed
    return f"postgresql+psycopg2://{PG_SERVER['user']}@{PG_SERVER['host']}:{PG_SERVER['port']}/{database}"


def _admin_connection():
    psycopg2 = pytest.importorskip("psycopg2", reason="psycopg2 is not installed")
    try:
        conn = psycopg2.connect(dbname="postgres", connect_timeout=5, **PG_SERVER)
    except psycopg2.OperationalError as exc:
        pytest.skip(f"PostgreSQL is unreachable on {PG_SERVER['host']}:{PG_SERVER['port']} "
                    f"as {PG_SERVER['user']}: {' '.join(str(exc).split())}")
    conn.autocommit = True
    return conn


@pytest.fixture
def pg_database():
    """A fresh, empty database; dropped afterwards (open connections are ended first)."""
    from psycopg2 import sql

    admin = _admin_connection()
    name = f"stageflow_test_{uuid.uuid4().hex[:12]}"
    with admin.cursor() as cur:
        cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield name
    finally:
        with admin.cursor() as cur:
            cur.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()", (name,),
            )
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        admin.close()


def query(database: str, statement: str, params=()) -> list[tuple]:
    import psycopg2

    with psycopg2.connect(dbname=database, **PG_SERVER) as conn, conn.cursor() as cur:
        cur.execute(statement, params)
        rows = cur.fetchall()
    conn.close()
    return rows


def storage_classes(instance: dg.DagsterInstance) -> set[str]:
    return {
        type(instance.run_storage).__name__,
        type(instance.event_log_storage).__name__,
        type(instance.schedule_storage).__name__,
    }


def check_common_settings(instance: dg.DagsterInstance) -> None:
    """What both templates promise: a run queue of 2, pools of 1, monitoring and one retry."""
    assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
    queue = instance.get_concurrency_config().run_queue_config
    assert queue.max_concurrent_runs == 2
    assert instance.get_concurrency_config().pool_config.default_pool_limit == 1
    assert instance.run_monitoring_enabled
    assert instance.run_retries_enabled and instance.run_retries_max_retries == 1
    assert not instance.run_retries_retry_on_asset_or_op_failure
    assert type(instance.compute_log_manager).__name__ == "NoOpComputeLogManager"


def test_templates_are_the_same_apart_from_storage():
    sqlite = yaml.safe_load(SQLITE_TEMPLATE.read_text())
    postgres = yaml.safe_load(POSTGRES_TEMPLATE.read_text())
    storage = postgres.pop("storage")
    sqlite_storage = sqlite.pop("storage")
    assert sqlite == postgres
    assert storage == {"postgres": {"postgres_url": {"env": POSTGRES_ENV}}}
    assert sqlite_storage == {"sqlite": {"base_dir": {"env": "DAGSTER_HOME"}}}
    assert sqlite["compute_logs"]["class"] == "NoOpComputeLogManager"


def test_sqlite_template_loads_as_an_instance(tmp_path, monkeypatch):
    monkeypatch.delenv(POSTGRES_ENV, raising=False)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    home = ensure_dagster_home()
    assert (home / "dagster.yaml").read_text() == SQLITE_TEMPLATE.read_text()
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert storage_classes(instance) == {"SqliteRunStorage", "SqliteEventLogStorage", "SqliteScheduleStorage"}
        check_common_settings(instance)
        instance.add_dynamic_partitions("subtitle_jobs", ["probe-00000000"])
        assert instance.get_dynamic_partitions("subtitle_jobs") == ["probe-00000000"]


def test_a_typo_in_the_instance_config_is_caught(tmp_path):
    """The loading above is a real check: Dagster rejects unknown keys in dagster.yaml."""
    home = tmp_path / "dagster"
    home.mkdir()
    text = SQLITE_TEMPLATE.read_text().replace("max_concurrent_runs", "max_concurent_runs")
    (home / "dagster.yaml").write_text(text)
    with pytest.raises(dg.DagsterInvalidConfigError, match="max_concurent_runs"):
        dg.DagsterInstance.from_config(str(home))


@pytest.mark.postgres
def test_postgres_template_loads_against_the_server(pg_database, tmp_path, monkeypatch):
    monkeypatch.setenv(POSTGRES_ENV, pg_url(pg_database))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    home = ensure_dagster_home()
    assert (home / "dagster.yaml").read_text() == POSTGRES_TEMPLATE.read_text()
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert storage_classes(instance) == {
            "PostgresRunStorage", "PostgresEventLogStorage", "PostgresScheduleStorage"
        }
        check_common_settings(instance)
        instance.add_dynamic_partitions("subtitle_jobs", ["probe-00000000"])
    tables = {r[0] for r in query(pg_database, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert {"runs", "event_logs", "dynamic_partitions", "jobs", "alembic_version"} <= tables
    assert query(pg_database, "SELECT partition FROM dynamic_partitions WHERE partitions_def_name = %s",
                 ("subtitle_jobs",)) == [("probe-00000000",)]
    # nothing fell back to SQLite files under DAGSTER_HOME
    assert not list(home.rglob("*.db"))


@pytest.mark.postgres
def test_cli_records_runs_and_materializations_in_postgres(pg_database, speech_video, tmp_path):
    video = tmp_path / "pg talk.mp4"
    shutil.copyfile(speech_video, video)
    dagster_home = tmp_path / "dagster"
    out = tmp_path / "out"
    env = {
        POSTGRES_ENV: pg_url(pg_database),
        "DAGSTER_HOME": str(dagster_home),
        "STAGEFLOW_HOME": str(tmp_path / "stageflow"),
    }

    result = run_cli("subtitles", video, "--lang", "es", "--out", out, env=env)

    assert result.returncode == 0, result.stderr
    (job,) = result.value("job")
    run_ids = [line.split()[0] for line in result.value("run")]
    assert len(run_ids) == 3  # source chain, es, mux
    wrote = {Path(p) for p in result.value("wrote")}
    expected = {out / f"{job}.es.srt", out / f"{job}.es.vtt", out / f"{job}.es.ass", out / f"{job}.mkv"}
    assert wrote == expected
    for path in expected:
        assert path.is_file() and path.stat().st_size > 0, path
    assert "-->" in (out / f"{job}.es.srt").read_text()

    # the instance the CLI created is the PostgreSQL one
    assert (dagster_home / "dagster.yaml").read_text() == POSTGRES_TEMPLATE.read_text()
    assert not list(dagster_home.rglob("*.db")), "some storage fell back to SQLite"

    # runs, straight from the database
    runs = dict(
        (run_id, (job_name, status))
        for run_id, job_name, status in query(pg_database, "SELECT run_id, pipeline_name, status FROM runs")
    )
    assert set(run_ids) <= set(runs)
    assert [runs[r] for r in run_ids] == [
        ("subtitle_source_job", "SUCCESS"),
        ("subtitle_language_job", "SUCCESS"),
        ("subtitle_mux_job", "SUCCESS"),
    ]

    # materializations, straight from the database
    rows = query(
        pg_database,
        "SELECT asset_key, partition, run_id FROM event_logs "
        "WHERE dagster_event_type = 'ASSET_MATERIALIZATION'",
    )
    materialized = {(tuple(json.loads(key)), partition) for key, partition, _ in rows}
    language = f"{job}|es"
    assert {
        (("source_video",), job), (("audio",), job), (("transcript",), job),
        (("translation",), language), (("subtitles",), language),
        (("subtitled_video",), job),
    } <= materialized
    assert {run_id for _, _, run_id in rows} <= set(run_ids)
    assert query(pg_database, "SELECT partition FROM dynamic_partitions WHERE partitions_def_name = %s",
                 ("subtitle_jobs",)) == [(job,)]

    # and through Dagster, from the same DAGSTER_HOME
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(POSTGRES_ENV, env[POSTGRES_ENV])
        with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
            assert "PostgresRunStorage" in storage_classes(instance)
            records = instance.get_run_records(dg.RunsFilter(run_ids=run_ids))
            assert {r.dagster_run.run_id for r in records} == set(run_ids)
            assert all(r.dagster_run.status == dg.DagsterRunStatus.SUCCESS for r in records)
            assert records[0].dagster_run.tags.get("stageflow/job") == job
            event = instance.get_latest_materialization_event(dg.AssetKey("subtitled_video"))
            assert event is not None and event.run_id == run_ids[-1]
            assert event.asset_materialization.partition == job
