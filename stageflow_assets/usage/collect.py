"""A day's figures read back from the instance: the stageflow runs that ended that day, their
steps, and what their materializations say (the stage manifests' metadata).

Where each figure comes from:
- runs: the run's status (SUCCESS, FAILURE, CANCELED); a run belongs to a job by its
  `stageflow/job` tag (its partition otherwise) and to a domain by `stageflow/domain` (or the
  domain that has the job's folder);
- media seconds: each transcript made (not reused) counts the length of its audio, the
  `duration_s` of the `audio` materialization it was made from;
- words and decks: each deck built (not reused) counts one deck and its `notes`;
- Claude: `llm_usage` (Messages rate) of every materialization that is not a reuse;
  `llm_batch_round_usage` (batch rate) of each batch ingestion; a journey's Claude calls from
  its record items (backend `claude`, `usage`) of that run;
- stage seconds: from each step's start to its success or failure.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import dagster as dg

from stageflow_assets.core.days import day_of, day_window, ended_at, runs_ended_between
from stageflow_assets.core.keys import KEY_PATTERN
from stageflow_assets.core.paths import StagePaths
from stageflow_assets.core.stage import JOB_TAG
from stageflow_assets.records.build import DOMAIN_TAG, DOMAINS
from stageflow_assets.records.tracker import ITEMS_FILE, read_items
from stageflow_assets.usage.figures import DayUsage, JobFigures

_TYPES = {dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE,
          dg.DagsterEventType.ASSET_MATERIALIZATION, dg.DagsterEventType.ASSET_OBSERVATION}
_STATUS_FIELD = {dg.DagsterRunStatus.SUCCESS: "runs_succeeded", dg.DagsterRunStatus.FAILURE: "runs_failed",
                 dg.DagsterRunStatus.CANCELED: "runs_cancelled"}
AUDIO, TRANSCRIPT, DECK, BATCH_RESULTS = "audio", "transcript", "anki_deck", "claude_batch_results"


def job_and_domain(run: dg.DagsterRun, paths: StagePaths) -> tuple[str, str] | None:
    """(domain, job) of a stageflow run; None for any other run (e.g. `daily_usage`'s own)."""
    tags = run.tags
    job = tags.get(JOB_TAG) or tags.get("dagster/partition/job") or tags.get("dagster/partition")
    if not job or not KEY_PATTERN.match(job):
        return None
    domain = tags.get(DOMAIN_TAG)
    if domain not in DOMAINS:
        domain = next((d for d in DOMAINS if paths.job_dir(d, job).is_dir()), None)
    return (domain, job) if domain else None


def _plain(metadata: dict[str, Any]) -> dict[str, Any]:
    return {key: getattr(value, "value", value) for key, value in metadata.items()}


class _RunReader:
    """One run's figures from its event log."""

    def __init__(self, instance: dg.DagsterInstance, paths: StagePaths, record: dg.RunRecord,
                 domain: str, job: str) -> None:
        self.instance, self.paths, self.run = instance, paths, record.dagster_run
        self.row = JobFigures(domain=domain, job=job)
        setattr(self.row, _STATUS_FIELD[self.run.status], 1)
        self.audio: dict[str, float] = {}  # partition -> seconds, from this run's audio step
        self.transcripts: list[tuple[str, float]] = []  # (partition, when)

    def read(self) -> JobFigures:
        starts: dict[str, float] = {}
        for record in self.instance.get_records_for_run(self.run.run_id, of_type=_TYPES).records:
            entry = record.event_log_entry
            event = entry.dagster_event
            if event is None:
                continue
            kind = event.event_type
            if kind == dg.DagsterEventType.STEP_START:
                starts[event.step_key] = entry.timestamp
            elif kind in (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE):
                if event.step_key in starts:
                    self.row.add_stage_seconds(event.step_key, entry.timestamp - starts.pop(event.step_key))
            elif kind == dg.DagsterEventType.ASSET_MATERIALIZATION:
                self._materialized(event.step_materialization_data.materialization, entry.timestamp)
            else:  # an ingestion that waits for a follow-up batch records its round as an observation
                observation = event.asset_observation_data.asset_observation
                self._batch_usage(observation.asset_key.to_user_string(), _plain(observation.metadata))
        for partition, when in self.transcripts:
            seconds = self.audio.get(partition)
            self.row.media_seconds = round(self.row.media_seconds + (
                seconds if seconds is not None else self._audio_before(partition, when)), 3)
        if self.row.domain == "journey":
            self._journey_calls()
        return self.row

    def _materialized(self, materialization: dg.AssetMaterialization, when: float) -> None:
        asset = materialization.asset_key.to_user_string()
        meta = _plain(materialization.metadata)
        if asset == AUDIO and isinstance(meta.get("duration_s"), (int, float)):
            self.audio[str(materialization.partition)] = float(meta["duration_s"])
        if meta.get("reused") is True:
            return  # nothing was made: its details are the earlier run's
        if asset == TRANSCRIPT and meta.get("status") == "success":
            self.transcripts.append((str(materialization.partition), when))
        if asset == DECK and meta.get("status") == "success":
            self.row.decks += 1
            self.row.words += int(meta.get("notes") or 0)
        if isinstance(meta.get("llm_usage"), dict):
            self.row.claude_messages.add_usage(meta["llm_usage"])
        self._batch_usage(asset, meta)

    def _batch_usage(self, asset: str, meta: dict[str, Any]) -> None:
        if isinstance(meta.get("llm_batch_round_usage"), dict):
            self.row.claude_batch.add_usage(meta["llm_batch_round_usage"])
        elif asset == BATCH_RESULTS and meta.get("round") == 0 and isinstance(meta.get("llm_batch_usage"), dict):
            # recorded before ingestions named their round's usage: round 0's total is its own
            self.row.claude_batch.add_usage(meta["llm_batch_usage"])

    def _audio_before(self, partition: str, when: float) -> float:
        """The audio a re-executed transcript step read: the partition's audio made before it."""
        found = self.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(AUDIO), asset_partitions=[partition],
                                  before_timestamp=when), limit=1).records
        if not found:
            return 0.0
        seconds = _plain(found[0].asset_materialization.metadata).get("duration_s")
        return float(seconds) if isinstance(seconds, (int, float)) else 0.0

    def _journey_calls(self) -> None:
        self.row.journeys = 1
        folder = self.paths.job_dir("journey", self.row.job)
        for path in sorted(folder.rglob(ITEMS_FILE)) if folder.is_dir() else []:
            try:
                items = read_items(path)
            except ValueError:
                continue  # the record says what is wrong with it; the figures go on without
            for item in items:
                usage = item.metadata.get("usage")
                if item.run_id == self.run.run_id and item.backend == "claude" and isinstance(usage, dict):
                    self.row.claude_messages.add_usage(usage)


