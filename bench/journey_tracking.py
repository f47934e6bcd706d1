"""What recording a journey costs: tracking on against tracking off, side by side.

    .venv/bin/python bench/journey_tracking.py              # 8 alternated pairs (~1 min)
    .venv/bin/python bench/journey_tracking.py --pairs 4

Each pair runs the same offline journey ("A quiet lake at dawn with mountains", Stille Post x6,
an image and 8 s of music, seed 7) through the Dagster instance twice, as `stageflow journey`
does (`journey.pipeline.run_journey`, in this process, on a temporary DAGSTER_HOME and
STAGEFLOW_HOME): once as the product runs it, once with tracking off — each stage's
`StageRecording` replaced by one that keeps nothing and writes nothing, and no record written at
the end. Order alternates within pairs.

Two views of the cost:
- timed from inside: every call into the real recording (item appends, the per-step write, the
  record at the end) timed with perf_counter — the exact price, per item and per journey;
- wall: the journey's wall time on and off, medians (noisier than the cost itself on a shared
  machine, so it bounds rather than measures it).
Also the time of each stage on the offline defaults (the stage manifests' duration_s).

Targets (seed 3's bounds): <= 1 ms per item recorded, <= 100 ms of tracking per journey.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from subtitles_overhead import table  # noqa: E402

OPTIONS = {"prompt": "A quiet lake at dawn with mountains", "lang": "en", "work_lang": "en",
           "interception": "stille-post", "iterations": 6, "via": [], "outputs": ["image", "music"],
           "seed": 7, "safety": "youth", "source": "cli"}
PER_ITEM_TARGET_MS = 1.0
ORIGINAL: dict = {}
PER_JOURNEY_TARGET_MS = 100.0


class Clock:
    """Seconds spent inside the recording, by kind of call, for the journey going on."""

    def __init__(self) -> None:
        self.appends: list[float] = []  # one per item
        self.step_writes = 0.0  # each step's items file and metadata
        self.record = 0.0  # the journey's record, built and written at the end

    @property
    def seconds(self) -> float:
        return sum(self.appends) + self.step_writes + self.record

    @contextlib.contextmanager
    def timing(self, what: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            spent = time.perf_counter() - t0
            if what == "append":
                self.appends.append(spent)
            else:
                setattr(self, what, getattr(self, what) + spent)


def patched(tracking: bool, clock: Clock):
    """The modules' StageRecording (and the final record) for this side."""
    from stageflow_assets.journey import assets, media_assets, pipeline, recording

    real_recording = recording.StageRecording  # the modules below get the replacements
    real_write = ORIGINAL.setdefault("write_record", pipeline._write_record)

    class TimedRecording(real_recording):
        def add(self, kind, **fields):
            with clock.timing("append"):
                super().add(kind, **fields)

        def _save(self, out):
            with clock.timing("step_writes"):
                super()._save(out)

    class NoRecording(real_recording):
        def add(self, kind, **fields):
            self.tracker._next += 1  # the sequence goes on, nothing is kept

        def _save(self, out):
            out.details["next_seq"] = self.tracker.next_seq

    def timed_write(*args, **kwargs):
        with clock.timing("record"):
            return real_write(*args, **kwargs)

    chosen = TimedRecording if tracking else NoRecording
    assets.StageRecording = media_assets.StageRecording = chosen
    pipeline._write_record = timed_write if tracking else (lambda *args, **kwargs: None)


def one_journey(tracking: bool) -> tuple[float, Clock, str]:
    import dagster as dg

    from stageflow_assets.core.stage_store import StageStore
    from stageflow_assets.journey.pipeline import run_journey

    clock = Clock()
    patched(tracking, clock)
    with dg.DagsterInstance.get() as instance:
        t0 = time.perf_counter()
        result = run_journey(instance, StageStore().paths, dict(OPTIONS))
        wall = time.perf_counter() - t0
    assert result.blocked is None
    return wall, clock, result.job


