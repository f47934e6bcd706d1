"""Where a journey's research record is written, and writing it (the run-status sensor and the CLI).

`$STAGEFLOW_HOME/journey/<journey>/record/`: beside the stage dirs, in no stage's own dir (no
asset makes it; it is read from the event log and every stage's items when the run ends).
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from stageflow_assets.core.paths import StagePaths
from stageflow_assets.journey.stage_dirs import DOMAIN, RECORD_DIR

RECORD_FORMAT = "json"


def record_dir(paths: StagePaths, key: str) -> Path:
    return paths.job_dir(DOMAIN, key) / RECORD_DIR


def write_journey_record(instance: dg.DagsterInstance, paths: StagePaths, key: str) -> Path:
    """Build the journey's record from the instance and the stage dirs; export it as JSON."""
    from stageflow_assets.records.build import record_for
    from stageflow_assets.records.exports import export

    record = record_for(instance, key, paths)
    return export(record, RECORD_FORMAT, record_dir(paths, key), paths)
