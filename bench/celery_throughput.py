"""Batch throughput: 10 different 60 s videos, plainly one after another against stageflow on
two warm Celery workers.

    .venv/bin/python bench/celery_throughput.py            # ~6 min on 2 cores
    .venv/bin/python bench/celery_throughput.py --videos 4 --seconds 30
    .venv/bin/python bench/celery_throughput.py --via inbox   # (b) through the inbox, no CLI
    .venv/bin/python bench/celery_throughput.py --via one-cli # (b) one command given every video

(a) bench/plain_pipeline.py in one process: the Whisper model loaded once, the videos one
    after another (the same tool calls and model as stageflow, no orchestration). Run before
    and after (b), and averaged, so drift on the machine hits both sides alike.
(b) `stageflow subtitles VIDEO --lang es --lang ca` for every video at once (parallel CLI
    processes), on a fresh PostgreSQL database and Redis db, the Dagster daemon, and two
    `stageflow worker --threads 1` (concurrency 1: one run and one decoding thread each).
    Both workers are warmed first (one video each: definitions imported, model loaded), as
    long-lived workers are.

Needs PostgreSQL on 127.0.0.1:5432 (createdb), Redis on 127.0.0.1:6379 and ../shared/data.
Prints tables; exit status 0 unless something crashed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from subtitles_overhead import LANGUAGES, PLAIN, build_video, table  # noqa: E402

from stageflow_assets_tests.conftest import STAGEFLOW  # noqa: E402
from stageflow_assets_tests.test_celery import Cluster  # noqa: E402

TARGET = 1.3


def make_videos(work: Path, count: int, seconds: float) -> list[Path]:
    media = work / "media"
    media.mkdir()
    # each its own content (clip order, pause): its own job, nothing reused between them
    return [build_video(seconds, 4.0 + 0.25 * n, media / f"batch{n:02d}.mp4", rotate=n) for n in range(count)]


def plain(videos: list[Path], out: Path) -> tuple[float, dict]:
    args = [sys.executable, str(PLAIN), str(videos[0]), str(out)]
    for video in videos[1:]:
        args += ["--also", str(video)]
    for lang in LANGUAGES:
        args += ["--lang", lang]
    t0 = time.perf_counter()
    proc = subprocess.run(args, capture_output=True, text=True, check=True)
    return time.perf_counter() - t0, json.loads(proc.stdout.strip().splitlines()[-1])


TICK = os.sysconf("SC_CLK_TCK")


def cpu_by_session(sessions: dict[int, str]) -> dict[str, float]:
    """CPU seconds so far of the live processes in each of the cluster's sessions (the daemon and
    its code server, each worker and its pool processes; each was started in a session of its own)."""
    seconds: Counter = Counter()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        name = sessions.get(int(fields[3]))
        if name is not None:
            seconds[name] += (int(fields[11]) + int(fields[12])) / TICK
    return dict(seconds)


def database_load(db: str) -> dict[str, float]:
    """PostgreSQL's own counters for the cluster's database: sessions opened, and seconds its
    backends spent executing statements or in transactions (not the connection set-up itself)."""
    out = subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-Atc",
                          "SELECT sessions, active_time, idle_in_transaction_time, xact_commit "
                          f"FROM pg_stat_database WHERE datname = '{db}'"],
                         capture_output=True, text=True, check=True).stdout.strip()
    sessions, active, idle_tx, commits = (float(x) for x in out.split("|"))
    return {"sessions": sessions, "active_s": (active + idle_tx) / 1000, "commits": commits}


def postgres_cpu() -> float:
    """The whole server's CPU seconds (the postmaster with its reaped backends, and live ones)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if b"postgres" not in (stat.parent / "cmdline").read_bytes():
                continue
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(x) for x in fields[11:15]) / TICK
    return total


