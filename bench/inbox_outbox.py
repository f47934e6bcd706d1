"""An 11 s speech clip dropped into the inbox with the Dagster daemon running: how long until its
English and Spanish subtitles and its subtitled video are there to pick up?

    .venv/bin/python bench/inbox_outbox.py                  # this checkout, 3 drops (~4 min)
    .venv/bin/python bench/inbox_outbox.py --before REV     # and the same drops on commit REV first
    .venv/bin/python bench/inbox_outbox.py --before REV --after HEAD   # two commits, not the tree

Each variant starts `dagster-daemon run` on a fresh home (the rig of
stageflow_assets_tests/inbox_load.py, `STAGEFLOW_LANGUAGES=en,es`), waits for its inbox sensors to
tick, then drops `--drops` clips one after the other (each its own bytes, so its own job; the
next one once the daemon is idle again), each renamed into `$STAGEFLOW_HOME/inbox/videos/`. It
polls every 0.2 s for the files a user picks up: the outbox folder's `<job>.en|es.srt/.vtt/.ass`
and `<job>.mkv` where the checkout has an outbox, otherwise (a commit before it) the same files in
the stage dirs (`06_subtitles/<lang>/`, `07_subtitled_video/`). Hops come from the run records.

`--before REV` exports REV (`git archive`) into a temporary directory and runs this script there
(its daemon, code server and runs import that code), then this checkout's (or `--after REV`'s,
exported the same way: work in progress in the tree left out); the table compares them.
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
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
LIBRIVOX = REPO.parent / "shared" / "data" / "librivox"
LANGUAGES = ("en", "es")
CLIP_S = 11.0


def speech_clip(dst: Path, i: int) -> Path:
    """11 s of speech (LibriVox from ../shared/data, else espeak-ng) over a black picture; `i`
    goes into the container's metadata, so every clip is its own job."""
    wav = dst.with_suffix(".wav")
    clips = sorted(LIBRIVOX.glob("*.wav"))
    if clips:
        listing = dst.with_suffix(".txt")
        listing.write_text("".join(f"file '{c}'\n" for c in clips))
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(listing),
                        "-t", f"{CLIP_S}", str(wav)], check=True)
    else:
        text = ("The river runs past the old mill every morning. Children walk along its banks on their way to "
                "school, and the baker opens his shop when the church bell rings seven times.")
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(wav), text], check=True)
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", "color=c=black:s=320x240:r=25",
                    "-i", str(wav), "-t", f"{CLIP_S}", "-shortest", "-c:v", "libx264", "-preset", "ultrafast",
                    "-pix_fmt", "yuv420p", "-c:a", "aac", "-metadata", f"comment=stageflow bench clip {i}", str(dst)],
                   check=True)
    return dst


def wanted_files(home: Path, job: str, outbox: bool) -> list[Path]:
    if outbox:
        folder = home / "outbox" / "subtitles" / job
        return [folder / f"{job}.mkv"] + [folder / f"{job}.{lang}.{ext}" for lang in LANGUAGES
                                          for ext in ("srt", "vtt", "ass")]
    root = home / "subtitles" / job
    return [root / "07_subtitled_video" / "subtitled.mkv"] + [
        root / "06_subtitles" / lang / f"subtitles.{ext}" for lang in LANGUAGES for ext in ("srt", "vtt", "ass")]


def idle(world, instance) -> bool:
    """No run and no backfill going, every sensor ticked since the last change."""
    from stageflow_assets_tests import inbox_load

    records = instance.get_run_records()
    if any(r.dagster_run.status in inbox_load.ACTIVE for r in records) or inbox_load._open_backfills(instance):
        return False
    return world._sensors_ticked_since(instance, inbox_load._last_change(instance, records)[1])


def measure(variant: str, drops: int, timeout: float) -> dict:
    """One daemon, `drops` clips one after the other; what each took."""
    from stageflow_assets.core.keys import job_key_for_file
    from stageflow_assets_tests.inbox_load import InboxWorld

    outbox = (REPO / "stageflow_assets" / "subtitles" / "outbox_assets.py").is_file()
    base = Path(tempfile.mkdtemp(prefix=f"stageflow-outbox-{variant}-"))
    os.environ["PYTHONPATH"] = str(REPO)  # the daemon, its code server and runs import this code
    world = InboxWorld(base / "world", languages=LANGUAGES)
    results = {"variant": variant, "target": "outbox folder" if outbox else "stage dirs", "drops": []}
    try:
        world.start()
        for i in range(drops):
            clip = speech_clip(base / f"clip{i}.mp4", i)
            job = job_key_for_file(clip)
            files = wanted_files(world.home, job, outbox)
            dropped_at = world.drop([clip])
            deadline = time.monotonic() + timeout
            while not all(p.is_file() for p in files):
                world._check_alive()
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{variant}: {job} not delivered within {timeout:g} s")
                time.sleep(0.2)
            delivered_at = time.time()
            with world.instance() as instance:
                while not idle(world, instance):  # the next drop meets an idle daemon
                    world._check_alive()
                    time.sleep(1)
            report = world.report([job], dropped_at, delivered_at)
            runs = [r for r in report.runs if r.job == job]
            results["drops"].append({"job": job, "seconds": round(delivered_at - dropped_at, 1),
                                     "hops": hops_of(runs, dropped_at, delivered_at),
                                     "runs": dict(Counter(r.kind for r in runs)), "backfills": _backfills(world),
                                     "not_success": sum(r.status.value != "SUCCESS" for r in runs)})
    finally:
        results["processes_left"] = len(world.stop())
        shutil.rmtree(base, ignore_errors=True)
    return results


