"""What delivering stageflow's events costs a run (STAGEFLOW_EVENT_SINK, core/event_sink.py).

    .venv/bin/python bench/event_sink.py               # ~2 min on 2 cores (7 rounds)
    .venv/bin/python bench/event_sink.py --rounds 0    # the emit micro-benchmark only

1. The run's side of emitting one event: `EventSinkHandler.handle(record)`, what Dagster's log
   manager calls on the run's thread for every event, timed call by call (perf_counter_ns) over
   10,000 real log records: the records of a small real run (a stage, a failing stage, a check),
   captured through the same `python_logs` setting dagster.yaml uses, replayed in a loop. Sinks:
   none (variable unset), a JSON-lines file, an HTTP endpoint that accepts and never answers
   (the queue takes all 10,000: nothing is dropped), Redis on 127.0.0.1:6379 (skipped if
   unreachable). The delivery thread runs meanwhile, so its share of the GIL is in the figures.
   Also: what the handler being configured costs each run log manager (Dagster runs
   logging.config.dictConfig per log manager, ~3 per run), and handle() for records that are
   not taxonomy events (most of a run's events: step outputs, inputs, engine events).
2. A real short run: `stageflow subtitles VIDEO --lang es` on a short speech video whose stages
   are reused (so orchestration, not Whisper, dominates), with no sink, an HTTP sink that never
   answers, and a file sink, in rotating order. Process wall time, and the runs' own time
   (RUN_START to the run's end, summed over its 3 runs, from the run records).
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path

import dagster as dg

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
from subtitles_overhead import table  # noqa: E402 - one table format for every benchmark
from stageflow_assets_tests.test_events import SilentServer as Silent  # noqa: E402 - the tests' never-answering server

STAGEFLOW = Path(sys.executable).with_name("stageflow")
N_EVENTS = 10_000
CAPTURED: list[logging.LogRecord] = []


class Capture(logging.Handler):
    """Keeps every record Dagster hands a python_logs handler (named in the config as __main__.Capture)."""

    def emit(self, record: logging.LogRecord) -> None:
        CAPTURED.append(record)


def _python_logs(cls: str) -> dict:
    return {"python_logs": {"dagster_handler_config": {"handlers": {"h": {"class": cls}}}}}


@dg.asset
def source() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"status": "success", "duration_s": 0.1})


@dg.asset(deps=[source])
def transcript() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"status": "success", "duration_s": 0.2})


@dg.asset(deps=[transcript])
def translation() -> None:
    raise dg.Failure(description="translation: apertium failed (exit 3)")


@dg.asset_check(asset=transcript)
def transcript_ok() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True)


def capture_records() -> list[logging.LogRecord]:
    with dg.instance_for_test(overrides=_python_logs("__main__.Capture")) as instance:
        dg.materialize([source, transcript, translation, transcript_ok], instance=instance, raise_on_error=False,
                       tags={"stageflow/job": "bench-0123abcd", "stageflow/source": "bench"},
                       run_config={"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}})
    return [r for r in CAPTURED if getattr(r, "dagster_meta", None)]


def redis_url() -> str | None:
    import redis

    try:
        redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=1).ping()
    except redis.RedisError:
        return None
    return f"redis://127.0.0.1:6379/0?stream=stageflow-bench-{os.getpid()}"


def time_handle(url: str | None, records: list[logging.LogRecord], n: int) -> dict:
    from stageflow_assets.core import event_sink

    if url:
        os.environ[event_sink.SINK_ENV] = url
    else:
        os.environ.pop(event_sink.SINK_ENV, None)
    handler = event_sink.EventSinkHandler()
    times = []
    clock = time.perf_counter_ns
    collections = []
    counter = lambda phase, info: phase == "stop" and collections.append(info["generation"])  # noqa: E731
    gc.collect()  # leftovers of the previous sink would otherwise be collected inside this loop
    gc.callbacks.append(counter)
    for i in range(n):
        record = records[i % len(records)]
        start = clock()
        handler.handle(record)
        times.append(clock() - start)
    gc.callbacks.remove(counter)
    box = handler.outbox
    flushed = box.flush(5.0) if box is not None and not url.startswith("http") else None
    times.sort()
    return {"median": times[n // 2] / 1000, "p99": times[int(n * 0.99)] / 1000, "max": times[-1] / 1000,
            "mean": sum(times) / n / 1000, "dropped": box.dropped if box else 0,
            "delivered": box.delivered if box else 0, "flushed": flushed,
            "thread": any(t.name == "stageflow-events" for t in threading.enumerate()),
            "gc": f"{len(collections)}/{collections.count(2)}"}


def config_cost(repeats: int = 200) -> tuple[float, float]:
    """ms per run log manager to build the instance's handlers, without and with ours configured."""
    out = []
    for overrides in ({}, _python_logs("stageflow_assets.core.event_sink.EventSinkHandler")):
        with dg.instance_for_test(overrides=overrides) as instance:
            instance.get_handlers()
            start = time.perf_counter()
            for _ in range(repeats):
                instance.get_handlers()
            out.append((time.perf_counter() - start) / repeats * 1000)
    return out[0], out[1]


