"""The video inbox: a file dropped into `$STAGEFLOW_HOME/inbox/videos` becomes a job."""


import dagster as dg

from stageflow_assets.core import scaleout
from stageflow_assets.core.errors import BadInputError
from stageflow_assets.core.inbox import InboxScan
from stageflow_assets.core.storage import StageStore
from stageflow_assets.core.stage import JOB_TAG, SOURCE_TAG
from stageflow_assets.providers.asr_whisperx import asr_device_from_env
from stageflow_assets.subtitles.jobs import subtitle_source_job
from stageflow_assets.subtitles.partitions import subtitle_job_partitions
from stageflow_assets.subtitles.registry import register_video

# The daemon creates each requested run inside the tick: ~0.15 s a run on SQLite (a database file
# per run, the planned-asset events), ~0.3 s while runs execute on the same cores, so 50 a tick took
# 6-8 s (bench/inbox_sensor_tick.py). Ten keep the tick at 1.3 s, 3.5 s on a busy 2-core machine
# (bench/inbox_load.py), and still register 60 videos a minute, more than the runs get through.
MAX_NEW_PER_TICK = 10
# a file still being copied in keeps changing; wait until it has been quiet this long
SETTLE_SECONDS = 3.0


@dg.sensor(
    job=subtitle_source_job,
    minimum_interval_seconds=10,
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
