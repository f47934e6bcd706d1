"""`daily_usage_schedule`: yesterday's `daily_usage`, shortly after midnight (running by default)."""

from __future__ import annotations

import dagster as dg

from stageflow_assets.core.days import (
    FIRST_DAY, TIMEZONE, day_before, day_window, runs_ended_between,
)
from stageflow_assets.core.settings import schedule_cron
from stageflow_assets.core.stage_store import StageStore
from stageflow_assets.usage.assets import daily_usage
from stageflow_assets.usage.collect import job_and_domain
from stageflow_assets.usage.jobs import daily_usage_job

RUN_KEY = "daily_usage:{day}"


@dg.schedule(
    name="daily_usage_schedule",
    cron_schedule=schedule_cron("daily_usage", "10 0 * * *"),
    job=daily_usage_job,
    execution_timezone=TIMEZONE,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Shortly after midnight (STAGEFLOW_TIMEZONE), materializes yesterday's daily_usage: "
                "the day's runs, media minutes, words, decks, journeys, Claude tokens and cost, stage "
                "time. Skips a day no stageflow run ended on, and a day already counted after it ended.",
)
def daily_usage_schedule(context: dg.ScheduleEvaluationContext, storage: StageStore):
    day = day_before(context.scheduled_execution_time, TIMEZONE)
    if day.isoformat() < FIRST_DAY:
        return dg.SkipReason(f"{day} is before the first daily_usage day ({FIRST_DAY})")
    start, end = day_window(day, TIMEZONE)
    runs = [r for r in runs_ended_between(context.instance, start, end)
            if job_and_domain(r.dagster_run, storage.paths) is not None]
    if not runs:
        return dg.SkipReason(f"no stageflow run ended on {day} ({TIMEZONE}): nothing to count")
    done = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=daily_usage.key, asset_partitions=[day.isoformat()],
                              after_timestamp=end.timestamp()), limit=1).records
    if done:
        return dg.SkipReason(f"daily_usage {day} was already counted after the day ended "
                             f"(run {done[0].run_id})")
    return dg.RunRequest(partition_key=day.isoformat(), run_key=RUN_KEY.format(day=day))
