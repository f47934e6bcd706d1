"""`nightly_research_bundle`: after midnight, the day's journeys' research records into the outbox
(`research_bundle`). Stopped by default: turn it on in the UI (Automation → Schedules) or with
`dagster schedule start nightly_research_bundle`."""

from __future__ import annotations

import dagster as dg

from stageflow_assets.core.days import FIRST_DAY, TIMEZONE, day_before
from stageflow_assets.core.settings import schedule_cron
from stageflow_assets.journey.bundle_assets import journeys_ended_on
from stageflow_assets.journey.jobs import research_bundle_job

RUN_KEY = "research_bundle:{day}"


@dg.schedule(
    name="nightly_research_bundle",
    cron_schedule=schedule_cron("research_bundle", "20 0 * * *"),
    job=research_bundle_job,
    execution_timezone=TIMEZONE,
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Shortly after midnight (STAGEFLOW_TIMEZONE), writes the research records of yesterday's "
                "journeys into $STAGEFLOW_HOME/outbox/records/<day>/: one RO-Crate per journey plus "
                "index.json and index.html. Skips a day no journey ran on.",
)
def nightly_research_bundle(context: dg.ScheduleEvaluationContext):
    day = day_before(context.scheduled_execution_time, TIMEZONE).isoformat()
    if day < FIRST_DAY:
        return dg.SkipReason(f"{day} is before the first bundle day ({FIRST_DAY})")
    journeys = journeys_ended_on(context.instance, day)
    if not journeys:
        return dg.SkipReason(f"no journey ran on {day} ({TIMEZONE}): no bundle to write")
    return dg.RunRequest(partition_key=day, run_key=RUN_KEY.format(day=day))