def usage_by_day(instance: dg.DagsterInstance, paths: StagePaths, first: date, last: date,
                 tz: str) -> dict[str, DayUsage]:
    """Every day from `first` to `last` (inclusive) from the runs that ended on it; one query for
    the runs of the whole span."""
    start, _ = day_window(first, tz)
    _, end = day_window(last, tz)
    rows: dict[str, dict[tuple[str, str], JobFigures]] = {}
    for record in runs_ended_between(instance, start, end):
        who = job_and_domain(record.dagster_run, paths)
        if who is None:
            continue
        row = _RunReader(instance, paths, record, *who).read()
        day = rows.setdefault(day_of(ended_at(record), tz).isoformat(), {})
        day[who] = day[who].merged(row) if who in day else row
    out = {}
    current = first
    while current <= last:
        found = rows.get(current.isoformat(), {})
        for row in found.values():
            row.journeys = min(row.journeys, 1)  # a journey run again the same day is still one journey
        out[current.isoformat()] = DayUsage(day=current.isoformat(), timezone=tz,
                                            jobs=sorted(found.values(), key=lambda r: (r.domain, r.job)))
        current += timedelta(days=1)
    return out


def day_usage(instance: dg.DagsterInstance, paths: StagePaths, day: date | str, tz: str) -> DayUsage:
    day = date.fromisoformat(day) if isinstance(day, str) else day
    return usage_by_day(instance, paths, day, day, tz)[day.isoformat()]