def hops_of(runs, dropped_at: float, delivered_at: float) -> dict[str, float]:
    """Where one drop's time went, from its runs' records (created, started, ended)."""
    by_kind = {kind: [r for r in runs if r.kind == kind] for kind in ("source", "language", "mux")}
    if not all(by_kind.values()) or any(None in (r.started, r.ended) for r in runs):
        return {}
    (source,), langs, mux = by_kind["source"][:1], by_kind["language"], by_kind["mux"][-1]
    hops = [
        ("drop -> source run created (inbox sensor)", source.created - dropped_at),
        ("source run created -> started (queue, launch)", source.started - source.created),
        ("source run (probe, demux, transcribe)", source.ended - source.started),
        ("source end -> last language run created", max(r.created for r in langs) - source.ended),
        ("language runs created -> started (queue, launch)", max(r.started - r.created for r in langs)),
        ("language runs (longest)", max(r.ended - r.started for r in langs)),
        ("last language end -> mux run created", mux.created - max(r.ended for r in langs)),
        ("mux run created -> started (queue, launch)", mux.started - mux.created),
        ("mux run (mux, and deliver where there is an outbox)", mux.ended - mux.started),
        ("mux end -> files seen there", delivered_at - mux.ended),
    ]
    return {name: round(value, 1) for name, value in hops}


def _backfills(world) -> int:
    with world.instance() as instance:
        return len(instance.get_backfills(limit=1000))


def run_variant(code: Path, variant: str, drops: int, timeout: float) -> dict:
    out = Path(tempfile.mkstemp(prefix="stageflow-outbox-", suffix=".json")[1])
    try:
        subprocess.run([sys.executable, str(code / "bench" / "inbox_outbox.py"), "--measure", variant,
                        "--drops", str(drops), "--timeout", str(timeout), "--json", str(out)], check=True)
        return json.loads(out.read_text())
    finally:
        out.unlink(missing_ok=True)


def run_commit(rev: str, name: str, drops: int, timeout: float) -> dict:
    """This script run on commit `rev`'s code, exported into a temporary directory."""
    with tempfile.TemporaryDirectory(prefix=f"stageflow-{name}-") as tmp:
        archive = subprocess.run(["git", "-C", str(REPO), "archive", rev], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        shutil.copyfile(__file__, Path(tmp) / "bench" / "inbox_outbox.py")  # this script, that code
        short = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", rev], check=True,
                               capture_output=True, text=True).stdout.strip()
        return run_variant(Path(tmp), f"{name} ({short})", drops, timeout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--drops", type=int, default=3, help="clips dropped one after the other per variant")
    parser.add_argument("--before", metavar="REV", help="also measure this commit (git archive), first")
    parser.add_argument("--after", metavar="REV", help="measure this commit instead of the checkout")
    parser.add_argument("--timeout", type=float, default=600, help="give up on a clip after this many seconds")
    parser.add_argument("--measure", metavar="VARIANT", help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        args.json.write_text(json.dumps(measure(args.measure, args.drops, args.timeout)))
        return 0

    start_load = os.getloadavg()
    variants = []
    if args.before:
        variants.append(run_commit(args.before, "before", args.drops, args.timeout))
    if args.after:
        variants.append(run_commit(args.after, "after", args.drops, args.timeout))
    else:
        variants.append(run_variant(REPO, "after (this checkout)", args.drops, args.timeout))
    report(variants, start_load)
    return 0 if all(v["processes_left"] == 0 and not any(d["not_success"] for d in v["drops"]) for v in variants) else 1


def report(variants: list[dict], start_load) -> None:
    from importlib.metadata import version

    from subtitles_overhead import table  # one table format for every benchmark

    print("An 11 s clip dropped into the inbox, the daemon running: drop -> its files there (bench/inbox_outbox.py)")
    print(f"  cpu            {os.cpu_count()} cores visible, {len(os.sched_getaffinity(0))} usable")
    print(f"  dagster        {version('dagster')}; languages {','.join(LANGUAGES)}; "
          f"clip {CLIP_S:g} s ({'LibriVox' if LIBRIVOX.is_dir() else 'espeak-ng'} speech)")
    rows = []
    for v in variants:
        seconds = [d["seconds"] for d in v["drops"]]
        rows.append([v["variant"], v["target"], str(len(seconds)), f"{min(seconds):.1f}",
                     f"{statistics.median(seconds):.1f}", f"{max(seconds):.1f}"])
    table("Drop -> English and Spanish subtitles and the video there, seconds",
          ["variant", "waited for", "drops", "min", "median", "max"], rows)
    names = list(dict.fromkeys(n for v in variants for d in v["drops"] for n in d["hops"]))
    table("Per hop, medians over the drops, seconds (from the run records; the mux run is the last one)",
          ["hop", *[v["variant"] for v in variants]],
          [[n, *[_median([d["hops"].get(n) for d in v["drops"]]) for v in variants]] for n in names])
    table("Each drop's runs", ["variant", "runs per drop", "backfills, all drops", "not SUCCESS",
                                 "processes left"],
          [[v["variant"], "; ".join(sorted({", ".join(f"{k} {n}" for k, n in sorted(d["runs"].items()))
                                            for d in v["drops"]})),
            str(max(d["backfills"] for d in v["drops"])), str(sum(d["not_success"] for d in v["drops"])),
            str(v["processes_left"])] for v in variants])
    end = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\n  load average   {' '.join(f'{x:.2f}' for x in start_load)} at start, {end} at end (1/5/15 min)")


def _median(values) -> str:
    values = [v for v in values if v is not None]
    return f"{statistics.median(values):.1f}" if values else "-"


if __name__ == "__main__":
    sys.exit(main())
