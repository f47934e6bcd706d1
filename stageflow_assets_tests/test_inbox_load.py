"""Ten videos dropped into the inbox at once with the Dagster daemon running: every one completes,
none is lost, none runs twice.

The laptop world (SQLite, Dagster's run queue with 2 runs at a time, each run a subprocess of the
daemon's code server): it is what `make ui` users have, and it needs no server, so it runs
wherever `make test` does. bench/inbox_load.py drops 50 videos, in this world or on Celery.
Two languages (captions and Apertium Spanish) keep it to 40 runs on 2 cores.
"""

from __future__ import annotations

import pytest

from stageflow_assets.core.keys import job_key_for_file
from stageflow_assets_tests.inbox_load import InboxWorld, make_videos

pytestmark = pytest.mark.slow
VIDEOS = 10


def test_videos_dropped_at_once_all_complete_exactly_once(tmp_path):
    videos = make_videos(tmp_path / "videos", VIDEOS)
    jobs = [job_key_for_file(video) for video in videos]
    assert len(set(jobs)) == VIDEOS  # each its own content, so its own job
    world = InboxWorld(tmp_path / "world")
    try:
        world.start()
        dropped_at = world.drop(videos)
        done_at = world.wait(jobs, timeout=900)  # a safety net: ~3 min on 2 cores
        report = world.report(jobs, dropped_at, done_at)
    finally:
        left = world.stop()
    assert left == [], f"processes left after stopping the daemon: {left}"

    assert [(r.run_id, r.kind, r.status.value) for r in report.failed] == []
    assert report.kinds() == {"source": VIDEOS, "language": VIDEOS * len(world.languages), "mux": VIDEOS}
    sources = [r for r in report.runs if r.kind == "source"]
    assert sorted(r.run_key for r in sources) == sorted(jobs)  # requested by the inbox sensor, one each
    assert {r.source for r in sources} == {"inbox"}
    assert sorted(r.job for r in report.runs) == sorted(jobs * (2 + len(world.languages)))
    assert report.duplicates == []
    assert report.lost == []
    assert report.missing_files == []
