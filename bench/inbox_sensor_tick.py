"""How long the video inbox sensor's tick takes with 10,000 files in the inbox.

    .venv/bin/python bench/inbox_sensor_tick.py                # 10,000 files (~10 min on 2 cores)
    .venv/bin/python bench/inbox_sensor_tick.py --files 2000   # quicker

Target: every tick under 5 s. The inbox holds `--files` small files of distinct content (4 KiB
each: the job key hashes content, so each is its own video to the sensor; registration only
hashes and writes `job.json`, it does not probe), all settled (mtime backdated). Two levels, on
the same inbox, each with its own STAGEFLOW_HOME and a fresh SQLite instance from the project's
dagster.yaml:

1. **The sensor function**: `dg.build_sensor_context` + a direct call, as test_sensors.py does,
   its partition requests applied as the daemon applies them; tick after tick until every file
   is registered (`MAX_NEW_PER_TICK` a tick), then steady-state ticks (everything seen) and one
   tick after a tenth of the files were removed.
2. **The sensor daemon's own iteration**, in-process (`execute_sensor_iteration`, with Dagster's
   test utilities, as test_sensors.py): it evaluates the sensor, adds the partitions, creates the
   queued runs of the tick (nothing executes them) and writes the tick, timed around the call.
   A sample: the first ticks, the middle (from the function level's cursor halfway, with its
   partitions) and steady state (from its final cursor). The ticks of a real `dagster-daemon`
   are in bench/inbox_load.py's output.

Also the cursor's size, which Dagster stores in the sensor's state and in every tick's row.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
from subtitles_overhead import table  # noqa: E402 - one table format for every benchmark
TARGET_S = 5.0


def fill_inbox(inbox: Path, n: int) -> None:
    inbox.mkdir(parents=True, exist_ok=True)
    stamp = time.time() - 3600  # quiet for an hour: settled
    for i in range(n):
        path = inbox / f"clip {i:05d}.mp4"
        path.write_bytes(f"video number {i}\n".encode() * 256)
        os.utime(path, (stamp, stamp))


def call_sensor(instance, store, cursor: str | None):
    """One sensor call, its partitions added as the daemon adds them: (seconds, result)."""
    import dagster as dg

    from stageflow_assets.definitions import defs
    from stageflow_assets.subtitles.sensors import video_inbox_sensor

    context = dg.build_sensor_context(instance=instance, instance_ref=instance.get_ref(), definitions=defs,
                                      resources={"storage": store}, cursor=cursor)
    start = time.perf_counter()
    result = video_inbox_sensor(context)
    for request in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    return time.perf_counter() - start, result


def instance_from_project_yaml(home: Path):
    import dagster as dg
    import yaml

    from stageflow_assets.core.settings import project_root

    config = yaml.safe_load((project_root() / "dagster.yaml").read_text())
    config["storage"]["sqlite"]["base_dir"] = str(home)
    home.mkdir(parents=True, exist_ok=True)
    return dg.instance_for_test(overrides=config, temp_dir=str(home))


class FunctionLevel:
    """The sensor function, tick after tick, on its own home; keeps the cursors the daemon level reuses."""

    def __init__(self, base: Path, inbox: Path) -> None:
        from stageflow_assets.core.stage_store import StageStore

        self.store = StageStore(home=str(base / "stageflow"))
        self.store.paths.inbox("videos").parent.mkdir(parents=True, exist_ok=True)
        self.store.paths.inbox("videos").symlink_to(inbox)
        self.instance_cm = instance_from_project_yaml(base / "dagster")
        self.instance = self.instance_cm.__enter__()
        self.rows: list[tuple[str, float, int, int]] = []
        self.cursor: str | None = None
        self.middle: tuple[str, list[str]] | None = None  # (cursor, keys registered before it)
        self.keys: list[str] = []

    def register_all(self, n: int) -> None:
        times = []
        while len(self.keys) < n:
            if self.middle is None and len(self.keys) >= n // 2:
                self.middle = (self.cursor, list(self.keys))
            seconds, result = call_sensor(self.instance, self.store, self.cursor)
            if not result.run_requests:
                raise SystemExit(f"a tick registered nothing with {len(self.keys)} of {n} registered")
            self.cursor = result.cursor
            self.keys += [r.partition_key for r in result.run_requests]
            times.append((seconds, len(result.run_requests), len(self.cursor)))
        mid = len(times) // 2
        self.rows += [
            ("first tick", *times[0]),
            (f"middle tick (#{mid + 1} of {len(times)})", *times[mid]),
            ("slowest registering tick", *max(times)),
            (f"median of {len(times)} registering ticks", statistics.median(t[0] for t in times),
             int(statistics.median(t[1] for t in times)), int(statistics.median(t[2] for t in times))),
        ]
        steady = []
        for _ in range(5):
            seconds, result = call_sensor(self.instance, self.store, self.cursor)
            assert not result.run_requests, "steady state requested runs"
            self.cursor = result.cursor
            steady.append(seconds)
        self.rows.append(("steady state (all seen), median of 5", statistics.median(steady), 0, len(self.cursor)))

    def after_removing(self, inbox: Path, count: int) -> None:
        for path in sorted(inbox.iterdir())[:count]:
            path.unlink()
        seconds, result = call_sensor(self.instance, self.store, self.cursor)
        self.rows.append((f"after {count:,} files were removed", seconds, len(result.run_requests), len(result.cursor)))

    def close(self) -> None:
        self.instance_cm.__exit__(None, None, None)


def daemon_level(base: Path, inbox: Path, fn: FunctionLevel) -> list[tuple[str, float, int, int]]:
    """The sensor daemon's iteration in-process, on the same inbox; the middle and steady state
    start from the function level's cursors (with their partitions added)."""
    from dagster._core.remote_origin import InProcessCodeLocationOrigin
    from dagster._core.test_utils import (
        InProcessTestWorkspaceLoadTarget,
        create_test_daemon_workspace_context,
        freeze_time,
    )
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
    from dagster._daemon.sensor import execute_sensor_iteration

    from stageflow_assets.core.settings import project_root
    from stageflow_assets.subtitles.partitions import subtitle_job_partitions

    home = base / "stageflow"
    (home / "inbox").mkdir(parents=True)
    (home / "inbox" / "videos").symlink_to(inbox)
    os.environ["STAGEFLOW_HOME"] = str(home)  # the code location's StageStore() reads it
    origin = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(module_name="stageflow_assets.definitions", attribute="defs",
                             working_directory=str(project_root())),
        location_name="stageflow_assets",
    )
    logger = logging.getLogger("bench_inbox_sensor")
    logger.setLevel(logging.WARNING)
    rows = []
    clock = [time.time()]

    def state():
        return next(s for s in instance.all_instigator_state() if s.name == "video_inbox_sensor")

    def iterate(label: str) -> None:
        clock[0] += 60  # past the sensor's minimum interval (only Dagster's clock is frozen)
        start = time.perf_counter()
        with freeze_time(clock[0]):
            list(execute_sensor_iteration(ws, logger, None, None))
        seconds = time.perf_counter() - start
        tick = instance.get_ticks(state().instigator_origin_id, state().selector_id, limit=1)[0]
        assert tick.status.value in ("SUCCESS", "SKIPPED"), tick.error
        rows.append((label, seconds, len(tick.run_ids), len(tick.cursor or "")))

    def jump_to(cursor: str, keys: list[str]) -> None:
        instance.add_dynamic_partitions(subtitle_job_partitions.name, keys)
        current = state()
        instance.update_instigator_state(current.with_data(current.instigator_data._replace(cursor=cursor)))

    with instance_from_project_yaml(base / "dagster") as instance:
        with create_test_daemon_workspace_context(InProcessTestWorkspaceLoadTarget(origin), instance) as ws:
            for i in range(3):
                iterate(f"tick {i + 1}")
            cursor, keys = fn.middle
            jump_to(cursor, keys)
            for i in range(3):
                iterate(f"middle tick {i + 1} (from {len(keys):,} registered)")
            jump_to(fn.cursor, fn.keys)
            for i in range(3):
                iterate(f"steady state {i + 1} (all seen)")
    return rows


