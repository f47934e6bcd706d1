"""Videos dropped into the inbox at once with the Dagster daemon running, for real.

Shared by the 10-video test (test_inbox_load.py) and the stress script (bench/inbox_load.py):
a fresh STAGEFLOW_HOME and DAGSTER_HOME, `dagster-daemon run` on the project's workspace (the
inbox sensor, the inbox chain sensor, the automation sensor, the run queue and monitoring), in one
of two worlds:

* **laptop** (what `make ui` users have): SQLite, Dagster's queue (2 runs at a time), each run a
  subprocess of the daemon's code server;
* **celery**: PostgreSQL (a fresh database on 127.0.0.1:5432), Redis (127.0.0.1:6379) as the
  broker, `stageflow worker` processes executing the runs the daemon launches.

Every process started here and below it carries a marker variable, so `stop()` can tell that
none is left.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from stageflow_assets.providers.process import stop_process_group
from stageflow_assets_tests.conftest import instance_with_env

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
MARKER = "STAGEFLOW_LOAD_RIG"
LANGUAGES = ("en", "es")  # captions (no translation step) and one Apertium language
ACTIVE = (dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
          dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING)
SOURCE_ASSETS = ("source_video", "audio", "transcript", "cues")
LANGUAGE_ASSETS = ("translation", "subtitles")
MUX = "subtitled_video"
OUTBOX = "subtitle_outbox"
SENSORS = ("video_inbox_sensor", "inbox_chain_sensor", "stageflow_automation")
WORDS = "amber birch cedar dune ember fjord grove harbor island jasper kestrel lagoon meadow".split()


class LoadError(AssertionError):
    """The daemon did not finish the dropped videos (or a run failed): what is missing and why."""


def make_videos(dst: Path, n: int) -> list[Path]:
    """`n` short espeak-ng videos (1-2 s of speech), each with its own words, so its own job."""
    from stageflow_assets.demo import sample_video

    dst.mkdir(parents=True, exist_ok=True)

    def one(i: int) -> Path:
        text = f"Clip {i}. The {WORDS[i % len(WORDS)]} and the {WORDS[(i // len(WORDS)) % len(WORDS)]} are here."
        return sample_video(dst / f"clip{i:03d}.mp4", text=text)

    with ThreadPoolExecutor(max_workers=2) as pool:
        return list(pool.map(one, range(n)))


def marked_processes(marker: str) -> list[int]:
    """Processes whose environment carries this rig's marker (every process it started, and theirs)."""
    needle = f"{MARKER}={marker}".encode()
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if needle in (proc / "environ").read_bytes().split(b"\0"):
                stat = (proc / "stat").read_text()
                if stat.rsplit(")", 1)[1].split()[0] != "Z":
                    found.append(int(proc.name))
        except OSError:
            continue
    return found


@dataclass
class RunInfo:
    run_id: str
    kind: str  # source, language, mux
    job: str | None
    status: dg.DagsterRunStatus
    run_key: str | None
    source: str | None  # the stageflow/source tag: inbox for the sensor's runs
    created: float
    started: float | None
    ended: float | None


