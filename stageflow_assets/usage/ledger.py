"""The cost ledger (`stageflow costs`): Claude's tokens and cost per job, per day and in total.

It reads the `daily_usage` partitions and never writes: a day counts from its latest
`daily_usage` materialization when that was made after the day ended (its figures are final);
any other day (today so far, a day the schedule skipped or has not reached, a partition
materialized while its day was still going) is computed live from the event log, the same way
the asset computes it, without materializing anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

import dagster as dg
from pydantic import ValidationError

from stageflow_assets.core.days import day_of, day_window, today
from stageflow_assets.core.paths import StagePaths
from stageflow_assets.core.stage import JOB_TAG
from stageflow_assets.usage.collect import usage_by_day
from stageflow_assets.usage.figures import ClaudeFigures, DayUsage, JobFigures

USAGE_ASSET = dg.AssetKey("daily_usage")
_PAGE = 1000


@dataclass
class Ledger:
    since: date
    until: date
    timezone: str
    days: dict[str, DayUsage]  # every day of the span, oldest first
    materialized: list[str] = field(default_factory=list)  # days read from daily_usage
    live: list[str] = field(default_factory=list)  # days computed from the event log

    def rows(self, job: str | None = None) -> list[tuple[str, JobFigures]]:
        return [(day, row) for day, usage in self.days.items() for row in usage.jobs if job in (None, row.job)]


def first_run_day(instance: dg.DagsterInstance, tz: str) -> date | None:
    """The day the instance's first run was created (the ledger starts there by default)."""
    first = instance.get_run_records(limit=1, order_by="create_timestamp", ascending=True)
    return day_of(first[0].create_timestamp, tz) if first else None


def job_has_runs(instance: dg.DagsterInstance, job: str) -> bool:
    return bool(instance.get_run_records(filters=dg.RunsFilter(tags={JOB_TAG: job}), limit=1))


def final_days(instance: dg.DagsterInstance, days: list[str], tz: str) -> dict[str, DayUsage]:
    """The days whose latest `daily_usage` materialization was made after the day ended."""
    latest: dict[str, tuple[float, dict]] = {}
    cursor = None
    while days:
        page = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=USAGE_ASSET, asset_partitions=days), limit=_PAGE, cursor=cursor)
        for record in page.records:  # newest first
            materialization = record.asset_materialization
            day = materialization.partition if materialization is not None else None
            if day and day not in latest:
                figures = materialization.metadata.get("usage")
                latest[day] = (record.timestamp, getattr(figures, "value", None))
        if not page.has_more:
            break
        cursor = page.cursor
    out = {}
    for day, (made, figures) in latest.items():
        if made < day_window(day, tz)[1].timestamp() or not isinstance(figures, dict):
            continue
        try:
            usage = DayUsage.model_validate(figures)
        except ValidationError:
            continue  # written by another version: counted live instead
        if usage.timezone == tz:
            out[day] = usage
    return out


def cost_ledger(instance: dg.DagsterInstance, paths: StagePaths, tz: str, since: date | None = None) -> Ledger:
    until = today(tz)
    since = since or first_run_day(instance, tz) or until
    span = [(since + timedelta(days=n)).isoformat() for n in range((until - since).days + 1)]
    found = final_days(instance, span, tz)
    missing = [d for d in span if d not in found]
    live = usage_by_day(instance, paths, date.fromisoformat(missing[0]), date.fromisoformat(missing[-1]), tz) \
        if missing else {}
    days = {d: found.get(d) or live[d] for d in span}
    return Ledger(since, until, tz, days, materialized=[d for d in span if d in found], live=missing)


def claude_fields(messages: ClaudeFigures, batch: ClaudeFigures) -> str:
    """`name=value` pairs: Messages and batch apart, then both together."""
    parts = []
    for rate, figures in (("messages", messages), ("batch", batch)):
        parts += [f"{rate}_requests={figures.requests}", f"{rate}_input_tokens={figures.input_tokens}",
                  f"{rate}_output_tokens={figures.output_tokens}", f"{rate}_usd={figures.cost_usd:.6f}"]
        if figures.cache_write_tokens or figures.cache_read_tokens:
            parts += [f"{rate}_cache_write_tokens={figures.cache_write_tokens}",
                      f"{rate}_cache_read_tokens={figures.cache_read_tokens}"]
        if figures.unpriced_requests:
            parts.append(f"{rate}_unpriced_requests={figures.unpriced_requests}")
    parts.append(f"usd={messages.cost_usd + batch.cost_usd:.6f}")
    return " ".join(parts)


def ledger_lines(ledger: Ledger, job: str | None = None) -> list[str]:
    """`key: value` lines: the span, one `day:` line per day with Claude requests, one `job:` line
    per job with any, and `total:`."""
    lines = [f"since: {ledger.since}", f"until: {ledger.until}", f"timezone: {ledger.timezone}",
             f"days: {len(ledger.days)} ({len(ledger.materialized)} from daily_usage, "
             f"{len(ledger.live)} computed live)"]
    if job is not None:
        lines.append(f"job: {job}")
    rows = ledger.rows(job)
    per_day: dict[str, tuple[ClaudeFigures, ClaudeFigures]] = {}
    per_job: dict[tuple[str, str], tuple[ClaudeFigures, ClaudeFigures]] = {}
    for day, row in rows:
        for key, table in ((day, per_day), ((row.domain, row.job), per_job)):
            m, b = table.get(key, (ClaudeFigures(), ClaudeFigures()))
            table[key] = (m + row.claude_messages, b + row.claude_batch)
    for day, (m, b) in per_day.items():
        if m.requests or b.requests:
            lines.append(f"day: {day} {claude_fields(m, b)}")
    if job is None:
        for (domain, key), (m, b) in sorted(per_job.items()):
            if m.requests or b.requests:
                lines.append(f"job: {key} domain={domain} {claude_fields(m, b)}")
    m = sum((r.claude_messages for _, r in rows), ClaudeFigures())
    b = sum((r.claude_batch for _, r in rows), ClaudeFigures())
    lines.append(f"total: {claude_fields(m, b)}")
    return lines