def stageflow_batch(cluster: Cluster, videos: list[Path], out: Path, one_command: bool = False,
                    ) -> tuple[float, list[int]]:
    """`stageflow subtitles` for every video at once: a process each, or one command for all."""
    langs = [a for lang in LANGUAGES for a in ("--lang", lang)]
    commands = [[str(v)] for v in videos] if not one_command else [[str(v) for v in videos]]
    t0 = time.perf_counter()
    procs = [subprocess.Popen([str(STAGEFLOW), "subtitles", *given, *langs, "--out", str(out)], env=cluster.env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for given in commands]
    codes = [p.wait() for p in procs]
    wall = time.perf_counter() - t0
    for p, code in zip(procs, codes):
        if code != 0:
            sys.exit(f"a CLI failed ({code}): {p.stderr.read()[-2000:]}")
    return wall, codes


def measured(db: str, sessions: dict[int, str], names, go) -> tuple[float, dict, dict]:
    """`go()`'s seconds, with CPU by group and the database's counters over it."""
    time.sleep(3)  # pg_stat_database is flushed about once a second
    before, children = cpu_by_session(sessions), resource.getrusage(resource.RUSAGE_CHILDREN)
    db_before, pg_before = database_load(db), postgres_cpu()
    wall = go()
    time.sleep(3)
    after, reaped = cpu_by_session(sessions), resource.getrusage(resource.RUSAGE_CHILDREN)
    db_after, pg_after = database_load(db), postgres_cpu()
    cpu = {name: after.get(name, 0.0) - before.get(name, 0.0) for name in names}
    cpu["the CLI processes (start-up, submit, wait)"] = (reaped.ru_utime + reaped.ru_stime
                                                         - children.ru_utime - children.ru_stime)
    cpu["PostgreSQL, the whole server (other clients too)"] = pg_after - pg_before
    return wall, cpu, {key: db_after[key] - db_before[key] for key in db_before}


def through_inbox(work: Path, videos: list[Path], warm: list[Path], bouncer=None) -> tuple[float, dict, dict, list]:
    """(b) through the inbox: every video renamed into it at once, the daemon's sensors registering
    and chaining them; from the drop to the last run's end (stageflow_assets_tests/inbox_load.py)."""
    from stageflow_assets.core.keys import job_key_for_file
    from stageflow_assets_tests.inbox_load import InboxWorld

    world = InboxWorld(work / "inbox-world", world="celery", workers=2, languages=LANGUAGES)
    if bouncer is not None:
        world.env["STAGEFLOW_POSTGRES_URL"] = bouncer.url(world.db)
    try:
        world.start()
        print("(b) warming both workers ...", file=sys.stderr)
        world.drop(warm)
        world.wait([job_key_for_file(v) for v in warm], 900)
        print(f"(b) stageflow, {len(videos)} videos into the inbox at once ...", file=sys.stderr)
        jobs = [job_key_for_file(v) for v in videos]

        def go() -> float:
            dropped = world.drop(videos)
            # `wait` reads "no run active and the sensors ticked since the last change" as done:
            # with the warm-up's runs in the instance, that holds until the first new run exists
            with world.instance() as instance:
                deadline = time.monotonic() + 300
                while not any(r.dagster_run.tags.get("stageflow/job") in jobs for r in instance.get_run_records(limit=50)):
                    if time.monotonic() > deadline:
                        raise RuntimeError("the inbox sensor requested no run within 300 s of the drop")
                    time.sleep(0.5)
            return world.wait(jobs, 1800) - dropped

        sessions = {proc.pid: name for name, proc in world.procs.items()}
        wall, cpu, db = measured(world.db, sessions, list(world.procs), go)
        with world.instance() as instance:
            runs = [r.dagster_run for r in instance.get_run_records()
                    if r.dagster_run.tags.get("stageflow/job") in set(jobs)]
    finally:
        world.stop()
    return wall, cpu, db, runs


def through_clis(work: Path, videos: list[Path], warm: list[Path], bouncer=None, one_command: bool = False,
                 ) -> tuple[float, dict, dict, list]:
    """(b) as parallel `stageflow subtitles` processes, one per video, waiting for their runs
    (or, `one_command`, one `stageflow subtitles` given every video)."""
    (work / "cluster").mkdir()
    cluster = Cluster(work / "cluster")
    if bouncer is not None:
        cluster.env["STAGEFLOW_POSTGRES_URL"] = bouncer.url(cluster.db)
    try:
        cluster.start()
        print("(b) warming both workers ...", file=sys.stderr)
        stageflow_batch(cluster, warm, work / "warm-out")
        print(f"(b) stageflow, {1 if one_command else len(videos)} CLI process(es) at once ...", file=sys.stderr)
        sessions = {proc.pid: name for name, proc in cluster.procs.items()}
        b, cpu, db = measured(cluster.db, sessions, list(cluster.procs),
                              lambda: stageflow_batch(cluster, videos, work / "stageflow", one_command)[0])
        with cluster.instance() as instance:
            import dagster as dg

            runs = [r.dagster_run for r in
                    instance.get_run_records(filters=dg.RunsFilter(tags={"stageflow/source": "cli"}))]
    finally:
        cluster.stop()
    return b, cpu, db, runs


def measure_b(args, work: Path, videos: list[Path], warm: list[Path], bouncer) -> tuple[float, dict, dict, list]:
    if args.via == "inbox":
        return through_inbox(work, videos, warm, bouncer)
    return through_clis(work, videos, warm, bouncer, one_command=args.via == "one-cli")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--via", choices=("cli", "one-cli", "inbox"), default="cli",
                        help="submit (b) as parallel `stageflow subtitles` processes (default), as one "
                             "`stageflow subtitles` given every video, or through the inbox")
    parser.add_argument("--pgbouncer", action="store_true",
                        help="(b) talks to PostgreSQL through a private PgBouncer (transaction pooling)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="stageflow-batch-"))
    videos = make_videos(work, args.videos, args.seconds)
    (work / "warm").mkdir()
    warm = make_videos(work / "warm", 2, 10.0)

    print(f"(a) plain, {len(videos)} videos one after another ...", file=sys.stderr)
    a1, report = plain(videos, work / "plain1")
    bouncer = None
    if args.pgbouncer:
        from pgbouncer_rig import PgBouncer, unavailable

        if unavailable():
            sys.exit(f"--pgbouncer: {unavailable()}")
        bouncer = PgBouncer()
        bouncer.start()
    try:
        b, cpu, db, runs = measure_b(args, work, videos, warm, bouncer)
    finally:
        if bouncer is not None:
            bouncer.stop()
    print("(a) plain again ...", file=sys.stderr)
    a2, _ = plain(videos, work / "plain2")
    a = statistics.mean([a1, a2])

    per_worker = Counter(r.tags.get("stageflow/worker", "?") for r in runs)
    asr = [v["phases"]["asr"] for v in report.get("videos", [report])]
    table(f"{len(videos)} x {args.seconds:g} s videos into {'+'.join(LANGUAGES)} (seconds)",
          ["side", "wall", "per video", "notes"],
          [["(a) plain, one process, one model", f"{a:.1f}", f"{a / len(videos):.2f}",
            f"runs {a1:.1f} and {a2:.1f}; Whisper {statistics.median(asr):.2f} s median per video"],
           [f"(b) stageflow, 2 warm Celery workers, via {args.via}" + (", PgBouncer" if bouncer else ""), f"{b:.1f}", f"{b / len(videos):.2f}",
            f"{len(runs)} runs: " + ", ".join(f"{w} {n}" for w, n in sorted(per_worker.items()))]])
    table(f"CPU seconds during (b), by process group ({os.cpu_count()} cores x {b:.0f} s = "
          f"{os.cpu_count() * b:.0f} core-s; (a) used {a:.0f} s of one core)", ["processes", "CPU s", "per video"],
          [[name, f"{sec:.1f}", f"{sec / len(videos):.2f}"] for name, sec in sorted(cpu.items(), key=lambda kv: -kv[1])])
    table("The cluster's database during (b) (pg_stat_database)", ["counter", "total", "per video"],
          [["sessions opened", f"{db['sessions']:.0f}", f"{db['sessions'] / len(videos):.0f}"],
           ["transactions committed", f"{db['commits']:.0f}", f"{db['commits'] / len(videos):.0f}"],
           ["backend seconds in statements/transactions", f"{db['active_s']:.1f}", f"{db['active_s'] / len(videos):.2f}"]])
    ratio = b / a
    table("Target", ["target", "goal", "measured", ""],
          [["(b)/(a)", f"<= {TARGET}", f"{ratio:.3f}", "PASS" if ratio <= TARGET else "MISS"]])
    return 0


if __name__ == "__main__":
    sys.exit(main())