@dataclass
class LoadReport:
    world: str
    videos: int
    runs: list[RunInfo]
    materializations: dict[tuple[str, str], int]  # (asset, partition) -> count
    dropped_at: float
    done_at: float
    lost: list[str]  # jobs without every output, with what is missing
    missing_files: list[str]
    sensor_ticks: list[float] = field(default_factory=list)  # seconds, inbox ticks that requested runs

    @property
    def duplicates(self) -> list[str]:
        twice = [f"{asset} {partition} x{n}" for (asset, partition), n in self.materializations.items() if n > 1]
        keys = Counter(r.run_key for r in self.runs if r.run_key)
        return twice + [f"run key {key} x{n}" for key, n in keys.items() if n > 1]

    @property
    def failed(self) -> list[RunInfo]:
        return [r for r in self.runs if r.status != dg.DagsterRunStatus.SUCCESS]

    def kinds(self) -> Counter:
        return Counter(r.kind for r in self.runs)

    def hops(self) -> list[tuple[str, list[float]]]:
        """Per-hop latencies, seconds, over the jobs: how long each step of the chain waited."""
        by_job: dict[str, dict[str, list[RunInfo]]] = {}
        for run in self.runs:
            by_job.setdefault(run.job or "?", {}).setdefault(run.kind, []).append(run)
        hops: dict[str, list[float]] = {name: [] for name in (
            "drop -> source run created (sensor)", "source created -> started (queue)", "source run (start -> end)",
            "source end -> last language created (chain)", "language run (start -> end)",
            "last language end -> mux created (chain)", "mux created -> started (queue)", "mux run (start -> end)",
            "drop -> mux end (whole job)")}
        for runs in by_job.values():
            if not all(runs.get(k) for k in ("source", "language", "mux")):
                continue
            source, langs, mux = runs["source"][0], runs["language"], runs["mux"][0]
            if None in (source.started, source.ended, mux.started, mux.ended) or any(
                    r.started is None or r.ended is None for r in langs):
                continue
            hops["drop -> source run created (sensor)"].append(source.created - self.dropped_at)
            hops["source created -> started (queue)"].append(source.started - source.created)
            hops["source run (start -> end)"].append(source.ended - source.started)
            hops["source end -> last language created (chain)"].append(max(r.created for r in langs) - source.ended)
            hops["language run (start -> end)"] += [r.ended - r.started for r in langs]
            hops["last language end -> mux created (chain)"].append(mux.created - max(r.ended for r in langs))
            hops["mux created -> started (queue)"].append(mux.started - mux.created)
            hops["mux run (start -> end)"].append(mux.ended - mux.started)
            hops["drop -> mux end (whole job)"].append(mux.ended - self.dropped_at)
        return list(hops.items())

    def summary(self) -> list[tuple[str, str]]:
        ends = [r.ended for r in self.runs if r.kind == "mux" and r.ended]
        kinds = self.kinds()
        return [
            ("world", self.world),
            ("videos dropped at once", str(self.videos)),
            ("runs", f"{len(self.runs)} ({kinds['source']} source, {kinds['language']} language, {kinds['mux']} mux)"),
            ("runs not SUCCESS", str(len(self.failed))),
            ("wall time, drop -> all done", f"{self.done_at - self.dropped_at:.1f} s"),
            ("drop -> last mux end", f"{max(ends) - self.dropped_at:.1f} s" if ends else "-"),
            ("duplicates (materialized twice, run key twice)", str(len(self.duplicates))),
            ("lost (a job without every output)", str(len(self.lost) + len(self.missing_files))),
            ("inbox sensor ticks with runs (daemon)", _spread(self.sensor_ticks, "s") if self.sensor_ticks else "-"),
        ]


def _spread(values: list[float], unit: str = "") -> str:
    return f"median {statistics.median(values):.2f}{unit}, max {max(values):.2f}{unit} (n={len(values)})"