def print_table(title: str, rows) -> None:
    table(title, ["tick", "seconds", "runs", "cursor bytes", f"< {TARGET_S:g} s"],
          [[r[0], f"{r[1]:.3f}", str(r[2]), f"{r[3]:,}", "yes" if r[1] < TARGET_S else "NO"] for r in rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=10_000, help="files in the inbox (default 10,000)")
    parser.add_argument("--no-daemon", action="store_true", help="the sensor function level only")
    args = parser.parse_args()
    logging.getLogger("dagster").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    from stageflow_assets.core import inbox as inbox_module
    from stageflow_assets.subtitles import sensors

    print("The video inbox sensor's tick (bench/inbox_sensor_tick.py)")
    print(f"  date           {datetime.now(timezone.utc).isoformat(timespec='seconds')}")
    print(f"  cpu            {os.cpu_count()} cores visible, {len(os.sched_getaffinity(0))} usable")
    print(f"  python         {platform.python_version()}   dagster {version('dagster')}")
    print(f"  inbox          {args.files:,} settled files of 4 KiB, distinct content; "
          f"at most {sensors.MAX_NEW_PER_TICK} new a tick")
    start_load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="stageflow-sensor-bench-") as tmp:
        base = Path(tmp)
        inbox = base / "inbox"
        fill_inbox(inbox, args.files)
        # a real burst is handled 10 s a tick; here ticks follow each other at once, so wait until
        # the files are past the sensor's clock margin, as they are a minute into a real burst
        time.sleep(max(0.0, inbox_module.CLOCK_MARGIN_S + 1 - (time.time() - (base / "inbox").stat().st_ctime)))
        fn = FunctionLevel(base / "fn", inbox)
        try:
            fn.register_all(args.files)
            if not args.no_daemon:
                daemon_rows = daemon_level(base / "daemon", inbox, fn)
            fn.after_removing(inbox, args.files // 10)
        finally:
            fn.close()
        print_table("1. The sensor function (build_sensor_context + call, partitions added)", fn.rows)
        if not args.no_daemon:
            print_table("2. The sensor daemon's iteration (in-process; evaluate, add partitions, create the "
                        "queued runs, write the tick)", daemon_rows)
    per_day = 86400 / sensors.video_inbox_sensor.minimum_interval_seconds
    print(f"\n  cursor bytes: the cursor the tick returns; Dagster stores it in the sensor's state and in every "
          f"tick's row ({per_day:,.0f} ticks a day at the minimum interval)")
    end = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"  load average   {' '.join(f'{x:.2f}' for x in start_load)} at start, {end} at end (1/5/15 min)")


if __name__ == "__main__":
    main()
