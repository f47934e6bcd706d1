"""From the inbox to the outbox through the Dagster daemon, for real: `dagster-daemon run` on the
project's workspace, a fresh home, videos renamed into the inbox (the rig of test_inbox_load.py).

One video goes through: its source run, a run per language, the mux run that also delivers, all
chained by the sensors (no automation, no backfill); its files land in its outbox folder. Then
Apertium starts writing unreadable Spanish (a blank first cue, then one 300-letter word a cue) and
a second video's blocking QC check fails: its Spanish run fails, the mux is held, and its outbox
folder holds FAILED.txt saying so. bench/inbox_outbox.py times the first case.
"""

from __future__ import annotations

import os
import time

import dagster as dg
import pytest

from stageflow_assets.core.keys import job_key_for_file
from stageflow_assets.subtitles.sensors import CHAIN_TAG
from stageflow_assets_tests.conftest import APERTIUM, fake_apertium
from stageflow_assets_tests.inbox_load import InboxWorld, LoadError, outbox_files

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not APERTIUM.is_file(), reason="Apertium is not installed (make install)")]
LANGUAGES = ("en", "es")
# once the flag file exists, cues come back as no viewer can read them: an empty cue, and words
# no line can hold (QC errors, which block)
UNREADABLE = r"""FLAG="$STAGEFLOW_TEST_UNREADABLE_FLAG"
if [ -n "$FLAG" ] && [ -e "$FLAG" ]; then
  awk 'BEGIN { RS = ""; for (i = 0; i < 300; i++) word = word "x" }
       NR == 1 { printf " \n\n"; next } { printf "%s\n\n", word }'
  exit 0
fi
exec APERTIUM "$@"
"""


def wait_for(world: InboxWorld, what: str, done, timeout: float = 900) -> None:
    """Poll until `done()`; a safety net of minutes, never a measure."""
    deadline = time.monotonic() + timeout
    while not done():
        world._check_alive()
        if time.monotonic() > deadline:
            raise LoadError(f"{what}: not within {timeout:g} s")
        time.sleep(1)


def runs_of(instance, job: str) -> list[dg.DagsterRun]:
    return [r.dagster_run for r in instance.get_run_records(filters=dg.RunsFilter(tags={"stageflow/job": job}))]


def settled(world: InboxWorld) -> bool:
    """No run is going and every sensor ticked after the last run ended (anything left to chain
    would have been requested by now)."""
    with world.instance() as instance:
        records = instance.get_run_records()
        if any(r.dagster_run.status not in (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE)
               for r in records):
            return False
        last = max([r.end_time or 0.0 for r in records] + [r.create_timestamp.timestamp() for r in records])
        return world._sensors_ticked_since(instance, last)


def test_an_inbox_video_reaches_its_outbox_and_a_failed_blocking_check_holds_the_mux(speech_video, tmp_path):
    from stageflow_assets.demo import sample_video

    bin_dir = fake_apertium(tmp_path, UNREADABLE.replace("APERTIUM", str(APERTIUM)))
    flag = tmp_path / "unreadable-spanish"
    world = InboxWorld(tmp_path / "world", languages=LANGUAGES,
                       env={"PATH": f"{bin_dir}:{os.environ['PATH']}", "STAGEFLOW_TEST_UNREADABLE_FLAG": str(flag)})
    good = tmp_path / "good.mp4"
    good.write_bytes(speech_video.read_bytes())
    blocked = sample_video(tmp_path / "blocked.mp4", text="Another clip. The river is wide and slow. "
                                                          "Boats go by all day, and the birds sing.")
    good_job, blocked_job = job_key_for_file(good), job_key_for_file(blocked)
    try:
        world.start()
        world.drop([good])
        wanted = outbox_files(world.home, good_job, LANGUAGES)
        wait_for(world, "the video's outbox files", lambda: all(p.is_file() for p in wanted))
        wait_for(world, "the daemon settling", lambda: settled(world))

        flag.touch()
        world.drop([blocked])
        notice = world.home / "outbox" / "subtitles" / blocked_job / "FAILED.txt"
        wait_for(world, "FAILED.txt of the blocked video", notice.is_file)
        wait_for(world, "the daemon settling", lambda: settled(world))
        with world.instance() as instance:
            good_runs, blocked_runs = runs_of(instance, good_job), runs_of(instance, blocked_job)
            backfills = instance.get_backfills()
    finally:
        left = world.stop()
    assert left == []

    # delivered: one run of each kind, chained by the sensors, each asset partition made once
    folder = world.home / "outbox" / "subtitles" / good_job
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [p.name for p in wanted] + ["manifest.json", "stage.log"])
    assert sorted((r.job_name, r.status.value) for r in good_runs) == sorted(
        [("subtitle_source_job", "SUCCESS"), ("subtitle_mux_job", "SUCCESS")]
        + [("subtitle_language_job", "SUCCESS")] * len(LANGUAGES))
    source = next(r for r in good_runs if r.job_name == "subtitle_source_job")
    assert {r.tags.get(CHAIN_TAG) for r in good_runs if r is not source} == {source.run_id}
    assert {r.tags.get("stageflow/source") for r in good_runs} == {"inbox"}
    assert backfills == []  # automation launched nothing: the chain is the sensors'

    # held: Spanish failed its blocking QC check, no mux run, nothing delivered but the notice
    by_job = sorted((r.job_name, r.tags.get("dagster/partition/lang"), r.status.value) for r in blocked_runs)
    assert by_job == [("subtitle_language_job", "en", "SUCCESS"), ("subtitle_language_job", "es", "FAILURE"),
                      ("subtitle_source_job", None, "SUCCESS")]
    assert sorted(p.name for p in notice.parent.iterdir()) == ["FAILED.txt"]
    failed_es = next(r for r in blocked_runs if r.status == dg.DagsterRunStatus.FAILURE)
    text = notice.read_text()
    assert text.startswith("subtitles [es]: blocking check qc_errors (")
    assert text.endswith(f"failed: nothing further is made until it passes (run {failed_es.run_id})\n")
    assert text.count("\n") == 1
