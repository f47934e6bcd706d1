"""The video inbox: a file dropped into `$STAGEFLOW_HOME/inbox/videos` becomes a job, chained
run by run into its outbox."""


import dagster as dg

from stageflow_assets.core import scaleout
from stageflow_assets.core.errors import BadInputError
from stageflow_assets.core.inbox import InboxScan
from stageflow_assets.core.settings import configured_languages
from stageflow_assets.core.stage_store import StageStore
from stageflow_assets.core.stage import JOB_TAG, SOURCE_TAG
from stageflow_assets.providers.asr_whisperx import asr_device_from_env
from stageflow_assets.subtitles.jobs import subtitle_language_job, subtitle_mux_job, subtitle_source_job
from stageflow_assets.subtitles.partitions import subtitle_job_partitions
from stageflow_assets.subtitles.registry import register_video

# The daemon creates each requested run inside the tick: ~0.15 s a run on SQLite (a database file
# per run, the planned-asset events), ~0.3 s while runs execute on the same cores, so 50 a tick took
# 6-8 s (bench/inbox_sensor_tick.py). Ten keep the tick at 1.3 s, 3.5 s on a busy 2-core machine
# (bench/inbox_load.py), and still register 60 videos a minute, more than the runs get through.
MAX_NEW_PER_TICK = 10
# a file still being copied in keeps changing; wait until it has been quiet this long
SETTLE_SECONDS = 3.0
# The sensor daemon evaluates sensors in a loop of 5 s (Dagster's own, fixed), and skips a sensor
# whose last tick ended less than its interval ago: with 5 s, each tick's own duration made every
# other loop a skip, 10 s a hop. Under the loop's period, they tick on every loop: every 5 s.
CHAIN_INTERVAL_S = 2
# which inbox source run a language or mux run continues, and the languages it was split into
CHAIN_TAG = "stageflow/chain"
CHAIN_LANGUAGES_TAG = "stageflow/chain_languages"
MAX_SUCCESSES_PER_TICK = 200


@dg.sensor(
    job=subtitle_source_job,
    minimum_interval_seconds=CHAIN_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Registers each new video in the inbox as a job partition and requests its run.",
)
def video_inbox_sensor(context: dg.SensorEvaluationContext, storage: StageStore):
    inbox = storage.paths.inbox("videos")
    inbox.mkdir(parents=True, exist_ok=True)
    scan = InboxScan(inbox, context.cursor, settle_s=SETTLE_SECONDS)
    # scale-out: the source run transcribes, on a GPU worker when the ASR device is one
    queue = {scaleout.QUEUE_TAG: scaleout.queue_for(subtitle_source_job.name, asr_device_from_env())}
    new_keys: list[str] = []
    requests: list[dg.RunRequest] = []
    for path in scan.new_files():
        if len(new_keys) >= MAX_NEW_PER_TICK:
            break  # this file and the rest: next tick
        try:
            job = register_video(storage.paths, path).job
        except (BadInputError, OSError) as exc:
            # once: a fix (chmod, a new copy) changes the file's ctime and brings it back
            context.log.warning(f"inbox: skipping {path.name}: {exc}")
            continue
        if job in new_keys:
            # same content under another name (talk.mp4, talk.mkv): one job, added once, one run
            continue
        new_keys.append(job)
        requests.append(dg.RunRequest(partition_key=job, run_key=job, tags={JOB_TAG: job, SOURCE_TAG: "inbox", **queue}))
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[subtitle_job_partitions.build_add_request(new_keys)] if new_keys else [],
        cursor=scan.cursor(),
    )


@dg.sensor(
    jobs=[subtitle_language_job, subtitle_mux_job],
    minimum_interval_seconds=CHAIN_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Chains each inbox video as its runs succeed: its source run -> one run per configured "
                "language; every language -> the mux and the outbox. A language that fails (a blocking "
                "QC check included) holds the mux.",
)
def inbox_chain_sensor(context: dg.SensorEvaluationContext):
    """Reads the runs that succeeded since its cursor (a position in the event log) and requests
    what each makes possible, keyed by the source run, so no tick requests a run twice."""
    instance = context.instance
    if context.cursor is None:
        # from now on: successes before the sensor existed were chained by what ran then
        latest = instance.fetch_run_status_changes(dg.DagsterEventType.RUN_SUCCESS, limit=1).records
        return dg.SensorResult(cursor=str(latest[0].storage_id if latest else 0))
    records = instance.fetch_run_status_changes(
        dg.RunStatusChangeRecordsFilter(event_type=dg.DagsterEventType.RUN_SUCCESS, after_storage_id=int(context.cursor)),
        limit=MAX_SUCCESSES_PER_TICK, ascending=True,
    ).records
    if not records:
        return dg.SkipReason("no run succeeded since the last tick")
    ids = list({record.event_log_entry.run_id for record in records})
    runs = {r.dagster_run.run_id: r.dagster_run for r in instance.get_run_records(filters=dg.RunsFilter(run_ids=ids))}
    requests: dict[str, dg.RunRequest] = {}
    for record in records:
        run = runs.get(record.event_log_entry.run_id)
        if run is not None and run.tags.get(SOURCE_TAG) == "inbox":
            for request in _next_runs(instance, run):
                requests.setdefault(request.run_key, request)
    return dg.SensorResult(run_requests=list(requests.values()), cursor=str(records[-1].storage_id))


def _next_runs(instance: dg.DagsterInstance, run: dg.DagsterRun) -> list[dg.RunRequest]:
    job = run.tags.get(JOB_TAG) or run.tags.get("dagster/partition/job") or run.tags.get("dagster/partition")
    if not job:
        return []
    if run.job_name == subtitle_source_job.name:
        languages = list(configured_languages())
        tags = {JOB_TAG: job, SOURCE_TAG: "inbox", CHAIN_TAG: run.run_id, CHAIN_LANGUAGES_TAG: ",".join(languages)}
        return [dg.RunRequest(job_name=subtitle_language_job.name, run_key=f"{job}|{lang}:{run.run_id}", tags=tags,
                              partition_key=dg.MultiPartitionKey({"job": job, "lang": lang}))
                for lang in languages]
    chain = run.tags.get(CHAIN_TAG)
    if run.job_name != subtitle_language_job.name or not chain:
        return []
    # a language run succeeds only when its blocking checks passed (a failed one fails the step)
    done = instance.get_run_records(filters=dg.RunsFilter(
        job_name=subtitle_language_job.name, tags={CHAIN_TAG: chain}, statuses=[dg.DagsterRunStatus.SUCCESS]))
    succeeded = {r.dagster_run.tags.get("dagster/partition/lang") for r in done}
    if not set(run.tags.get(CHAIN_LANGUAGES_TAG, "").split(",")) <= succeeded:
        return []
    return [dg.RunRequest(job_name=subtitle_mux_job.name, partition_key=job, run_key=f"{job}:mux:{chain}",
                          tags={JOB_TAG: job, SOURCE_TAG: "inbox", CHAIN_TAG: chain})]
