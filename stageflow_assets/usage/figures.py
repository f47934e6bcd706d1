"""The figures of a day: one row per stageflow job (a video, a deck, a journey), summed per
domain and in total. Claude's usage is kept at the Messages rate and the batch rate apart."""

from __future__ import annotations

from typing import Any, Iterable

from pydantic import BaseModel, Field


class ClaudeFigures(BaseModel):
    """Tokens and cost of Claude requests at one rate. `cost_usd` leaves out requests to a model
    without a price (`unpriced_requests`): an unknown cost is not a zero cost."""

    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_write_tokens: int = 0
    cache_read_tokens: int = 0
    cost_usd: float = 0.0
    unpriced_requests: int = 0

    def add_usage(self, usage: dict[str, Any]) -> None:
        """Add a `providers.llm_types.Usage` as recorded in metadata or a record item."""
        requests = int(usage.get("requests") or 0)
        self.requests += requests
        self.input_tokens += int(usage.get("input_tokens") or 0)
        self.output_tokens += int(usage.get("output_tokens") or 0)
        self.cache_write_tokens += int(usage.get("cache_creation_input_tokens") or 0)
        self.cache_read_tokens += int(usage.get("cache_read_input_tokens") or 0)
        if usage.get("cost_usd") is None:
            self.unpriced_requests += requests
        else:
            self.cost_usd = round(self.cost_usd + float(usage["cost_usd"]), 8)

    def __add__(self, other: ClaudeFigures) -> ClaudeFigures:
        return ClaudeFigures(**{name: round(getattr(self, name) + getattr(other, name), 8)
                                if name == "cost_usd" else getattr(self, name) + getattr(other, name)
                                for name in ClaudeFigures.model_fields})


class JobFigures(BaseModel):
    """What one job's runs that ended on the day did."""

    domain: str
    job: str
    runs_succeeded: int = 0
    runs_failed: int = 0
    runs_cancelled: int = 0
    media_seconds: float = 0.0  # audio transcribed (a reused transcript is not transcribed again)
    words: int = 0  # notes of the decks built
    decks: int = 0  # deck builds that made a new .apkg (a reused one is not counted)
    journeys: int = 0  # journey runs
    claude_messages: ClaudeFigures = Field(default_factory=ClaudeFigures)
    claude_batch: ClaudeFigures = Field(default_factory=ClaudeFigures)
    stage_seconds: dict[str, float] = Field(default_factory=dict)  # asset step -> seconds, all runs

    @property
    def runs(self) -> int:
        return self.runs_succeeded + self.runs_failed + self.runs_cancelled

    @property
    def claude_usd(self) -> float:
        return round(self.claude_messages.cost_usd + self.claude_batch.cost_usd, 8)

    def add_stage_seconds(self, stage: str, seconds: float) -> None:
        self.stage_seconds[stage] = round(self.stage_seconds.get(stage, 0.0) + seconds, 3)

    def merged(self, other: JobFigures, domain: str | None = None, job: str | None = None) -> JobFigures:
        stages = dict(self.stage_seconds)
        for stage, seconds in other.stage_seconds.items():
            stages[stage] = round(stages.get(stage, 0.0) + seconds, 3)
        return JobFigures(
            domain=domain or self.domain, job=job or self.job,
            runs_succeeded=self.runs_succeeded + other.runs_succeeded, runs_failed=self.runs_failed + other.runs_failed,
            runs_cancelled=self.runs_cancelled + other.runs_cancelled,
            media_seconds=round(self.media_seconds + other.media_seconds, 3), words=self.words + other.words,
            decks=self.decks + other.decks, journeys=self.journeys + other.journeys,
            claude_messages=self.claude_messages + other.claude_messages,
            claude_batch=self.claude_batch + other.claude_batch, stage_seconds=stages,
        )


def total(rows: Iterable[JobFigures], domain: str = "all", job: str = "all") -> JobFigures:
    out = JobFigures(domain=domain, job=job)
    for row in rows:
        out = out.merged(row, domain, job)
    return out


class DayUsage(BaseModel):
    """A day's figures (`day` in `timezone`), one row per job, from the runs that ended that day."""

    day: str
    timezone: str
    jobs: list[JobFigures] = Field(default_factory=list)

    def by_domain(self) -> list[JobFigures]:
        domains = sorted({row.domain for row in self.jobs})
        return [total((r for r in self.jobs if r.domain == d), domain=d, job="all") for d in domains]

    def total(self) -> JobFigures:
        return total(self.jobs)
