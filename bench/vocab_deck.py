"""A 1,000-word deck, offline, the whole `stageflow vocab` command: before against after.

    .venv/bin/python bench/vocab_deck.py --before a376a35             # ~4-8 min on 2 loaded cores
    .venv/bin/python bench/vocab_deck.py --before a376a35 --after HEAD --words 300

The list: the 1,000 WordNet nouns people meet most (tagged sense count, then alphabetical; one
lowercase word of 3+ letters each), generated from /usr/share/wordnet/index.noun, so the same
list everywhere. Each side runs `stageflow vocab LIST --deck Bench --native es --out DIR` as a
user does (a fresh process, a fresh STAGEFLOW_HOME and DAGSTER_HOME, nothing cached), from its
own tree: `--before REF` / `--after REF` are checked out with `git worktree add` under /tmp (a
shared checkout cannot be stashed) and removed at the end, `--after .` (the default) is this
checkout; PYTHONPATH points the venv's Python at the tree. The sides alternate (`--pairs`).

Printed side by side: the command's wall time, each stage's `duration_s` from its manifest,
and each Dagster step's wall (checks included: `audio_files_decodable` is a step of its own)
from the run's step stats; with the load average, since the machine is shared.

`--alternatives` (on by default) also times the ways to speak and check 100 words that were
weighed, in this process: one espeak-ng and one ffmpeg process per word (before), espeak-ng
per word with the MP3 encoded in process, the forking espeak-ng workers (after); ffprobe per
file (before) against a full in-process decode (after).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

from subtitles_overhead import table  # one table format for every benchmark (bench/ is the script's own dir)

REPO = Path(__file__).resolve().parents[1]
PYTHON = Path(sys.executable)
ALTERNATIVE_WORDS = 100
CREATED: list[Path] = []  # worktrees this run added, removed at its end
STAGES = ["word_list", "word_analysis", "pronunciation_audio", "card_images", "anki_deck", "deck_outbox"]


def noun_list(count: int, path: Path) -> Path:
    rows = []
    for line in Path("/usr/share/wordnet/index.noun").read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("  "):
            continue
        parts = line.split()
        if re.fullmatch(r"[a-z]{3,}", parts[0]):
            rows.append((-int(parts[5 + int(parts[3])]), parts[0]))
    path.write_text("\n".join(w for _, w in sorted(rows)[:count]) + "\n", encoding="utf-8")
    return path


def tree_for(ref: str) -> Path:
    if ref == ".":
        return REPO
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", ref], check=True,
                            capture_output=True, text=True).stdout.strip()
    tree = Path(tempfile.gettempdir()) / f"vocab-bench-{commit}"
    if not tree.is_dir():
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(tree), commit], check=True,
                       capture_output=True)
        CREATED.append(tree)
    return tree


def remove_trees() -> None:
    for tree in CREATED:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)], capture_output=True)


def one_run(tree: Path, words: Path, base: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree), "STAGEFLOW_HOME": str(base / "stageflow"),
           "DAGSTER_HOME": str(base / "dagster")}
    env.pop("STAGEFLOW_LEXICON", None)
    command = [str(PYTHON), "-c", "from stageflow_assets.cli import run; run()", "vocab", str(words), "--deck", "Bench",
               "--native", "es", "--out", str(base / "out")]
    started = time.perf_counter()
    proc = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{tree}: exit {proc.returncode}\n{proc.stderr[-3000:]}")
    stages = {}
    for manifest in (base / "stageflow" / "vocabulary").glob("*/*/manifest.json"):
        data = json.loads(manifest.read_text())
        stages[data["stage"]] = data["duration_s"]
    steps = step_walls(base / "dagster", tree)
    return {"wall": wall, "stages": stages, "steps": steps}


def step_walls(dagster_home: Path, tree: Path) -> dict[str, float]:
    """Each step's wall (start to end) from the run's step stats, read by the tree's own Python."""
    script = ("import json, dagster as dg\n"
              "with dg.DagsterInstance.get() as i:\n"
              "    out = {}\n"
              "    for r in i.get_run_records():\n"
              "        for s in i.get_run_step_stats(r.dagster_run.run_id):\n"
              "            if s.start_time and s.end_time: out[s.step_key] = s.end_time - s.start_time\n"
              "    print(json.dumps(out))\n")
    proc = subprocess.run([str(PYTHON), "-c", script], env={**os.environ, "DAGSTER_HOME": str(dagster_home),
                          "PYTHONPATH": str(tree)}, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def alternatives(words: list[str], work: Path) -> list[list[str]]:
    """Per-word costs of the ways weighed to speak and check, on `words`, in this process."""
    sys.path.insert(0, str(REPO))
    from stageflow_assets.providers.audio_files import decode_audio
    from stageflow_assets.providers.tts import EspeakTTS, encode_mp3_from_wav

    encoder = ["-codec:a", "libmp3lame", "-qscale:a", "5", "-ac", "1", "-ar", "22050", "-map_metadata", "-1",
               "-fflags", "+bitexact", "-flags:a", "+bitexact", "-f", "mp3"]
    rows = []

    def timed(label: str, fn, workers: int) -> None:
        started = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(fn, range(len(words))))
        ms = (time.perf_counter() - started) / len(words) * 1000
        rows.append([label, str(workers), f"{ms:.1f}"])

    def two_processes(i: int) -> None:  # before
        wav, mp3 = work / f"a{i}.wav", work / f"a{i}.mp3"
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(wav)], input=words[i] + "\n", text=True,
                       check=True)
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(wav), *encoder, str(mp3)], check=True)

    def espeak_process_encode_here(i: int) -> None:
        wav = work / f"b{i}.wav"
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(wav)], input=words[i] + "\n", text=True,
                       check=True)
        encode_mp3_from_wav(wav, work / f"b{i}.mp3")

    timed("espeak-ng + ffmpeg process per word (before)", two_processes, 1)
    timed("espeak-ng process per word, MP3 in process", espeak_process_encode_here, 2)
    started = time.perf_counter()
    EspeakTTS(workers=2).synthesize_many([(w, work / f"c{i}.mp3") for i, w in enumerate(words)], "en")
    ms = (time.perf_counter() - started) / len(words) * 1000
    rows.append(["forking espeak-ng workers, MP3 in process (after)", "2", f"{ms:.1f}"])

    def probe(i: int) -> None:  # before
        subprocess.run(["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams",
                        str(work / f"c{i}.mp3")], capture_output=True, check=True)

    timed("check: ffprobe process per file (before)", probe, 1)
    timed("check: full decode in process (after)", lambda i: decode_audio(work / f"c{i}.mp3", "mp3"), 1)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", required=True, help="git ref of the code before (e.g. a376a35)")
    parser.add_argument("--after", default=".", help="git ref of the code after; '.' = this checkout (default)")
    parser.add_argument("--words", type=int, default=1000)
    parser.add_argument("--pairs", type=int, default=1)
    parser.add_argument("--no-alternatives", dest="alternatives", action="store_false")
    args = parser.parse_args()

    start_load = load()
    with tempfile.TemporaryDirectory(prefix="vocab-bench-") as tmp:
        base = Path(tmp)
        words = noun_list(args.words, base / "nouns.txt")
        sides = {"before": tree_for(args.before), "after": tree_for(args.after)}
        results: dict[str, list[dict]] = {"before": [], "after": []}
        for pair in range(args.pairs):
            order = ["before", "after"] if pair % 2 == 0 else ["after", "before"]
            for side in order:
                loads = load()
                result = one_run(sides[side], words, base / f"{side}{pair}")
                result["load"] = loads
                results[side].append(result)
                print(f"{side:6} pair {pair + 1}: {result['wall']:.1f} s (load at start {loads})", file=sys.stderr,
                      flush=True)
        alt = []
        if args.alternatives:
            (base / "alt").mkdir()
            alt = alternatives(words.read_text().split()[:ALTERNATIVE_WORDS], base / "alt")

    def med(side: str, pick) -> float | None:
        values = [v for v in (pick(r) for r in results[side]) if v is not None]
        return statistics.median(values) if values else None

    rows = [["whole command (wall)", fmt(med("before", lambda r: r["wall"])), fmt(med("after", lambda r: r["wall"]))]]
    for stage in STAGES:
        rows.append([f"stage {stage} (duration_s)", fmt(med("before", lambda r: r["stages"].get(stage))),
                     fmt(med("after", lambda r: r["stages"].get(stage)))])
    steps = sorted({k for side in results.values() for r in side for k in r["steps"]})
    for step in steps:
        rows.append([f"step {step}", fmt(med("before", lambda r: r["steps"].get(step))),
                     fmt(med("after", lambda r: r["steps"].get(step)))])
    for row in rows:
        b, a = (float(x) if x != "-" else None for x in row[1:3])
        row.append(f"{b / a:.1f}x" if a and b else "-")
    print("vocab deck, before vs after (bench/vocab_deck.py)")
    print(f"  date          {datetime.now(timezone.utc).isoformat(timespec='seconds')}")
    print(f"  cpu           {os.cpu_count()} cores; load average {start_load} at start, {load()} at end "
          "(1/5/15 min; >2 on 2 cores means other work ran too)")
    print(f"  before        {args.before} ({sides['before']})")
    print(f"  after         {args.after} ({sides['after']})")
    print(f"  list          {args.words} WordNet nouns, --native es, {args.pairs} pair(s); load at each start: "
          + ", ".join(f"{s} {r['load'].split()[0]}" for s in results for r in results[s]))
    table("Seconds (medians over pairs)", ["", "before", "after", "before/after"], rows)
    if alt:
        table(f"Ways weighed, the first {ALTERNATIVE_WORDS} words (ms per word, wall; load now {load()})",
              ["", "threads", "ms/word"], alt)


if __name__ == "__main__":
    try:
        main()
    finally:
        remove_trees()
