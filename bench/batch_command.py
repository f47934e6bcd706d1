"""Several videos on one machine: one `stageflow subtitles` per video against one command given
them all, with the plain script beside them.

    .venv/bin/python bench/batch_command.py                 # 5 x 60 s videos, 2 rounds (~5 min)
    .venv/bin/python bench/batch_command.py --videos 3 --seconds 30 --rounds 1

Each round runs, on fresh homes and in this order: (a) the plain pipeline, one process, the
model loaded once, the videos one after another; (b) `stageflow subtitles VIDEO` once per video,
one after the other (SQLite, the CLI executing its runs); (c) `stageflow subtitles V1 V2 ...`,
one command. (b) and (c) do the same runs; (c) pays Dagster's start-up once. Prints tables.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from celery_throughput import make_videos, plain  # noqa: E402
from subtitles_overhead import LANGUAGES, STAGEFLOW, child_env, init_dagster_template, launch, table  # noqa: E402


def stageflow(videos: list[Path], round_dir: Path, template: Path, one_command: bool) -> float:
    home = round_dir / ("one" if one_command else "each")
    shutil.copytree(template, home / "dagster")
    env = child_env(STAGEFLOW_HOME=str(home / "stageflow"), DAGSTER_HOME=str(home / "dagster"))
    langs = [a for lang in LANGUAGES for a in ("--lang", lang)]
    commands = [[str(v) for v in videos]] if one_command else [[str(v)] for v in videos]
    t0 = time.perf_counter()
    for n, given in enumerate(commands):
        launch([str(STAGEFLOW), "subtitles", *given, *langs, "--out", str(home / "out")], env, home / f"cli{n}.log")
    return time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="stageflow-batch-command-"))
    videos = make_videos(work, args.videos, args.seconds)
    template = work / "dagster-template"
    init_dagster_template(template)
    times: dict[str, list[float]] = {"a": [], "b": [], "c": []}
    for r in range(args.rounds):
        round_dir = work / f"round{r}"
        round_dir.mkdir()
        print(f"round {r + 1}/{args.rounds}: (a) plain ...", file=sys.stderr)
        times["a"].append(plain(videos, round_dir / "plain")[0])
        print("  (b) a command per video ...", file=sys.stderr)
        times["b"].append(stageflow(videos, round_dir, template, one_command=False))
        print("  (c) one command ...", file=sys.stderr)
        times["c"].append(stageflow(videos, round_dir, template, one_command=True))
    a, b, c = (statistics.median(times[k]) for k in "abc")
    n = len(videos)
    table(f"{n} x {args.seconds:g} s videos into {'+'.join(LANGUAGES)}, one machine (medians of {args.rounds}; seconds)",
          ["side", "wall", "per video", "/ (a)", "rounds"],
          [["(a) plain, one process, one model", f"{a:.1f}", f"{a / n:.2f}", "1.000",
            ", ".join(f"{t:.1f}" for t in times["a"])],
           ["(b) stageflow subtitles VIDEO, once per video", f"{b:.1f}", f"{b / n:.2f}", f"{b / a:.3f}",
            ", ".join(f"{t:.1f}" for t in times["b"])],
           ["(c) stageflow subtitles V1 V2 ..., one command", f"{c:.1f}", f"{c / n:.2f}", f"{c / a:.3f}",
            ", ".join(f"{t:.1f}" for t in times["c"])]])
    print(f"  (c) saves {(b - c) / n:.2f} s a video against (b): the start-up a command pays once")
    return 0


if __name__ == "__main__":
    sys.exit(main())
