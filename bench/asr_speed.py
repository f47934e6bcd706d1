"""ASR speed at the same accuracy: sequential against batched decoding, side by side.

    .venv/bin/python bench/asr_speed.py                           # 60 s and 143 s talks, every clip; 3 rounds
    .venv/bin/python bench/asr_speed.py --seconds 60 --rounds 5

Both sides are the project's own resource, `providers/asr.py`'s `WhisperASR`, as the
`transcript` asset calls it: the bundled base model, int8 on the CPU, beam 5, word
timestamps, the language detected, the model built once off the main thread
(`whisper_models.load_model`) and shared. Only `batch_size` differs: 1 is the sequential
decoding stageflow used before (window after window over the whole audio), 8 the batched
default now (Silero VAD chunks of up to 30 s, silence skipped, 8 chunks through the model at
once: faster-whisper's `BatchedInferencePipeline`).

Media, from ../shared/data/librivox (real speech with reference transcripts):
* talks of at least --seconds: the clips back to back, whole, looped, each loop followed by
  --pause s of silence (as subtitles_overhead.py builds its media, but never cut inside a clip,
  so that the reference is exact). The pause keeps repeats of one sentence out of one 30 s
  window: Whisper's compression check would otherwise reject the repeats and fall back to
  sampling at higher temperatures, which makes sequential decoding slow and random. Such
  fallbacks are counted (faster-whisper's debug log) and shown: a row with any is no measure.
* every clip alone.

Each media is decoded --rounds times by each side, the order alternating (S B, B S, ...) so
that drift on the machine hits both alike, after one untimed call of each on the first clip
(model, VAD model, page cache). Reported per media: wall time (median and range), the
speed-up (median over rounds of sequential wall / batched wall), the fastest round of each side
and their ratio (other work on the machine only adds time, so the fastest round is the least
disturbed), × real time (audio / median wall), CPU time of the process (median) and its
ratio, WER with jiwer, whether the two gave the same words, word timing checks and Whisper's
fallbacks. On a machine other work loads, wall times of a 2-thread decode swing by several
times; `--threads 1` makes each side's CPU time a measure of its work that the load barely
moves (single-threaded: no thread waits for a descheduled sibling).
WER is normalised as the project's WER tests do: lower case, no punctuation, and hyphens as
spaces as in the per-clip tests ("cold-hearted" is two words of the reference); the pooled WER
over the clips is also given the e2e test's way (hyphens dropped with the punctuation).

Exit status 0 whatever the targets say.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path

import jiwer

from stageflow_assets.providers.asr import Transcript, WhisperASR

REPO = Path(__file__).resolve().parents[1]
LIBRIVOX = REPO.parent / "shared" / "data" / "librivox"

TARGET_SPEEDUP = 1.3  # issue 11: on >= 60 s of speech
TARGET_MIN_SECONDS = 60.0

# test_asr_whisperx.py / test_asr_protocol.py (per clip), and test_e2e_subtitles.py
PER_CLIP = jiwer.Compose([
    jiwer.ToLowerCase(), jiwer.SubstituteRegexes({r"-": " "}), jiwer.RemovePunctuation(),
    jiwer.RemoveMultipleSpaces(), jiwer.Strip(), jiwer.ReduceToListOfListOfWords(),
])
E2E = jiwer.Compose([
    jiwer.ToLowerCase(), jiwer.RemovePunctuation(), jiwer.RemoveMultipleSpaces(), jiwer.Strip(),
    jiwer.ReduceToListOfListOfWords(),
])
SIDES = {"sequential": 1, "batched": 8}


def wav_seconds(path: Path) -> float:
    with wave.open(str(path)) as w:
        return w.getnframes() / w.getframerate()


def clips() -> list[tuple[Path, str]]:
    found = sorted(LIBRIVOX.glob("*.wav"))
    if not found:
        sys.exit(f"no LibriVox clips in {LIBRIVOX} (../shared/data is needed)")
    return [(wav, wav.with_suffix(".txt").read_text().strip()) for wav in found]


def build_talk(seconds: float, pause: float, work: Path) -> tuple[Path, str]:
    """Whole clips looped, a pause after each loop, until at least `seconds`."""
    found = clips()
    gap = work / f"pause-{pause:g}.wav"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono",
                    "-t", f"{pause}", "-c:a", "pcm_s16le", str(gap)], check=True)
    entries, words, total = [], [], 0.0
    while total < seconds:
        for wav, reference in found:
            entries.append(wav)
            words.append(reference)
            total += wav_seconds(wav)
            if total >= seconds:
                break
        else:
            entries.append(gap)
            total += pause
    listing = work / f"talk-{seconds:g}.txt"
    listing.write_text("".join(f"file '{p}'\n" for p in entries))
    out = work / f"talk-{seconds:g}.wav"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(listing),
                    "-ac", "1", "-ar", "16000", "-c:a", "pcm_s16le", str(out)], check=True)
    return out, " ".join(words)


@dataclass
class Side:
    walls: list[float] = field(default_factory=list)
    cpus: list[float] = field(default_factory=list)
    fallbacks: int = 0
    heard: Transcript | None = None


class FallbackCounter(logging.Handler):
    """faster-whisper logs each rejected decode before retrying at a higher temperature."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "threshold is not met with temperature" in record.getMessage():
            self.count += 1


