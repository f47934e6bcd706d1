"""Sensors every domain shares: the health of Celery workers, the outbox's failure notices."""

from __future__ import annotations

import dagster as dg

from stageflow_assets.core import scaleout
from stageflow_assets.core.outbox import (
    NO_NOTICE_TAG,
    job_of_run,
    outbox_domain_of,
    run_end_time,
    run_failure_line,
    write_failure_notice,
)
from stageflow_assets.core.queued import STOPPED_WORKER
from stageflow_assets.core.stage import SOURCE_TAG
from stageflow_assets.core.stage_store import StageStore


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


@dg.run_failure_sensor(
    # 15 s: soon enough for whoever watches an outbox; each tick costs the daemon ~26 storage connections
    name="outbox_failure_notice", minimum_interval_seconds=15, default_status=dg.DefaultSensorStatus.RUNNING,
    description="Writes FAILED.txt (what failed, why, the run) into a job's outbox folder when one of its "
                "runs fails, so whoever dropped it into an inbox learns of it without the UI. The CLI "
                "writes it for the runs it executes itself.",
)
def outbox_failure_sensor(context: dg.RunFailureSensorContext, storage: StageStore):
    run = context.dagster_run
    if run.tags.get(SOURCE_TAG) == "cli" or run.tags.get(NO_NOTICE_TAG) == "true":
        return None  # the command that executed it wrote the notice, or nothing was to be delivered
    job = job_of_run(run)
    domain = outbox_domain_of(storage.paths, run, job) if job else None
    if domain is None:
        return None  # not a job with an outbox (a journey, a run of no job)
    line = run_failure_line(context.instance, run)
    if write_failure_notice(storage.paths, domain, job, line, run.run_id, run_end_time(context.instance, run.run_id)):
        context.log.info(f"{domain} {job}: FAILED.txt: {line}")
    return None  # None: the sensor goes on to the tick's next failed run