def stage_times(key: str) -> dict[str, float]:
    from stageflow_assets.core.manifest import MANIFEST_NAME, read_manifest
    from stageflow_assets.core.stage_store import StageStore
    from stageflow_assets.journey import stage_dirs

    paths = StageStore().paths
    times = {}
    for spec in stage_dirs.ALL:
        manifest = read_manifest(paths.stage_dir(stage_dirs.DOMAIN, key, spec.dir_name) / MANIFEST_NAME)
        times[spec.dir_name] = manifest.duration_s
    return times


def main() -> int:
    import warnings

    warnings.filterwarnings("ignore", message=".*currently in beta")  # Dagster's notes on its own APIs
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=8)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="stageflow-journey-bench-"))
    os.environ.update(DAGSTER_HOME=str(work / "dagster"), STAGEFLOW_HOME=str(work / "stageflow"),
                      ANTHROPIC_API_KEY="", STAGEFLOW_LLM_URL="", STAGEFLOW_COMFYUI_URL="", STAGEFLOW_IMAGES_URL="")
    (work / "dagster").mkdir()
    from stageflow_assets.core.instance import ensure_dagster_home

    ensure_dagster_home()
    start_load = os.getloadavg()
    one_journey(True)  # warm-up: imports, Apertium pair discovery, the instance's schema
    on, off, clocks, stages_on = [], [], [], []
    for pair in range(args.pairs):
        for tracking in ((True, False) if pair % 2 == 0 else (False, True)):
            wall, clock, key = one_journey(tracking)
            if tracking:
                on.append(wall)
                clocks.append(clock)
                stages_on.append(stage_times(key))
            else:
                off.append(wall)
        print(f"pair {pair + 1}/{args.pairs} done", file=sys.stderr)

    print(f"load average {' '.join(f'{x:.2f}' for x in start_load)} at start, "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} at end (1/5/15 min, 2 cores: above ~0.5 other work "
          f"ran too and the wall row is noise; the timed rows are not)")
    per_journey_ms = [c.seconds * 1000 for c in clocks]
    per_item_ms = [t * 1000 for c in clocks for t in c.appends]
    items = len(clocks[0].appends)
    ms = lambda values: f"{statistics.median(values):.3f}"  # noqa: E731
    table(f"Journey tracking, {args.pairs} alternated pairs (offline; Stille Post x6, image + music)",
          ["measure", "tracking on", "tracking off", "difference"],
          [["wall per journey, median (s)", f"{statistics.median(on):.3f}", f"{statistics.median(off):.3f}",
            f"{statistics.median(on) - statistics.median(off):+.3f}"],
           ["items recorded per journey", str(items), "0", ""],
           ["time inside the recording per journey, median (ms)", f"{statistics.median(per_journey_ms):.1f}", "0",
            f"max {max(per_journey_ms):.1f}"],
           ["  appending items, per journey (ms)", ms([sum(c.appends) * 1000 for c in clocks]), "0", ""],
           ["  writing each step's items file + metadata, per journey (ms)",
            ms([c.step_writes * 1000 for c in clocks]), "0", ""],
           ["  the record at the end (built from the instance, JSON), per journey (ms)",
            ms([c.record * 1000 for c in clocks]), "0", ""],
           ["one item appended, median over all items (ms)", ms(per_item_ms), "", f"max {max(per_item_ms):.3f}"]])
    names = list(stages_on[0])
    table("Time of each stage on the offline defaults (tracking on; medians of manifest duration_s)",
          ["stage", "seconds"], [[n, f"{statistics.median(s[n] for s in stages_on):.3f}"] for n in names])
    table("Targets", ["target", "goal", "measured", ""],
          [["tracking per item", f"<= {PER_ITEM_TARGET_MS:g} ms", f"{max(per_item_ms):.3f} ms (worst item)",
            "PASS" if max(per_item_ms) <= PER_ITEM_TARGET_MS else "MISS"],
           ["tracking per journey", f"<= {PER_JOURNEY_TARGET_MS:g} ms", f"{max(per_journey_ms):.1f} ms (worst)",
            "PASS" if max(per_journey_ms) <= PER_JOURNEY_TARGET_MS else "MISS"]])
    return 0


if __name__ == "__main__":
    sys.exit(main())
