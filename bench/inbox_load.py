"""Short videos dropped into the inbox at once with the Dagster daemon running: do all of them
complete, none lost, none run twice, and how long does each hop of the chain wait?

    .venv/bin/python bench/inbox_load.py                # 50 videos, laptop world (~10 min on 2 cores)
    .venv/bin/python bench/inbox_load.py --celery       # PostgreSQL + Redis + 2 stageflow workers
    .venv/bin/python bench/inbox_load.py --videos 10 --languages en,es,ca

The rig is stageflow_assets_tests/inbox_load.py (test_inbox_load.py drops 10 the same way): a
fresh home, `dagster-daemon run` on the project's workspace, `--videos` distinct espeak-ng
videos (1-2 s of speech each) renamed into `$STAGEFLOW_HOME/inbox/videos/` at once. It waits
until every job is muxed, no run or backfill is active and both sensors have ticked once more,
then counts from the instance: runs per kind and status, materializations per asset partition
(more than one is a duplicate), run keys, the stage files on disk. Latencies come from the run
records (created, started, ended) against the moment of the drop.

Worlds: `laptop` (default: SQLite, Dagster's queue with 2 runs at a time, each run a subprocess
of the daemon's code server; what `make ui` users have) and `--celery` (PostgreSQL on
127.0.0.1:5432, a fresh database; Redis on 127.0.0.1:6379; `--workers` `stageflow worker`
processes with one run each).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
from subtitles_overhead import table  # noqa: E402 - one table format for every benchmark


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--videos", type=int, default=50)
    parser.add_argument("--celery", action="store_true", help="PostgreSQL + Redis + stageflow workers")
    parser.add_argument("--workers", type=int, default=2, help="Celery workers (with --celery)")
    parser.add_argument("--languages", default="en,es", help="STAGEFLOW_LANGUAGES (default en,es)")
    parser.add_argument("--timeout", type=float, default=3600, help="give up after this many seconds")
    args = parser.parse_args()

    from stageflow_assets.core.keys import job_key_for_file
    from stageflow_assets_tests.inbox_load import InboxWorld, LoadError, make_videos

    languages = [lang.strip() for lang in args.languages.split(",") if lang.strip()]
    print("Videos dropped into the inbox at once, the daemon running (bench/inbox_load.py)")
    print(f"  date           {datetime.now(timezone.utc).isoformat(timespec='seconds')}")
    print(f"  cpu            {os.cpu_count()} cores visible, {len(os.sched_getaffinity(0))} usable")
    print(f"  python         {platform.python_version()}   dagster {version('dagster')}")
    start_load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="stageflow-load-") as tmp:
        base = Path(tmp)
        made = time.monotonic()
        videos = make_videos(base / "videos", args.videos)
        jobs = [job_key_for_file(v) for v in videos]
        assert len(set(jobs)) == len(jobs), "two videos with the same content"
        print(f"  videos         {len(videos)} made in {time.monotonic() - made:.0f} s; languages {','.join(languages)}")
        world = InboxWorld(base / "world", "celery" if args.celery else "laptop", args.workers, languages)
        error = None
        try:
            world.start()
            dropped_at = world.drop(videos)
            try:
                done_at = world.wait(jobs, args.timeout)
            except LoadError as exc:
                error, done_at = exc, time.time()
            report = world.report(jobs, dropped_at, done_at)
        finally:
            left = world.stop()

    table("Outcome", ["", "value"], [[k, v] for k, v in report.summary()])
    rows = []
    for name, values in report.hops():
        if values:
            values = sorted(values)
            p90 = values[min(len(values) - 1, int(0.9 * len(values)))]
            rows.append([name, str(len(values)), f"{min(values):.1f}", f"{statistics.median(values):.1f}",
                         f"{p90:.1f}", f"{max(values):.1f}"])
    if rows:
        table("Per hop, seconds (from the run records; drop = the moment the files were renamed in)",
              ["hop", "n", "min", "median", "p90", "max"], rows)
    for what, items in (("duplicates", report.duplicates), ("lost", report.lost + report.missing_files),
                        ("runs not SUCCESS", [f"{r.run_id} {r.kind} {r.status.value}" for r in report.failed]),
                        ("processes left after stopping", [str(p) for p in left])):
        if items:
            print(f"\n  {what}: " + "; ".join(items[:10]) + (" ..." if len(items) > 10 else ""))
    if error:
        print(f"\n  not finished: {error}")
    end = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\n  load average   {' '.join(f'{x:.2f}' for x in start_load)} at start, {end} at end (1/5/15 min)")
    clean = not (error or report.duplicates or report.lost or report.missing_files or report.failed or left)
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