class InboxWorld:
    """A home, the daemon (and in the celery world its workers); `drop`, `wait`, `report`, `stop`."""

    def __init__(self, base: Path, world: str = "laptop", workers: int = 2, languages=LANGUAGES,
                 env: dict[str, str] | None = None) -> None:
        self.base, self.world, self.workers, self.languages = base, world, workers, tuple(languages)
        self.marker = uuid.uuid4().hex
        self.home = base / "stageflow"
        self.env = {**os.environ, "STAGEFLOW_HOME": str(self.home), "DAGSTER_HOME": str(base / "dagster"),
                    "STAGEFLOW_LANGUAGES": ",".join(self.languages), MARKER: self.marker, **(env or {})}
        for name in ("STAGEFLOW_POSTGRES_URL", "STAGEFLOW_CELERY_BROKER", "STAGEFLOW_EVENT_SINK"):
            self.env.pop(name, None)
        self.logs = base / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.procs: dict[str, subprocess.Popen] = {}
        self.db = self.redis = None
        if world == "celery":
            import redis

            self.db = f"stageflow_load_{uuid.uuid4().hex[:10]}"
            self.redis_db = 8 + os.getpid() % 8
            self.redis = redis.Redis(host="127.0.0.1", port=6379, db=self.redis_db)
            self.env["STAGEFLOW_POSTGRES_URL"] = f"postgresql+psycopg2://postgres@127.0.0.1:5432/{self.db}"
            self.env["STAGEFLOW_CELERY_BROKER"] = f"redis://127.0.0.1:6379/{self.redis_db}"
        elif world != "laptop":
            raise ValueError(f"world {world!r}: laptop or celery")

    # --- processes ------------------------------------------------------------------------------

    def start(self) -> None:
        if self.world == "celery":
            self.redis.flushdb()
            subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", self.db], check=True)
        # creates DAGSTER_HOME's dagster.yaml and its databases, then says the run does not exist
        first = subprocess.run([str(BIN / "stageflow"), "reexecute", "none"], env=self.env, capture_output=True,
                               text=True, timeout=300)
        if first.returncode != 2 or "no run none" not in first.stderr:
            raise LoadError(f"setting up the home failed: {first.stderr[-2000:]}")
        self._spawn("daemon", [str(BIN / "dagster-daemon"), "run", "-w", str(REPO / "workspace.yaml")])
        # the drop is timed from a daemon that is up: its code location loaded, the inbox sensors
        # ticking (the chain sensor's first tick sets where it starts reading successes)
        with self.instance() as instance:
            deadline = time.monotonic() + 180
            while not self._sensors_ticked_since(instance, 0.0, names=SENSORS[:2]):
                self._check_alive()
                if time.monotonic() > deadline:
                    raise LoadError("the daemon's inbox sensors did not tick within 180 s")
                time.sleep(0.5)
        if self.world == "celery":
            from stageflow_assets.core.worker import heartbeat_key

            names = [f"w{i + 1}" for i in range(self.workers)]
            for name in names:
                self._spawn(name, [str(BIN / "stageflow"), "worker", "--name", name, "--threads", "1"])
            deadline = time.monotonic() + 120
            while not all(self.redis.exists(heartbeat_key(n)) for n in names):
                self._check_alive()
                if time.monotonic() > deadline:
                    raise LoadError("the workers did not come up within 120 s")
                time.sleep(0.5)

    def _spawn(self, name: str, args: list[str]) -> None:
        log = (self.logs / name).open("w")
        self.procs[name] = subprocess.Popen(args, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)

    def _check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise LoadError(f"{name} ended ({proc.returncode}): {(self.logs / name).read_text()[-3000:]}")

    def stop(self) -> list[int]:
        """Stop everything; the pids still alive after that (should be none)."""
        for proc in self.procs.values():
            stop_process_group(proc, grace_s=20)
        deadline = time.monotonic() + 10  # tools die with their run process (parent-death signal)
        left = marked_processes(self.marker)
        while left and time.monotonic() < deadline:
            time.sleep(0.2)
            left = marked_processes(self.marker)
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self.world == "celery":
            self.redis.flushdb()
            subprocess.run(["dropdb", "-h", "127.0.0.1", "-U", "postgres", "--if-exists", "--force", self.db],
                           check=False)
        return left

    # --- the instance, in this process ------------------------------------------------------------

    def instance(self):
        """The world's instance; its variables set only while it is open (dagster.yaml names them)."""
        return instance_with_env(self.env)

    # --- the load -------------------------------------------------------------------------------

    def drop(self, videos: list[Path]) -> float:
        """Every video into the inbox at once: copied beside it, then renamed in (one directory)."""
        inbox = self.home / "inbox" / "videos"
        inbox.mkdir(parents=True, exist_ok=True)
        staging = self.home / "inbox" / ".staging"
        staging.mkdir(exist_ok=True)
        for video in videos:
            shutil.copyfile(video, staging / video.name)
        dropped_at = time.time()
        for video in videos:
            os.rename(staging / video.name, inbox / video.name)
        return dropped_at

    def wait(self, jobs: list[str], timeout: float) -> float:
        """Until every job is muxed, no run is active and the sensors have ticked once more
        without starting anything (a duplicate would show then). Fails early on a failed run or
        when nothing is left to run while jobs are unfinished. Returns when it was all done."""
        deadline = time.monotonic() + timeout
        with self.instance() as instance:
            while True:
                self._check_alive()
                records = instance.get_run_records()
                failed = [r.dagster_run for r in records if r.dagster_run.status in (
                    dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)]
                if failed:
                    raise LoadError(f"run {failed[0].run_id} ({failed[0].job_name}) "
                                    f"{failed[0].status.value}: {self._failure(instance, failed[0].run_id)}")
                active = [r for r in records if r.dagster_run.status in ACTIVE]
                # the automation sensor requests the language runs as a backfill: until the backfill
                # daemon marks it done, the languages count as in progress and the mux waits
                active += _open_backfills(instance)
                last_change = _last_change(instance, records)
                # the sensors' ticks are read after the runs: a tick that created runs meanwhile
                # shows in a second read
                if not active and self._sensors_ticked_since(instance, last_change[1]) and \
                        _last_change(instance, instance.get_run_records()) == last_change:
                    muxed = _partitions(instance, MUX)
                    if set(jobs) <= muxed:
                        return max(r.end_time or 0.0 for r in records)
                    if records:
                        raise LoadError(f"nothing left to run, {len(set(jobs) - muxed)} job(s) not muxed: "
                                        f"{sorted(set(jobs) - muxed)[:5]}")
                if time.monotonic() > deadline:
                    raise LoadError(f"not done within {timeout:g} s: {len(active)} run(s) active, "
                                    f"{len(set(jobs) - _partitions(instance, MUX))} job(s) not muxed")
                time.sleep(2)

    @staticmethod
    def _sensors_ticked_since(instance, since: float, names=SENSORS) -> bool:
        """Each sensor finished a tick that started after `since`."""
        states = [s for s in instance.all_instigator_state() if s.name in names]
        if len(states) < len(names):
            return False
        for state in states:
            ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=1)
            if not ticks or ticks[0].timestamp <= since or ticks[0].status.value == "STARTED":
                return False
        return True

    @staticmethod
    def _failure(instance, run_id: str) -> str:
        from stageflow_assets.core.runs import outcome_of_finished

        return outcome_of_finished(instance, run_id).error or "?"

    def report(self, jobs: list[str], dropped_at: float, done_at: float) -> LoadReport:
        with self.instance() as instance:
            runs = [_run_info(r) for r in instance.get_run_records()]
            counts: Counter = Counter()
            for asset in (*SOURCE_ASSETS, *LANGUAGE_ASSETS, MUX, OUTBOX):
                for record in instance.fetch_materializations(dg.AssetKey(asset), limit=10_000).records:
                    counts[(asset, record.partition_key)] += 1
            ticks = self._inbox_tick_seconds(instance)
        lost = []
        for job in jobs:
            missing = [a for a in (*SOURCE_ASSETS, MUX, OUTBOX) if counts[(a, job)] == 0]
            missing += [f"{a}[{lang}]" for a in LANGUAGE_ASSETS for lang in self.languages
                        if counts[(a, f"{job}|{lang}")] == 0]
            if missing:
                lost.append(f"{job}: {', '.join(missing)}")
        return LoadReport(self.world, len(jobs), runs, dict(counts), dropped_at, done_at, lost,
                          self._missing_files(jobs), ticks)

    def _missing_files(self, jobs: list[str]) -> list[str]:
        missing = []
        for job in jobs:
            root = self.home / "subtitles" / job
            wanted = [root / "07_subtitled_video" / "subtitled.mkv"]
            wanted += [root / "06_subtitles" / lang / f"subtitles.{ext}" for lang in self.languages
                       for ext in ("srt", "vtt", "ass")]
            wanted += outbox_files(self.home, job, self.languages)
            missing += [str(p) for p in wanted if not p.is_file() or p.stat().st_size == 0]
        return missing

    @staticmethod
    def _inbox_tick_seconds(instance) -> list[float]:
        state = next((s for s in instance.all_instigator_state() if s.name == "video_inbox_sensor"), None)
        if state is None:
            return []
        ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=10_000)
        return [t.end_timestamp - t.timestamp for t in ticks if t.run_ids and t.end_timestamp]