FALLBACKS = FallbackCounter()


@dataclass
class Row:
    name: str
    audio_s: float
    reference: str
    sides: dict[str, Side]

    def ratios(self) -> list[float]:
        return [s / b for s, b in zip(self.sides["sequential"].walls, self.sides["batched"].walls)]


def timings_ok(heard: Transcript) -> bool:
    words = [w for s in heard.segments for w in s.words]
    starts = [w.start for w in words]
    return bool(words) and starts == sorted(starts) and all(
        0 <= w.start <= w.end <= heard.duration + 0.5 for w in words)


def measure(name: str, wav: Path, reference: str, backends: dict[str, WhisperASR], rounds: int) -> Row:
    row = Row(name, wav_seconds(wav), reference, {side: Side() for side in backends})
    for n in range(rounds):
        order = list(backends) if n % 2 == 0 else list(reversed(backends))
        for side in order:
            FALLBACKS.count = 0
            wall, cpu = time.perf_counter(), time.process_time()
            heard = backends[side].transcribe(wav)
            row.sides[side].walls.append(time.perf_counter() - wall)
            row.sides[side].cpus.append(time.process_time() - cpu)
            row.sides[side].fallbacks += FALLBACKS.count
            row.sides[side].heard = heard
        print(f"  {name} round {n + 1}/{rounds}: " + ", ".join(
            f"{side} {row.sides[side].walls[-1]:.2f} s" for side in backends), file=sys.stderr, flush=True)
    return row


def wer(reference: str, hypothesis: str, transform=PER_CLIP) -> float:
    return jiwer.wer(reference, hypothesis, reference_transform=transform, hypothesis_transform=transform)


