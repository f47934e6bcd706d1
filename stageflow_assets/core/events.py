"""stageflow's event taxonomy, derived from Dagster's own events.

A "pipeline" is one Dagster run; a "stage" is one asset step of it:

    RUN_ENQUEUED  -> pipeline.created        STEP_START    -> stage.<asset>.started
    RUN_START     -> pipeline.started        STEP_SUCCESS  -> stage.<asset>.completed
    RUN_SUCCESS   -> pipeline.completed                       (.skipped when its manifest says so)
    RUN_FAILURE   -> pipeline.failed         STEP_FAILURE  -> stage.<asset>.failed
    RUN_CANCELED  -> pipeline.cancelled      STEP_SKIPPED  -> stage.<asset>.skipped

A run created and executed in one process (`dg.execute_job`, how the CLI runs) is never queued,
so its log has no RUN_ENQUEUED: `pipeline.created` is then emitted right before the first
pipeline event of the run (stamped like it); a run process does not send it when the run's
creator reported it to the sink itself (`CREATED_REPORTED_TAG`). Steps of separate asset-check ops are not stages (a blocking check that
fails shows in `pipeline.failed`'s error); an asset's own checks run inside its step.

The same `EventMapper` feeds the sink (`core.event_sink`, in every run process) and
`stageflow events` (`core.event_log`, from the instance's event log), so both print the same
events.
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from datetime import datetime, timezone
from typing import Any, Mapping

from stageflow_assets.core.redact import scrub
from stageflow_assets.core.stage import JOB_TAG, SOURCE_TAG

# Dagster's DagsterEventType values (strings, so the run thread compares without enum lookups)
RUN_ENQUEUED, RUN_START, RUN_SUCCESS = "PIPELINE_ENQUEUED", "PIPELINE_START", "PIPELINE_SUCCESS"
RUN_FAILURE, RUN_CANCELED = "PIPELINE_FAILURE", "PIPELINE_CANCELED"
STEP_START, STEP_SUCCESS, STEP_FAILURE, STEP_SKIPPED = "STEP_START", "STEP_SUCCESS", "STEP_FAILURE", "STEP_SKIPPED"
MATERIALIZATION = "ASSET_MATERIALIZATION"

PIPELINE_KINDS = {RUN_ENQUEUED: "created", RUN_START: "started", RUN_SUCCESS: "completed",
                  RUN_FAILURE: "failed", RUN_CANCELED: "cancelled"}
STAGE_KINDS = {STEP_START: "started", STEP_SUCCESS: "completed", STEP_FAILURE: "failed", STEP_SKIPPED: "skipped"}
# what a run process hands the sink: the taxonomy, plus materializations (a stage's manifest status)
WANTED = frozenset(PIPELINE_KINDS) | frozenset(STAGE_KINDS) | {MATERIALIZATION}

# a creator that reports `pipeline.created` itself (e.g. when it queues the run) tags the run so
CREATED_REPORTED_TAG = "stageflow/created_reported"
PARTITION_TAG = "dagster/partition"
MAX_ERROR_CHARS = 500
_REMEMBERED_RUNS = 1000  # per process: bounded, a worker runs runs for weeks

def iso_time(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def one_line(text: str | None, fallback: str) -> str:
    lines = (text or "").strip().splitlines()
    line = scrub(lines[0].strip()) if lines else fallback
    return line if len(line) <= MAX_ERROR_CHARS else line[: MAX_ERROR_CHARS - 1] + "…"


def step_error(failure_data: Any) -> str:
    """A step failure in one line: a `dg.Failure`'s description, else its error's first line."""
    user = failure_data.user_failure_data
    if user is not None and user.description:
        return one_line(user.description, "step failed")
    error = failure_data.error
    # Dagster wraps the user's exception; the cause is what the user can act on
    while error is not None and error.cause is not None and "DagsterExecution" in error.cls_name:
        error = error.cause
    if error is not None and error.cls_name == "DagsterAssetCheckFailedError":
        # "N blocking asset check(s) failed with ERROR severity:" and then one "asset: check" a line
        failed = [line.strip() for line in error.message.splitlines()[1:] if line.strip()]
        return one_line(f"blocking check failed: {', '.join(failed) or '?'}", "step failed")
    return one_line(error.message if error else None, "step failed")


def event_type_name(kind: str, stage: str | None = None) -> str:
    return f"stage.{stage}.{kind}" if stage else f"pipeline.{kind}"


def stageflow_event(kind: str, *, run_id: str, timestamp: float, tags: Mapping[str, str],
                    dagster_job: str | None, stage: str | None = None, **extra: Any) -> dict[str, Any]:
    """One stageflow event: `type`, `time`, `run_id`, `job`, (`stage`), context, `extra`, and an
    `id` (run id and type: each happens once per run) that tells a sink's duplicates apart."""
    name = event_type_name(kind, stage)
    event: dict[str, Any] = {"type": name, "time": iso_time(timestamp), "run_id": run_id, "job": tags.get(JOB_TAG)}
    if stage:
        event["stage"] = stage
    event["dagster_job"] = dagster_job
    if tags.get(PARTITION_TAG):
        event["partition"] = tags[PARTITION_TAG]
    if tags.get(SOURCE_TAG):
        event["source"] = tags[SOURCE_TAG]
    event.update({k: v for k, v in extra.items() if v is not None})
    event["id"] = f"{run_id}:{name}"
    return event


