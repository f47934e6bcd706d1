"""The three schedules as the code location defines them, the days they count in, and the
settings that move them (`STAGEFLOW_TIMEZONE`, `STAGEFLOW_<NAME>_CRON`), read when it loads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date

import dagster as dg
import pytest

from stageflow_assets.core.days import day_before, day_window
from stageflow_assets.definitions import defs
from stageflow_assets_tests.conftest import REPO

EXPECTED = {  # name: (job, default status, cron)
    "daily_usage_schedule": ("daily_usage_job", dg.DefaultScheduleStatus.RUNNING, "10 0 * * *"),
    "nightly_deck_sync": ("anki_sync_job", dg.DefaultScheduleStatus.STOPPED, "30 2 * * *"),
    "nightly_research_bundle": ("research_bundle_job", dg.DefaultScheduleStatus.STOPPED, "20 0 * * *"),
}


def test_the_three_schedules_are_defined_with_a_description_in_utc():
    schedules = {s.name: s for s in defs.schedules}
    assert set(schedules) == set(EXPECTED)
    for name, (job, status, cron) in EXPECTED.items():
        schedule = schedules[name]
        assert (schedule.job_name, schedule.default_status, schedule.cron_schedule) == (job, status, cron), name
        assert schedule.execution_timezone == "UTC"
        assert len(schedule.description) > 80, name
    graph = defs.resolve_asset_graph()
    for asset in ("daily_usage", "research_bundle"):
        partitions = graph.get(dg.AssetKey(asset)).partitions_def
        assert isinstance(partitions, dg.DailyPartitionsDefinition) and partitions.timezone == "UTC"
        assert partitions.get_first_partition_key() == "2026-01-01"


def _load(env: dict[str, str]) -> subprocess.CompletedProcess:
    code = ("import json; from stageflow_assets.definitions import defs; "
            "print(json.dumps({s.name: [s.cron_schedule, s.execution_timezone] for s in defs.schedules}))")
    return subprocess.run([sys.executable, "-W", "ignore", "-c", code], cwd=REPO, capture_output=True, text=True,
                          timeout=300, env={**os.environ, **env})


def test_the_timezone_and_the_crons_come_from_the_environment():
    loaded = _load({"STAGEFLOW_TIMEZONE": "Europe/Berlin", "STAGEFLOW_DECK_SYNC_CRON": "15 4 * * 1-5"})
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    assert json.loads(loaded.stdout.strip().splitlines()[-1]) == {
        "daily_usage_schedule": ["10 0 * * *", "Europe/Berlin"],
        "nightly_deck_sync": ["15 4 * * 1-5", "Europe/Berlin"],
        "nightly_research_bundle": ["20 0 * * *", "Europe/Berlin"],
    }
    bad = _load({"STAGEFLOW_TIMEZONE": "Mars/Olympus"})
    assert bad.returncode != 0
    assert ("STAGEFLOW_TIMEZONE='Mars/Olympus' is not a time zone: use an IANA name such as Europe/Berlin or UTC"
            in bad.stderr)


@pytest.mark.parametrize(("day", "hours"), [("2026-03-29", 23), ("2026-10-25", 25), ("2026-06-01", 24)])
def test_a_day_is_midnight_to_midnight_in_its_zone(day, hours):
    start, end = day_window(day, "Europe/Berlin")
    assert end.timestamp() - start.timestamp() == hours * 3600  # (same-zone subtraction is wall time)
    assert day_before(end, "Europe/Berlin") == date.fromisoformat(day)
    assert day_before(start, "Europe/Berlin") < date.fromisoformat(day)
