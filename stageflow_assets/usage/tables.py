"""A day's figures as the UI shows them: numbers the asset's plots draw over days, and tables."""

from __future__ import annotations

from typing import Any

import dagster as dg

from stageflow_assets.usage.figures import DayUsage, JobFigures

MAX_ROWS = 100  # jobs listed in the table; the `usage` JSON has them all
_HEAD = ("| {what} | runs ok/failed/cancelled | media min | words | decks | journeys | Claude requests "
         "(Messages / batch) | Claude USD (Messages / batch) | stage s |")


def _row(name: str, row: JobFigures) -> str:
    m, b = row.claude_messages, row.claude_batch
    return (f"| {name} | {row.runs_succeeded}/{row.runs_failed}/{row.runs_cancelled} | "
            f"{row.media_seconds / 60:.2f} | {row.words} | {row.decks} | {row.journeys} | "
            f"{m.requests} / {b.requests} | {m.cost_usd:.6f} / {b.cost_usd:.6f} | "
            f"{sum(row.stage_seconds.values()):.1f} |")


def figures_table(rows: list[JobFigures], what: str, name=lambda r: r.domain) -> str:
    lines = [_HEAD.format(what=what), "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [_row(name(r), r) for r in rows[:MAX_ROWS]]
    if len(rows) > MAX_ROWS:
        lines.append(f"| … {len(rows) - MAX_ROWS} more in `usage` | | | | | | | | |")
    return "\n".join(lines)


def stages_table(usage: DayUsage) -> str:
    seconds: dict[tuple[str, str], float] = {}
    for row in usage.jobs:
        for stage, value in row.stage_seconds.items():
            seconds[(row.domain, stage)] = seconds.get((row.domain, stage), 0.0) + value
    lines = ["| domain | stage | seconds |", "|---|---|---:|"]
    lines += [f"| {d} | {s} | {v:.1f} |" for (d, s), v in sorted(seconds.items())]
    return "\n".join(lines)


def usage_metadata(usage: DayUsage) -> dict[str, Any]:
    """Numbers first (one plot each over the partitions), then the tables and the whole figures."""
    t = usage.total()
    m, b = t.claude_messages, t.claude_batch
    return {
        "runs": dg.MetadataValue.int(t.runs),
        "runs_succeeded": dg.MetadataValue.int(t.runs_succeeded),
        "runs_failed": dg.MetadataValue.int(t.runs_failed),
        "runs_cancelled": dg.MetadataValue.int(t.runs_cancelled),
        "media_minutes": dg.MetadataValue.float(round(float(t.media_seconds) / 60, 3)),
        "words": dg.MetadataValue.int(t.words),
        "decks": dg.MetadataValue.int(t.decks),
        "journeys": dg.MetadataValue.int(t.journeys),
        "claude_requests": dg.MetadataValue.int(m.requests + b.requests),
        "claude_input_tokens": dg.MetadataValue.int(m.input_tokens + b.input_tokens),
        "claude_output_tokens": dg.MetadataValue.int(m.output_tokens + b.output_tokens),
        "claude_messages_usd": dg.MetadataValue.float(float(m.cost_usd)),
        "claude_batch_usd": dg.MetadataValue.float(float(b.cost_usd)),
        "claude_usd": dg.MetadataValue.float(float(t.claude_usd)),
        "stage_seconds": dg.MetadataValue.float(round(float(sum(t.stage_seconds.values())), 3)),
        "by_domain": dg.MetadataValue.md(figures_table(usage.by_domain(), "domain")),
        "by_job": dg.MetadataValue.md(figures_table(usage.jobs, "domain / job", lambda r: f"{r.domain} / `{r.job}`")),
        "stage_seconds_by_stage": dg.MetadataValue.md(stages_table(usage)),
        "timezone": dg.MetadataValue.text(usage.timezone),
        "usage": dg.MetadataValue.json(usage.model_dump(mode="json")),
    }
