"""`stageflow events`: stageflow's events read back from the instance's event log.

The same mapping as the sink (`core.events.EventMapper`), so a run's events print exactly as
its sink received them, and also for runs no run process ever saw: a run queued then cancelled
has RUN_ENQUEUED and RUN_CANCELED in its log, printed as `pipeline.created` and
`pipeline.cancelled`.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

import dagster as dg

from stageflow_assets.core.events import WANTED, EventMapper, mapper_for_stageflow
from stageflow_assets.core.stage import JOB_TAG

POLL_S = 0.5
_TYPES = {dg.DagsterEventType(value) for value in WANTED}
_ENDED = ("pipeline.completed", "pipeline.failed", "pipeline.cancelled")
_OVERLAP = timedelta(seconds=2)  # run records are polled by update time: a little overlap loses none


def _events_of(instance: dg.DagsterInstance, run: dg.DagsterRun, mapper: EventMapper,
               cursor: str | None) -> tuple[list[tuple[float, int, dict[str, Any]]], str | None]:
    """The run's mapped events after `cursor`, as (time, storage id, event), and the new cursor."""
    connection = instance.get_records_for_run(run.run_id, cursor=cursor, of_type=_TYPES)
    out = []
    for record in connection.records:
        entry = record.event_log_entry
        for event in mapper.map(entry.dagster_event, run.run_id, entry.timestamp, run.tags, run.job_name):
            out.append((entry.timestamp, record.storage_id, event))
    return out, connection.cursor if connection.records else cursor


def event_lines(instance: dg.DagsterInstance, job: str | None = None, follow: bool = False,
                poll_s: float = POLL_S) -> Iterator[str]:
    """One JSON object a line, oldest first; with `follow`, then every new event as it is stored."""
    import stageflow_assets.definitions  # noqa: F401 - the mapper names stages from them

    mapper = mapper_for_stageflow(honour_created_tag=False)
    tags = {JOB_TAG: job} if job else None
    open_runs: dict[str, tuple[dg.DagsterRun, str | None]] = {}
    ended: set[str] = set()
    since = datetime.now(timezone.utc) - _OVERLAP
    records = instance.get_run_records(filters=dg.RunsFilter(tags=tags), order_by="create_timestamp", ascending=True)
    runs = [r.dagster_run for r in records]
    while True:
        batch = []
        for run in runs:
            if run.run_id not in ended:
                open_runs[run.run_id] = (run, open_runs.get(run.run_id, (run, None))[1])
        for run_id, (run, cursor) in list(open_runs.items()):
            events, cursor = _events_of(instance, run, mapper, cursor)
            batch.extend(events)
            open_runs[run_id] = (run, cursor)
            if any(e["type"] in _ENDED for _, _, e in events) or (not follow and run.is_finished):
                ended.add(run_id)
                del open_runs[run_id]
        for _, _, event in sorted(batch, key=lambda item: item[:2]):
            yield json.dumps(event, separators=(",", ":"), ensure_ascii=False)
        if not follow:
            return
        time.sleep(poll_s)
        polled = datetime.now(timezone.utc)
        runs = [r.dagster_run for r in instance.get_run_records(
            filters=dg.RunsFilter(tags=tags, updated_after=since), order_by="create_timestamp", ascending=True)]
        since = polled - _OVERLAP
