"""The three schedules ticking in the real scheduler: `dagster-daemon run` on the project's
workspace, a fresh home, each schedule's cron set to every minute (`STAGEFLOW_<NAME>_CRON`).

A deck was synced to AnkiConnect (the loopback fake) and rebuilt from a changed list since.
After two ticks or more of each schedule: the deck sync asked for that deck once (one run, run
key of the day, synced: the new word is in Anki) and nothing more; yesterday, in this fresh home,
had no runs and no journeys, so the usage and research-bundle schedules skipped, saying so.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import pytest

from stageflow_assets.providers.process import stop_process_group
from stageflow_assets.vocabulary.registry import deck_key
from stageflow_assets_tests.conftest import REPO, instance_with_env, run_cli
from stageflow_assets_tests.vocabulary.fakes import FakeAnki, FakeServer

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
DECK = "Daemon::Fruit"
SCHEDULES = ("daily_usage_schedule", "nightly_deck_sync", "nightly_research_bundle")
EVERY_MINUTE = "* * * * *"
MARKER = "STAGEFLOW_SCHEDULES_RIG"


def marked(marker: str) -> list[int]:
    """Live processes started under this test (the marker is in their environment)."""
    needle, found = f"{MARKER}={marker}".encode(), []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) != os.getpid():
            try:
                if needle in (proc / "environ").read_bytes().split(b"\0") and \
                        (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                    found.append(int(proc.name))
            except OSError:
                continue
    return found


def ticks_of(instance: dg.DagsterInstance) -> dict[str, list]:
    """Each schedule's finished ticks, oldest first (tick statuses by name: their enum is not public)."""
    out = {}
    for state in instance.all_instigator_state():
        if state.name in SCHEDULES:
            ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id)
            out[state.name] = sorted((t for t in ticks if t.status.value != "STARTED"),
                                     key=lambda t: t.timestamp)
    return out


def wait_for(what: str, done, daemon: subprocess.Popen, log: Path, timeout: float = 600) -> None:
    """Poll until `done()`: a safety net of minutes, never a measure."""
    deadline = time.monotonic() + timeout
    while not done():
        if daemon.poll() is not None:
            raise AssertionError(f"the daemon ended ({daemon.returncode}): {log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g} s; daemon log: {log.read_text()[-3000:]}")
        time.sleep(2)


def test_each_schedule_ticks_in_the_daemon_once_per_minute_without_duplicates(tmp_path):
    fake = FakeAnki()
    with FakeServer(fake) as anki:
        env = {**os.environ, "STAGEFLOW_HOME": str(tmp_path / "stageflow"), "DAGSTER_HOME": str(tmp_path / "dagster"),
               "STAGEFLOW_ANKICONNECT_URL": anki.url, "STAGEFLOW_LEXICON": "wordnet", "ANTHROPIC_API_KEY": "",
               "STAGEFLOW_TIMEZONE": "UTC", "STAGEFLOW_EVENT_SINK": "",
               "STAGEFLOW_DAILY_USAGE_CRON": EVERY_MINUTE, "STAGEFLOW_DECK_SYNC_CRON": EVERY_MINUTE,
               "STAGEFLOW_RESEARCH_BUNDLE_CRON": EVERY_MINUTE, MARKER: uuid.uuid4().hex}
        for name in ("STAGEFLOW_POSTGRES_URL", "STAGEFLOW_CELERY_BROKER"):
            env.pop(name, None)
        words = tmp_path / "fruit.txt"
        words.write_text("apple\npear\n", encoding="utf-8")
        first = run_cli("vocab", words, "--deck", DECK, "--sync", env=env)
        assert first.returncode == 0, first.stderr[-3000:]
        words.write_text("apple\npear\nplum\n", encoding="utf-8")
        rebuilt = run_cli("vocab", words, "--deck", DECK, env=env)
        assert rebuilt.returncode == 0, rebuilt.stderr[-3000:]

        workspace = str(REPO / "workspace.yaml")
        started = subprocess.run([str(BIN / "dagster"), "schedule", "start", "--start-all", "-w", workspace],
                                 env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
        assert started.returncode == 0, started.stderr[-3000:]
        log = tmp_path / "daemon.log"
        with log.open("w") as out:
            daemon = subprocess.Popen([str(BIN / "dagster-daemon"), "run", "-w", workspace], env=env, cwd=REPO,
                                      stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            with instance_with_env(env) as instance:
                def sync_runs():
                    return [r.dagster_run for r in instance.get_run_records(
                        filters=dg.RunsFilter(tags={"dagster/schedule_name": "nightly_deck_sync"}))]

                def settled():
                    ticks = ticks_of(instance)
                    runs = sync_runs()
                    if len(ticks) < 3 or any(len(t) < 2 for t in ticks.values()) or not runs:
                        return False
                    if not all(r.is_finished for r in runs):
                        return False
                    ended = max(r.end_time or 0 for r in instance.get_run_records(
                        filters=dg.RunsFilter(run_ids=[r.run_id for r in runs])))
                    return any(t.timestamp > ended for t in ticks["nightly_deck_sync"])

                wait_for("two ticks of each schedule, the sync run and a tick after it", settled, daemon, log)
                ticks, runs = ticks_of(instance), sync_runs()
                run_records = instance.get_run_records(filters=dg.RunsFilter(run_ids=[r.run_id for r in runs]))
        finally:
            stop_process_group(daemon, grace_s=20)
    assert marked(env[MARKER]) == []  # the daemon, its code server and the run process are gone

    job = deck_key(DECK)
    (run,) = runs  # one run for the changed deck, however many ticks saw it
    assert run.status == dg.DagsterRunStatus.SUCCESS, log.read_text()[-3000:]
    day = datetime.fromtimestamp(ticks["nightly_deck_sync"][0].timestamp, timezone.utc).date()
    assert run.tags["dagster/partition"] == job
    assert run.tags["dagster/run_key"] == f"nightly_deck_sync:{day}:{job}"
    assert {n["fields"]["Headword"] for n in fake.notes.values()} == {"apple", "pear", "plum"}
    sync_ticks = ticks["nightly_deck_sync"]
    assert sync_ticks[0].status.value == "SUCCESS" and sync_ticks[0].run_ids == [run.run_id]
    assert all(t.run_ids in ([], [run.run_id]) for t in sync_ticks[1:])
    (ended,) = [r.end_time for r in run_records]
    after = [t for t in sync_ticks if t.timestamp > ended]
    assert after and all(t.status.value == "SKIPPED" for t in after)
    assert after[-1].skip_reason == f"1 deck(s) synced to {anki.url}: none changed since its last sync"

    for name, reason in (("daily_usage_schedule", "no stageflow run ended on {day} (UTC): nothing to count"),
                         ("nightly_research_bundle", "no journey ran on {day} (UTC): no bundle to write")):
        for tick in ticks[name]:
            yesterday = datetime.fromtimestamp(tick.timestamp, timezone.utc).date() - timedelta(days=1)
            assert (tick.status.value, tick.skip_reason) == ("SKIPPED", reason.format(day=yesterday)), name
            assert tick.run_ids == []