def emit_benchmark(workdir: Path) -> None:
    from stageflow_assets.core.events import WANTED

    records = capture_records()
    wanted = [r for r in records if r.dagster_meta["dagster_event"] is not None
              and r.dagster_meta["dagster_event"].event_type_value in WANTED]
    other = [r for r in records if r not in wanted]
    silent = Silent()
    sinks = [("none (unset)", None), ("file", f"file://{workdir}/events.jsonl"),
             ("http, never answers", f"http://127.0.0.1:{silent.port}/hook")]
    redis = redis_url()
    sinks.append(("redis stream", redis) if redis else ("redis stream (unreachable: skipped)", ""))
    rows = []
    for name, url in sinks:
        if url == "":
            rows.append([name] + ["-"] * 8)
            continue
        r = time_handle(url, wanted, N_EVENTS)
        rows.append([name, f"{r['median']:.2f}", f"{r['p99']:.2f}", f"{r['max']:.0f}", f"{r['mean']:.2f}",
                     str(r["dropped"]), str(r["delivered"]), "yes" if r["thread"] else "no", r["gc"]])
    ours = time_handle(f"file://{workdir}/other.jsonl", other, N_EVENTS)
    silent.close()
    if redis:
        import redis as redis_lib

        redis_lib.Redis.from_url(redis.split("?")[0]).delete(redis.split("stream=")[1])
    table(f"The run's side of emitting one event: EventSinkHandler.handle(record), {N_EVENTS:,} taxonomy "
          f"records ({len(wanted)} distinct, from a real run) per sink; microseconds",
          ["sink", "median", "p99", "max", "mean", "dropped", "delivered", "thread", "gc"], rows)
    print(f"  records that are no taxonomy event ({len(other)} distinct: outputs, inputs, engine events), "
          f"file sink: median {ours['median']:.2f} us, p99 {ours['p99']:.2f} us")
    without, with_ours = config_cost()
    print(f"  handlers built per run log manager (dictConfig, ~3 per run): {without:.3f} ms without the "
          f"python_logs handler, {with_ours:.3f} ms with it")
    print("  delivered: stageflow events sent by the end of the loop plus a flush of at most 5 s (HTTP: never);"
          " thread: a delivery thread exists; gc: garbage collections during the loop (all/full), which land on"
          " whichever thread allocates")


def cli_run(video: Path, env: dict) -> tuple[float, list[str], str]:
    start = time.perf_counter()
    proc = subprocess.run([str(STAGEFLOW), "subtitles", str(video), "--lang", "es"], env=env,
                          capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"stageflow failed ({proc.returncode}): {proc.stderr[-2000:]}")
    runs = [l.split(":", 1)[1].split()[0] for l in proc.stdout.splitlines() if l.startswith("run:")]
    return wall, runs, proc.stderr