class EventMapper:
    """Dagster events of any number of runs, in order, to stageflow events.

    Stateful per process: which runs it has seen (for `pipeline.created`) and which steps
    materialized a manifest with `status: skipped` (their success is `stage.<asset>.skipped`).
    """

    def __init__(self, stages: Mapping[str, str] | None = None, check_steps: frozenset[str] = frozenset(),
                 honour_created_tag: bool = True):
        self.stages = dict(stages or {})  # op name -> asset name, where they differ or are known
        self.check_steps = check_steps
        # a sink got `created` from the run's creator; the event log has no record of that report
        self.honour_created_tag = honour_created_tag
        self.runs_seen: OrderedDict[str, None] = OrderedDict()
        self.skipped: dict[tuple[str, str], str] = {}

    def stage_of(self, step_key: str | None) -> str | None:
        if not step_key or step_key in self.check_steps:
            return None
        return self.stages.get(step_key, step_key)

    def map(self, event: Any, run_id: str, timestamp: float, tags: Mapping[str, str],
            dagster_job: str | None) -> list[dict[str, Any]]:
        """`event`: a `dg.DagsterEvent`; `tags`: its run's tags."""
        value = event.event_type_value
        common = {"run_id": run_id, "timestamp": timestamp, "tags": tags, "dagster_job": dagster_job}
        if value in PIPELINE_KINDS:
            out = []
            if run_id not in self.runs_seen:
                self._remember(run_id)
                reported = self.honour_created_tag and tags.get(CREATED_REPORTED_TAG) == "true"
                if value != RUN_ENQUEUED and not reported:
                    out.append(stageflow_event("created", **common))
            out.append(stageflow_event(PIPELINE_KINDS[value], **common, error=self._run_error(event)
                                       if value == RUN_FAILURE else None))
            return out
        stage = self.stage_of(event.step_key)
        if stage is None:
            return []
        if value == MATERIALIZATION:
            reason = skipped_reason(event)
            if reason is not None:
                self.skipped[(run_id, event.step_key)] = reason
            return []
        if value == STEP_SUCCESS and (run_id, event.step_key) in self.skipped:
            return [stageflow_event("skipped", stage=stage, **common,
                                    reason=self.skipped.pop((run_id, event.step_key)) or None)]
        if value == STEP_FAILURE:
            self.skipped.pop((run_id, event.step_key), None)
            return [stageflow_event("failed", stage=stage, **common, error=step_error(event.step_failure_data))]
        if value in STAGE_KINDS:
            return [stageflow_event(STAGE_KINDS[value], stage=stage, **common)]
        return []

    def _remember(self, run_id: str) -> None:
        self.runs_seen[run_id] = None
        if len(self.runs_seen) > _REMEMBERED_RUNS:
            self.runs_seen.popitem(last=False)

    def _run_error(self, event: Any) -> str:
        data = event.job_failure_data
        first = data.first_step_failure_event if data is not None else None
        if first is not None:
            return f"{self.stage_of(first.step_key) or first.step_key}: {step_error(first.step_failure_data)}"
        if data is not None and data.error is not None:
            return one_line(data.error.message, "run failed")
        return one_line(event.message, "run failed")


def skipped_reason(event: Any) -> str | None:
    """'' or the reason when a materialization's stageflow manifest says the stage was skipped."""
    metadata = event.step_materialization_data.materialization.metadata
    status = metadata.get("status")
    if status is None or getattr(status, "value", status) != "skipped":
        return None
    reason = metadata.get("skipped_reason")
    return one_line(str(getattr(reason, "value", reason)), "") if reason is not None else ""


def stageflow_steps() -> tuple[dict[str, str], frozenset[str]] | None:
    """(op name -> asset name, asset-check op names) of stageflow's code location, if loaded.

    Read from the definitions a run process has already imported; None where they are not
    (every step is then a stage, named by its step key).
    """
    module = sys.modules.get("stageflow_assets.definitions")
    defs = getattr(module, "defs", None)
    if defs is None:
        return None
    import dagster as dg

    stages, checks = {}, set()
    for node in list(defs.assets or []) + list(defs.asset_checks or []):
        if isinstance(node, dg.AssetChecksDefinition):
            checks.add(node.op.name)
        elif isinstance(node, dg.AssetsDefinition) and node.is_executable:
            if len(node.keys) == 1:
                stages[node.op.name] = next(iter(node.keys)).to_user_string()
    return stages, frozenset(checks)


def mapper_for_stageflow(honour_created_tag: bool = True) -> EventMapper:
    stages, checks = stageflow_steps() or ({}, frozenset())
    return EventMapper(stages, checks, honour_created_tag)