def outbox_files(home: Path, job: str, languages) -> list[Path]:
    """What a job delivers: every language's subtitles and the video, in its outbox folder."""
    folder = home / "outbox" / "subtitles" / job
    return [folder / f"{job}.mkv"] + [folder / f"{job}.{lang}.{ext}" for lang in languages
                                      for ext in ("srt", "vtt", "ass")]


def _open_backfills(instance) -> list:
    from dagster._core.execution.backfill import BulkActionStatus

    return [b for b in instance.get_backfills(limit=1000)
            if b.status in (BulkActionStatus.REQUESTED, BulkActionStatus.CANCELING)]


def _last_change(instance, records) -> tuple[int, float]:
    """(runs and backfills, the last time one changed): a backfill marked done lets the mux go."""
    backfills = instance.get_backfills(limit=1000)
    times = [r.update_timestamp.timestamp() for r in records]
    times += [b.backfill_end_timestamp or b.backfill_timestamp for b in backfills]
    return len(records) + len(backfills), max(times, default=0.0)


def _partitions(instance, asset: str) -> set[str]:
    return {r.partition_key for r in instance.fetch_materializations(dg.AssetKey(asset), limit=10_000).records}


def _run_info(record) -> RunInfo:
    run = record.dagster_run
    selection = {key.to_user_string() for key in (run.asset_selection or ())}
    if run.job_name == "subtitle_source_job" or (selection and selection <= set(SOURCE_ASSETS)):
        kind = "source"
    elif run.job_name == "subtitle_mux_job" or selection == {MUX}:
        kind = "mux"
    elif run.job_name == "subtitle_language_job" or (selection and selection <= set(LANGUAGE_ASSETS)):
        kind = "language"
    else:
        kind = f"other ({run.job_name}: {sorted(selection)})"
    return RunInfo(run.run_id, kind, run.tags.get("stageflow/job"), run.status, run.tags.get("dagster/run_key"),
                   run.tags.get("stageflow/source"), record.create_timestamp.timestamp(), record.start_time,
                   record.end_time)