def run_benchmark(workdir: Path, rounds: int) -> None:
    from stageflow_assets.demo import sample_video

    env = {**os.environ, "DAGSTER_HOME": str(workdir / "dagster"), "STAGEFLOW_HOME": str(workdir / "stageflow")}
    env.pop("STAGEFLOW_EVENT_SINK", None)
    video = sample_video(workdir / "speech.mp4", text="The quick brown fox jumps over the lazy dog. The house is big.")
    cli_run(video, env)  # Whisper once; every measured run reuses the stages
    silent = Silent()
    variants = [("no sink", None), ("http, never answers", f"http://127.0.0.1:{silent.port}/hook"),
                ("file", f"file://{workdir}/run-events.jsonl")]
    walls: dict[str, list[float]] = {name: [] for name, _ in variants}
    run_s: dict[str, list[float]] = {name: [] for name, _ in variants}
    notes: dict[str, str] = {}
    os.environ["DAGSTER_HOME"] = env["DAGSTER_HOME"]
    for i in range(rounds):
        order = variants[i % 3:] + variants[:i % 3]  # rotate, so drift on the machine hits all alike
        for name, url in order:
            wall, runs, stderr = cli_run(video, {**env, **({"STAGEFLOW_EVENT_SINK": url} if url else {})})
            walls[name].append(wall)
            with dg.DagsterInstance.get() as instance:
                records = [instance.get_run_record_by_id(r) for r in runs]
            run_s[name].append(sum(r.end_time - r.start_time for r in records))
            lines = [l for l in stderr.splitlines() if l.startswith("stageflow: events:")]
            notes[name] = lines[-1][len("stageflow: events: "):] if lines else "-"
    silent.close()
    base_wall, base_run = statistics.median(walls["no sink"]), statistics.median(run_s["no sink"])
    rows = []
    for name, _ in variants:
        w, r = statistics.median(walls[name]), statistics.median(run_s[name])
        rows.append([name, str(len(walls[name])), f"{w:.3f}", f"{w - base_wall:+.3f}", f"{r:.3f}", f"{r - base_run:+.3f}",
                     f"{min(walls[name]):.3f}-{max(walls[name]):.3f}"])
    table(f"A real short run: `stageflow subtitles VIDEO --lang es`, 3 runs, stages reused; medians over "
          f"{rounds} rounds, rotating order; seconds", ["sink", "n", "wall", "vs none", "runs", "vs none", "wall range"],
          rows)
    for name, _ in variants[1:]:
        print(f"  {name}: last report: {notes[name]}")
    print("  runs: RUN_START to the end of each of the 3 runs, summed (run records)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7, help="rounds of the real-run comparison (0: skip it)")
    args = parser.parse_args()
    logging.getLogger("stageflow_assets.events").setLevel(logging.ERROR)  # the never-answering sink's lines
    start_load = os.getloadavg()
    print("stageflow's event delivery (bench/event_sink.py)")
    cpu = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                if l.startswith("model name")), platform.processor())
    with tempfile.TemporaryDirectory(prefix="stageflow-events-bench-") as tmp:
        workdir = Path(tmp)
        os.environ["DAGSTER_HOME"] = str(workdir / "unused-home")
        print(f"  date           {datetime.now(timezone.utc).isoformat(timespec='seconds')}")
        print(f"  cpu            {os.cpu_count()} cores visible, {len(os.sched_getaffinity(0))} usable; {cpu}")
        print(f"  python         {platform.python_version()}   dagster {version('dagster')}   "
              f"requests {version('requests')}   redis-py {version('redis')}")
        emit_benchmark(workdir)
        if args.rounds:
            run_benchmark(workdir, args.rounds)
    end = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"  load average   {' '.join(f'{x:.2f}' for x in start_load)} at start, {end} at end "
          "(1/5/15 min; >0.2 means other work ran too)")


if __name__ == "__main__":
    main()
