"""Calendar days in `STAGEFLOW_TIMEZONE`: the partitions of the daily assets (`daily_usage`,
`research_bundle`), the day a nightly schedule works on, and the window of a day's runs.

A run belongs to the day it ended: once a day is over its figures are final, and a run still
going at midnight counts on the day it ends.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import dagster as dg

from stageflow_assets.core.settings import configured_timezone

FIRST_DAY = "2026-01-01"  # before stageflow ran anywhere: the first daily partition
DAY_FORMAT = "%Y-%m-%d"
TIMEZONE = configured_timezone()

# `end_offset=1`: today is a partition too, so "today so far" can be materialized by hand (the
# cost ledger counts such a materialization only once the day is over)
days_partitions = dg.DailyPartitionsDefinition(start_date=FIRST_DAY, timezone=TIMEZONE, fmt=DAY_FORMAT,
                                               end_offset=1)
FINISHED = (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)


def zone(name: str | None = None) -> ZoneInfo:
    return ZoneInfo(name or TIMEZONE)


def day_window(day: date | str, tz: str | None = None) -> tuple[datetime, datetime]:
    """[start, end) of `day` in the zone, as aware datetimes (23 or 25 hours on a DST change)."""
    if isinstance(day, str):
        day = date.fromisoformat(day)
    start = datetime.combine(day, time(0), zone(tz))
    end = datetime.combine(day + timedelta(days=1), time(0), zone(tz))
    return start, end


def day_of(moment: datetime | float, tz: str | None = None) -> date:
    """The calendar day of a moment (an aware datetime or a Unix timestamp) in the zone."""
    if not isinstance(moment, datetime):
        moment = datetime.fromtimestamp(moment, zone(tz))
    return moment.astimezone(zone(tz)).date()


def day_before(moment: datetime, tz: str | None = None) -> date:
    """The last whole day before `moment`: what a schedule ticking after midnight works on."""
    return day_of(moment, tz) - timedelta(days=1)


def today(tz: str | None = None) -> date:
    return datetime.now(zone(tz)).date()


def runs_ended_between(instance: dg.DagsterInstance, start: datetime, end: datetime,
                       tags: dict[str, str] | None = None) -> list[dg.RunRecord]:
    """Finished runs whose end lies in [start, end), oldest end first.

    A run that ended after `start` was updated after it and created before `end`: both bounds
    go to the run storage, so an old day reads only the runs around it.
    """
    records = instance.get_run_records(filters=dg.RunsFilter(
        tags=tags, statuses=list(FINISHED), updated_after=start, created_before=end))
    lo, hi = start.timestamp(), end.timestamp()
    found = [r for r in records if lo <= ended_at(r) < hi]
    return sorted(found, key=ended_at)


def ended_at(record: dg.RunRecord) -> float:
    """When a finished run ended (a run canceled before it started has no end time: its last update)."""
    return record.end_time if record.end_time is not None else record.update_timestamp.timestamp()
