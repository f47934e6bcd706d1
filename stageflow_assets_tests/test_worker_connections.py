"""A run executed by a `stageflow worker` keeps its PostgreSQL connections open for the run.

dagster-celery's task opens a fresh instance per run, whose storage connects once per event and
query; `pool_run_connections` (called when the run initializes its resources) makes it keep one.
Counted on the client with SQLAlchemy's own `connect` event, on a fresh database.
"""

from __future__ import annotations

import dagster as dg
import sqlalchemy

from stageflow_assets.core.stage_store import StageStore
from stageflow_assets.core.worker import NAME_ENV
from stageflow_assets_tests.test_postgres import pg_database, pg_url  # noqa: F401 - the fixture


@dg.asset
def first(storage: StageStore) -> int:
    return 1


@dg.asset
def second(storage: StageStore, first: int) -> int:
    return first + 1


@dg.asset
def third(storage: StageStore, second: int) -> int:
    return second + 1


def _connections_for_one_run(database: str, tmp_path, name: str) -> int:
    made = []

    def count(*_args) -> None:
        made.append(1)

    job = dg.define_asset_job("three", selection=[first, second, third])
    defs = dg.Definitions(assets=[first, second, third], jobs=[job],
                          resources={"storage": StageStore(home=str(tmp_path / "home"))})
    overrides = {"storage": {"postgres": {"postgres_url": pg_url(database)}}}
    with dg.instance_for_test(overrides=overrides) as instance:
        sqlalchemy.event.listen(sqlalchemy.engine.Engine, "connect", count)
        try:
            result = defs.resolve_job_def("three").execute_in_process(instance=instance, run_config={}, tags={"case": name})
        finally:
            sqlalchemy.event.remove(sqlalchemy.engine.Engine, "connect", count)
        assert result.success
    return len(made)


def test_a_worker_run_reuses_its_connections(pg_database, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.delenv(NAME_ENV, raising=False)
    elsewhere = _connections_for_one_run(pg_database, tmp_path / "cli", "not a worker")
    monkeypatch.setenv(NAME_ENV, "w1")
    in_worker = _connections_for_one_run(pg_database, tmp_path / "worker", "worker")
    # the events before the run initializes its resources (start, planning, the first step's start)
    # still connect one by one
    assert elsewhere >= 20, elsewhere
    assert in_worker * 2 <= elsewhere, (in_worker, elsewhere)  # 28 against 74 here