def table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    print("  " + "  ".join(h.rjust(w) if i else h.ljust(w) for i, (h, w) in enumerate(zip(headers, widths))))
    print("  " + "  ".join("-" * w for w in widths))
    for r in rows:
        print("  " + "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))))


def report(talks: list[Row], singles: list[Row], args, load_start) -> None:
    med = statistics.median
    print("ASR speed, sequential vs batched decoding (bench/asr_speed.py)")
    print(f"  date           {datetime.now(timezone.utc).isoformat(timespec='seconds')}")
    print(f"  cpu            {os.cpu_count()} cores visible, {len(os.sched_getaffinity(0))} usable; "
          f"{platform.processor() or platform.machine()}")
    print("  load average   " + " ".join(f"{x:.2f}" for x in load_start) + " at start, "
          + " ".join(f"{x:.2f}" for x in os.getloadavg())
          + " at end (1/5/15 min; > 0.2 means other work ran too)")
    print(f"  python         {platform.python_version()}   faster-whisper {version('faster-whisper')}   "
          f"ctranslate2 {version('ctranslate2')}   onnxruntime {version('onnxruntime')}")
    print("  model          bundled Whisper base, int8, CPU, beam 5, word timestamps, language detected; "
          f"threads: {args.threads or 'CTranslate2 default'}")
    print(f"  sides          sequential = WhisperASR(batch_size=1); batched = WhisperASR(batch_size=8), the default")
    print(f"  media          talks: LibriVox clips looped with {args.pause:g} s pauses; clips: each alone")
    print(f"  rounds         {args.rounds} per media, order alternating\n")

    rows = []
    for row in talks + singles:
        s, b = row.sides["sequential"], row.sides["batched"]
        rows.append([
            row.name, f"{row.audio_s:.1f}", str(len(row.ratios())),
            f"{med(s.walls):.2f} ({min(s.walls):.2f}-{max(s.walls):.2f})",
            f"{med(b.walls):.2f} ({min(b.walls):.2f}-{max(b.walls):.2f})",
            f"{med(row.ratios()):.2f}x", f"{min(s.walls):.2f}/{min(b.walls):.2f}",
            f"{min(s.walls) / min(b.walls):.2f}x",
            f"{row.audio_s / med(s.walls):.1f}/{row.audio_s / med(b.walls):.1f}",
            f"{med(s.cpus):.1f}/{med(b.cpus):.1f}", f"{med(s.cpus) / med(b.cpus):.2f}x",
            f"{wer(row.reference, s.heard.text):.3f}/{wer(row.reference, b.heard.text):.3f}",
            "yes" if PER_CLIP(s.heard.text) == PER_CLIP(b.heard.text) else "no",
            f"{'ok' if timings_ok(s.heard) else 'BAD'}/{'ok' if timings_ok(b.heard) else 'BAD'}",
            f"{s.fallbacks}/{b.fallbacks}",
        ])
    print("Wall time per transcription (seconds; median and range), sequential (S) vs batched (B)")
    table(["media", "audio s", "rounds", "S wall", "B wall", "speed-up", "best S/B", "best speed-up",
           "x real time S/B", "CPU s S/B", "CPU ratio",
           "WER S/B", "same words", "word times S/B", "fallbacks S/B"], rows)
    print("  speed-up: median over rounds of S wall / B wall; best: the fastest round of each side (other\n"
          "  work on the machine only ever adds time); x real time: audio / median wall;\n"
          "  CPU s: this process's CPU time (all threads), median; CPU ratio: S / B of those medians;\n"
          "  WER: hyphens as spaces (the per-clip tests);\n"
          "  word times: present, starts never going back, inside the audio; fallbacks: decodes Whisper\n"
          "  rejected and retried by sampling, all rounds (batched decoding never retries).\n")

    pool = singles or talks
    refs = [r.reference for r in pool]
    pooled = []
    for label, transform in (("hyphens as spaces (per-clip tests)", PER_CLIP), ("hyphens dropped (e2e test)", E2E)):
        pooled.append([label] + [f"{wer(refs, [r.sides[side].heard.text for r in pool], transform):.3f}"
                                 for side in SIDES])
    print(f"WER pooled over the {len(pool)} {'clips' if singles else 'talks'}")
    table(["normalisation", "sequential", "batched"], pooled)

    long_rows = [r for r in talks if r.audio_s >= TARGET_MIN_SECONDS]
    print("\nTargets")
    checks = []
    for r in long_rows:
        got = med(r.ratios())
        clean = not r.sides["sequential"].fallbacks
        best = min(r.sides["sequential"].walls) / min(r.sides["batched"].walls)
        checks.append([f"speed-up on {r.name}", f">= {TARGET_SPEEDUP}",
                       f"{got:.2f}x (best {best:.2f}x)" + ("" if clean else ", sequential fell back: no measure"),
                       ("PASS" if got >= TARGET_SPEEDUP else "MISS") if clean else "n/a"])
    for label, seq, bat in pooled:
        checks.append([f"WER pooled, {label}", "unchanged", f"{seq} -> {bat}", "PASS" if seq == bat else "MISS"])
    table(["target", "goal", "measured", ""], checks)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, nargs="*", default=[60.0, 143.0],
                        help="talk lengths, at least (default 60 143)")
    parser.add_argument("--rounds", type=int, default=3, help="transcriptions per side and media (default 3)")
    parser.add_argument("--pause", type=float, default=4.0, help="silence after each loop of the clips (s)")
    parser.add_argument("--no-clips", action="store_true", help="the talks only")
    parser.add_argument("--threads", type=int, default=0,
                        help="CTranslate2 threads (default 0: its default, as stageflow runs; 1 makes CPU "
                             "time a measure of the work that other load on the machine barely moves)")
    args = parser.parse_args()
    load_start = os.getloadavg()
    whisper_log = logging.getLogger("faster_whisper")
    whisper_log.setLevel(logging.DEBUG)
    whisper_log.addHandler(FALLBACKS)
    whisper_log.propagate = False

    backends = {side: WhisperASR(batch_size=size, cpu_threads=args.threads) for side, size in SIDES.items()}
    found = clips()
    for side, asr in backends.items():  # untimed: model, VAD model, page cache
        asr.transcribe(found[0][0])
    with tempfile.TemporaryDirectory(prefix="asr-speed-") as tmp:
        talks = []
        for seconds in args.seconds:
            wav, reference = build_talk(seconds, args.pause, Path(tmp))
            talks.append(measure(f"talk {wav_seconds(wav):.0f} s", wav, reference, backends, args.rounds))
        singles = [] if args.no_clips else [
            measure(wav.stem.rsplit("-", 1)[-1], wav, reference, backends, args.rounds) for wav, reference in found]
        report(talks, singles, args, load_start)
    return 0


if __name__ == "__main__":
    sys.exit(main())
