"""The least stock Dagster costs for one video's runs: the same runs and steps doing nothing.

    .venv/bin/python bench/dagster_floor.py             # 5 rounds (~1 min)

`stageflow subtitles VIDEO --lang es --lang ca` executes 4 runs with 10 steps in one process
(source: source_video, audio, transcript, cues; a run per language: translation, subtitles;
mux: subtitled_video, subtitle_outbox), on the instance `dagster.yaml` describes (Dagster's own
SQLite storage), through `dg.execute_job` and the in-process executor. This script runs that
shape with empty step bodies and an IO manager that stores nothing, in a fresh interpreter each
round, on a fresh copy of an initialised DAGSTER_HOME: what is left is what any project pays for
those runs on stock Dagster (interpreter, `import dagster`, the instance, the definitions, run
creation, the events of 4 runs and 10 steps), and none of stageflow's own code.

It sets that floor beside the overhead targets of `subtitles_overhead.py`: a target ratio r on
media whose plain pipeline takes B seconds allows A - B <= (r - 1) * B. The plain script pays
its own interpreter start (`python -c pass`), so the floor is compared net of it; and both sides
build the Whisper model in a background thread from their first moment, which stageflow's
Dagster start-up can hide behind (the plain script has little to hide there), so the floor is
also given net of that whole build, the most it could hide: the critical floor.
Exit status 0 whatever the figures say; non-zero only if a round crashed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

# B's wall (plain pipeline, seconds) on each media length, as subtitles_overhead.py last measured
# it (bench/README.md, 2026-11-30 16:28); --plain gives others
PLAIN_WALLS = {"60 s": 3.217, "300 s": 10.529, "600 s": 18.731}
TARGETS = {"60 s": 1.5, "300 s": 1.10, "600 s": 1.05}

FLOOR_JOBS = '''
import dagster as dg

jobs = dg.DynamicPartitionsDefinition(name="floor_jobs")
job_lang = dg.MultiPartitionsDefinition({"job": jobs, "lang": dg.StaticPartitionsDefinition(["ca", "es"])})
by_job = dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name="job")


class Nothing(dg.ConfigurableIOManager):
    def handle_output(self, context, obj):
        pass

    def load_input(self, context):
        return None


@dg.asset(partitions_def=jobs)
def source_video():
    return None


@dg.asset(partitions_def=jobs)
def audio(source_video):
    return None


@dg.asset(partitions_def=jobs)
def transcript(audio):
    return None


@dg.asset(partitions_def=jobs)
def cues(transcript):
    return None


@dg.asset(partitions_def=job_lang, ins={"cues": dg.AssetIn(partition_mapping=by_job)})
def translation(cues):
    return None


@dg.asset(partitions_def=job_lang)
def subtitles(translation):
    return None


@dg.asset(partitions_def=jobs, deps=[dg.AssetDep(subtitles, partition_mapping=by_job)])
def subtitled_video():
    return None


@dg.asset(partitions_def=jobs)
def subtitle_outbox(subtitled_video):
    return None


source_job = dg.define_asset_job("source_job", [source_video, audio, transcript, cues], partitions_def=jobs)
language_job = dg.define_asset_job("language_job", [translation, subtitles], partitions_def=job_lang)
mux_job = dg.define_asset_job("mux_job", [subtitled_video, subtitle_outbox], partitions_def=jobs)
defs = dg.Definitions(
    assets=[source_video, audio, transcript, cues, translation, subtitles, subtitled_video, subtitle_outbox],
    jobs=[source_job, language_job, mux_job],
    resources={"io_manager": Nothing()},
    executor=dg.in_process_executor,
)


def source():
    return defs.resolve_job_def("source_job")


def language():
    return defs.resolve_job_def("language_job")


def mux():
    return defs.resolve_job_def("mux_job")
'''

CHILD = '''
import json, sys, time
t0 = time.perf_counter()
import dagster as dg
t_import = time.perf_counter()
sys.path.insert(0, sys.argv[1])
import floor_jobs
instance = dg.DagsterInstance.get()
t_ready = time.perf_counter()
key = sys.argv[2]
instance.add_dynamic_partitions("floor_jobs", [key])
plan = [(floor_jobs.source, key)] + [(floor_jobs.language, f"{key}|{lang}") for lang in ("es", "ca")] + [(floor_jobs.mux, key)]
walls = []
for job, partition in plan:
    start = time.perf_counter()
    result = dg.execute_job(dg.reconstructable(job), instance, tags={"dagster/partition": partition})
    walls.append(time.perf_counter() - start)
    assert result.success, partition
instance.dispose()
print(json.dumps({"import": t_import - t0, "ready": t_ready - t_import, "runs": walls}))
'''


MODEL_BUILD = '''
import json, sys
sys.path.insert(0, sys.argv[1])
from plain_pipeline import load_model
built = {}
load_model(built)
print(json.dumps(built["background"]))
'''


def wall(argv: list[str], env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"dagster_floor: a round failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return time.perf_counter() - start, done.stdout


def events_in(home: Path) -> int:
    """The events the round's runs wrote, read back after the round (not in its time)."""
    import dagster as dg

    os.environ["DAGSTER_HOME"] = str(home)  # the instance's yaml reads its base_dir from it
    try:
        with dg.DagsterInstance.from_config(str(home)) as instance:
            return sum(len(instance.get_records_for_run(r.dagster_run.run_id, limit=10000).records)
                       for r in instance.get_run_records())
    finally:
        del os.environ["DAGSTER_HOME"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="fresh processes of each kind (default 5)")
    parser.add_argument("--plain", type=float, nargs=3, metavar=("B60", "B300", "B600"),
                        help="the plain pipeline's walls on 60 s, 300 s, 600 s (default: bench/README.md's)")
    args = parser.parse_args()
    plain = dict(zip(PLAIN_WALLS, args.plain)) if args.plain else PLAIN_WALLS
    python = sys.executable
    from subtitles_overhead import table  # one table format for every benchmark

    work = Path(tempfile.mkdtemp(prefix="dagster-floor-"))
    try:
        (work / "code").mkdir()
        (work / "code" / "floor_jobs.py").write_text(FLOOR_JOBS)
        template = work / "home"
        template.mkdir()
        shutil.copy(REPO / "dagster.yaml", template / "dagster.yaml")
        env = {**os.environ, "DAGSTER_HOME": str(template), "PYTHONDONTWRITEBYTECODE": "1"}
        subprocess.run([python, "-c", "import dagster as dg; dg.DagsterInstance.get().dispose()"], env=env, check=True)
        rows: dict[str, list[float]] = {"bare": [], "import": [], "whole": [], "in_import": [], "in_ready": [],
                                        "in_runs": [], "events": [], "model": []}
        runs_each: list[list[float]] = []
        for n in range(args.rounds + 1):  # the first round warms the page cache and is not counted
            home = work / f"home{n}"
            shutil.copytree(template, home)
            env = {**env, "DAGSTER_HOME": str(home)}
            bare, _ = wall([python, "-c", "pass"], env)
            imported, _ = wall([python, "-c", "import dagster"], env)
            whole, out = wall([python, "-c", CHILD, str(work / "code"), f"video{n}"], env)
            _, built = wall([python, "-c", MODEL_BUILD, str(REPO / "bench")], env)
            if n == 0:
                continue
            inside = json.loads(out.strip().splitlines()[-1])
            rows["bare"].append(bare)
            rows["import"].append(imported)
            rows["whole"].append(whole)
            rows["in_import"].append(inside["import"])
            rows["in_ready"].append(inside["ready"])
            rows["in_runs"].append(sum(inside["runs"]))
            rows["events"].append(events_in(home))
            background = json.loads(built.strip().splitlines()[-1])
            rows["model"].append(background["asr_import"] + background["model_load"])
            runs_each.append(inside["runs"])
    finally:
        shutil.rmtree(work, ignore_errors=True)

    med = {name: statistics.median(values) for name, values in rows.items()}
    floor = med["whole"] - med["bare"]
    critical = floor - med["model"]
    load = os.getloadavg()
    print("Stock Dagster's floor for one video's runs (bench/dagster_floor.py)")
    print(f"  date           {time.strftime('%Y-%m-%dT%H:%M:%S%z')}")
    print(f"  python         {sys.version.split()[0]} ({python})")
    import dagster

    print(f"  dagster        {dagster.__version__}; instance: the repository's dagster.yaml (SQLite storage)")
    print(f"  load average   {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at end (1/5/15 min)")
    print(f"  rounds         {args.rounds} fresh interpreters of each kind (medians below)")
    table("Fresh processes (medians; seconds)", ["what", "s", "how it is measured"], [
        ["python -c pass", f"{med['bare']:.3f}", "interpreter start and exit (the plain script pays it too)"],
        ["python -c 'import dagster'", f"{med['import']:.3f}", "interpreter + importing Dagster"],
        ["4 runs, 10 empty steps, whole process", f"{med['whole']:.3f}", "import, instance, definitions, runs, exit"],
        ["  of which import dagster", f"{med['in_import']:.3f}", "measured inside the process"],
        ["  of which definitions + instance", f"{med['in_ready']:.3f}", "measured inside the process"],
        ["  of which the 4 runs", f"{med['in_runs']:.3f}",
         " / ".join(f"{statistics.median(r[i] for r in runs_each):.3f}" for i in range(4))
         + " (source, es, ca, mux)"],
        ["  events written", f"{med['events']:.0f}", "Dagster's event log, all 4 runs"],
        ["floor: whole process - python -c pass", f"{floor:.3f}", "what no stageflow code can remove"],
        ["Whisper model build (import + load)", f"{med['model']:.3f}",
         "bench/plain_pipeline.load_model in a fresh process"],
        ["critical floor: floor - model build", f"{critical:.3f}", "if all the build hid Dagster's work"],
    ])
    verdicts = []
    for media, ratio in TARGETS.items():
        allowance = (ratio - 1) * plain[media]
        verdicts.append([media, f"<= {ratio:g}", f"{plain[media]:.3f}", f"{allowance:.3f}", f"{critical:.3f}",
                         f"{1 + critical / plain[media]:.3f}",
                         "reachable" if critical < allowance else "NOT reachable"])
    table("The overhead targets against the critical floor", ["media", "target A/B", "B wall", "allowed A-B",
                                                             "critical floor", "best A/B", "target"], verdicts)
    print("  best A/B = 1 + critical floor / B: stageflow with no cost of its own (no stage runtime, manifests,")
    print("  events or IO of its own) on stock Dagster, its Whisper and tool time the plain script's, and")
    print("  the whole model build hiding Dagster's work. B walls: " + ("--plain" if args.plain else
          "subtitles_overhead.py, 2026-11-30 16:28 (bench/README.md)") + ".")


if __name__ == "__main__":
    main()
