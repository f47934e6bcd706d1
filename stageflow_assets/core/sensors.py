"""Sensors every domain shares: the health of Celery workers."""

from __future__ import annotations

import dagster as dg

from stageflow_assets.core import scaleout
from stageflow_assets.core.queued import STOPPED_WORKER


@dg.sensor(
    name="stageflow_worker_health", minimum_interval_seconds=10, default_status=dg.DefaultSensorStatus.RUNNING,
    description="Fails a running run whose Celery worker stopped heartbeating (killed, machine gone), "
                "so run retries or `stageflow reexecute` can run it on another worker. dagster-celery's "
                "own health check trusts a task that has started.",
)
def worker_health_sensor(context: dg.SensorEvaluationContext):
    if not scaleout.enabled():
        return dg.SkipReason(f"no Celery workers here ({scaleout.BROKER_ENV} is not set)")
    from stageflow_assets.core.worker import stopped_workers

    runs = [r.dagster_run for r in context.instance.get_run_records(filters=dg.RunsFilter(
        statuses=[dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]))]
    on_workers = [run for run in runs if run.tags.get(scaleout.WORKER_TAG)]
    stopped = stopped_workers({run.tags[scaleout.WORKER_TAG] for run in on_workers})
    failed = []
    for run in on_workers:
        worker = run.tags[scaleout.WORKER_TAG]
        if worker in stopped:
            context.instance.report_run_failed(
                run, message=f"worker {worker} {STOPPED_WORKER} for {scaleout.HEARTBEAT_TTL_S} s; "
                             "the run did not finish (re-execute it on another worker)")
            failed.append(run.run_id)
    if failed:
        return dg.SkipReason(f"failed {len(failed)} run(s) of stopped workers: {', '.join(failed)}")
    return dg.SkipReason(f"{len(on_workers)} run(s) on live workers")
