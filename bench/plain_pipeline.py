"""The subtitle pipeline without any orchestration: the B side of bench/subtitles_overhead.py.

    python bench/plain_pipeline.py VIDEO OUT_DIR --lang es --lang ca

It makes the tool calls `stageflow subtitles` makes, with the same arguments and the same
model (copied from stageflow_assets/providers/*.py; keep them in step): ffprobe of the
video, the ffmpeg demux to 16 kHz mono WAV, ffprobe of that WAV (the truncation check),
faster-whisper base int8 on CPU (beam 5, word timestamps, language detection; batched over
VAD chunks, 8 at a time, or sequential, as `STAGEFLOW_ASR_BATCH` tells stageflow; the model
built in a background thread from the start, as stageflow's CLI does),
`apertium eng-spa` / `eng-cat` over one paragraph per cue and pysubs2 SRT + WebVTT (the
languages side by side in threads, up to one per usable CPU), and the same ffmpeg mux into MKV.
`--also` runs more videos after the first with the same model (the batch bench's plain side).

Cue cutting and line breaking are a plain version of stageflow's (its first cut: <= 70
characters, <= 7 s, cut at pauses and sentence ends). stageflow's segmenter, line breaker
and QC are milliseconds of pure Python and Apertium's cost is per call (start-up and
dictionaries), so the cut barely moves the comparison; the benchmark prints both cue counts.

What it leaves out on purpose, so that it counts as stageflow's cost: Dagster, the stage
runtime (hashing, manifests, reuse checks), the look-ups stageflow makes for fingerprints,
pairs and container tags (`ffmpeg -version`, cached per binary; Apertium's modes directory;
pycountry; here the pairs and tags are written down), the styled ASS file, QC and glossary
work of the subtitle stages, and copying deliverables (written in place here).

It must not import dagster or the stageflow asset code (it checks that before it exits):
only `whisper_models.ensure_bundled_model` and `settings.model_cache_dir`, which are plain.
On stdout, one JSON object: wall time, per-phase times, the decoding, and whether Whisper
fell back to sampled decoding (which makes its time random; batched decoding never does).
"""

from __future__ import annotations

import time

T_START = time.perf_counter()

import argparse  # noqa: E402 - after the clock starts: imports are part of the cost
import json  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import textwrap  # noqa: E402
import threading  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402

import pysubs2  # noqa: E402

from stageflow_assets.core.settings import model_cache_dir  # noqa: E402
from stageflow_assets.providers.whisper_models import ensure_bundled_model  # noqa: E402

# what stageflow derives at run time (Apertium's modes, pycountry), fixed for the languages benchmarked
APERTIUM_MODES = {("en", "es"): "eng-spa", ("en", "ca"): "eng-cat"}
CONTAINER_TAGS = {"es": ("spa", "Spanish"), "ca": ("cat", "Catalan")}

# stageflow's first cue rules (subtitles/cues.py before the segmenter)
MAX_CUE_CHARS = 70
MAX_CUE_SECONDS = 7.0
MIN_TAIL_CHARS = 16
PAUSE_SECONDS = 1.5
LINE_WIDTH = 42
SENTENCE_END = (".", "?", "!", "…")
# providers/asr.py and asr_whisperx.asr_batch_from_env: > 1 batched over VAD chunks, else sequential
ASR_BATCH = int(os.environ.get("STAGEFLOW_ASR_BATCH", "").strip() or 8)
# providers/translate.py
_MARKED = re.compile(r"(?<![\w])[*@#](?=\w)")

phases: dict[str, float] = {}


class Phase:
    def __init__(self, name: str) -> None:
        self.name = name

    def __enter__(self) -> None:
        self.t0 = time.perf_counter()

    def __exit__(self, *exc) -> None:
        phases[self.name] = phases.get(self.name, 0.0) + time.perf_counter() - self.t0


def tool(args: list[str], input_text: str | None = None) -> str:
    """Like providers/process.run_tool: own session, captured text output, fail on non-zero."""
    proc = subprocess.run(
        args, input=input_text, capture_output=True, text=True, encoding="utf-8",
        errors="replace", start_new_session=True,
        stdin=None if input_text is not None else subprocess.DEVNULL,
    )
    if proc.returncode != 0:
        sys.exit(f"{args[0]} failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}")
    return proc.stdout


def probe(path: Path) -> dict:
    return json.loads(tool(["ffprobe", "-v", "error", "-print_format", "json", "-show_format",
                            "-show_streams", str(path)]) or "{}")


def _text(words: list[dict]) -> str:
    return "".join(w["word"] for w in words).strip()


def cues_from_words(words: list[dict]) -> list[tuple[float, float, str]]:
    """Cues over the whole word stream: full at 70 characters or 7 s, cut at pauses and sentence ends."""
    chunks: list[list[dict]] = [[]]
    for word in words:
        current = chunks[-1]
        full = current and (
            len(_text(current + [word])) > MAX_CUE_CHARS
            or word["end"] - current[0]["start"] > MAX_CUE_SECONDS
            or word["start"] - current[-1]["end"] > PAUSE_SECONDS
        )
        if full:
            chunks.append([word])
            continue
        current.append(word)
        if word["word"].strip().endswith(SENTENCE_END) and len(_text(current)) >= MIN_TAIL_CHARS:
            chunks.append([])
    chunks = [c for c in chunks if c]
    if len(chunks) > 1 and len(_text(chunks[-1])) < MIN_TAIL_CHARS:
        merged = chunks[-2] + chunks[-1]
        if len(_text(merged)) <= MAX_CUE_CHARS + MIN_TAIL_CHARS:
            chunks[-2:] = [merged]
    spans = [(c[0]["start"], c[-1]["end"], _text(c)) for c in chunks]
    return [s for s in spans if s[2]]


def wrap(text: str) -> list[str]:
    lines = textwrap.wrap(text, LINE_WIDTH) or [""]
    if len(lines) != 2:
        return lines
    balanced = textwrap.wrap(text, max(len(text) // 2 + 1, max(len(w) for w in text.split())))
    return balanced if len(balanced) == 2 and all(len(l) <= LINE_WIDTH for l in balanced) else lines


def load_model(into: dict) -> None:
    try:
        t0 = time.perf_counter()
        from faster_whisper import WhisperModel
        t1 = time.perf_counter()
        into["model"] = WhisperModel(str(ensure_bundled_model(model_cache_dir())), device="cpu",
                                     compute_type="int8", cpu_threads=0, local_files_only=True)
        if ASR_BATCH > 1:  # as WhisperASR.preload: the VAD model batched decoding uses
            from faster_whisper.vad import get_vad_model

            get_vad_model()
        into["background"] = {"asr_import": t1 - t0, "model_load": time.perf_counter() - t1}
    except Exception as exc:  # noqa: BLE001 - re-raised in the main thread
        into["error"] = exc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--lang", dest="languages", action="append", required=True)
    parser.add_argument("--also", dest="more", action="append", type=Path, default=[],
                        help="more videos after the first, one after another with the same model "
                             "(bench/celery_throughput.py's plain side)")
    args = parser.parse_args()

    # as stageflow does (providers/asr.py): the model is built off the main thread, which
    # makes CTranslate2 decode faster here, and while ffprobe and ffmpeg run
    loaded: dict = {}
    loader = threading.Thread(target=load_model, args=(loaded,), name="whisper-load")
    loader.start()
    reports = [subtitle(video, args.out, args.languages, loaded, loader) for video in [args.video, *args.more]]

    # the whole point of B: had anything pulled Dagster in, this would not be the limit
    leaked = sorted(m for m in sys.modules if m == "dagster" or m.startswith("stageflow_assets.subtitles"))
    if leaked:
        sys.exit(f"plain pipeline imported orchestration code: {leaked}")
    report = dict(reports[0])
    report["wall_s"] = round(time.perf_counter() - T_START, 4)
    # overlapped with probe and demux: not on the critical path, not in `phases`
    report["background"] = {k: round(v, 4) for k, v in loaded["background"].items()}
    if args.more:
        report["videos"] = reports
    print(json.dumps(report))
    return 0


def subtitle(video: Path, out: Path, languages: list[str], loaded: dict, loader: threading.Thread) -> dict:
    """One video, as `stageflow subtitles` handles it; the phases of this video only."""
    phases.clear()
    work = out / "work" / video.stem
    work.mkdir(parents=True, exist_ok=True)
    name = video.stem
    t_video = time.perf_counter()
    with Phase("probe"):
        info = probe(video)
        audio = [s for s in info.get("streams", []) if s.get("codec_type") == "audio"]
        if not audio:
            sys.exit(f"{video.name}: no audio stream")
        expected = float(audio[0].get("duration") or info["format"].get("duration") or 0.0)
        start = float(audio[0].get("start_time") or 0.0)

    wav = work / "audio.wav"
    with Phase("demux"):
        tool(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(video),
              "-map", "0:a:0", "-vn", "-af", "aresample=async=1:first_pts=0",
              "-ac", "1", "-ar", "16000", "-c:a", "pcm_s16le", "-f", "wav", str(wav)])
        got = float(probe(wav)["format"].get("duration") or 0.0)
        if expected and got + 1.0 < expected + start:
            sys.exit(f"only {got:.1f}s of {expected:.1f}s audio decoded")

    with Phase("model_wait"):
        loader.join()
    if "error" in loaded:
        raise loaded["error"]
    model = loaded["model"]
    with Phase("asr"):
        if ASR_BATCH > 1:
            from faster_whisper import BatchedInferencePipeline

            segments, asr_info = BatchedInferencePipeline(model).transcribe(
                str(wav), language=None, task="transcribe", hotwords=None, beam_size=5,
                word_timestamps=True, batch_size=ASR_BATCH, vad_filter=True, without_timestamps=True)
        else:
            segments, asr_info = model.transcribe(str(wav), language=None, task="transcribe", hotwords=None,
                                                  beam_size=5, word_timestamps=True, vad_filter=False)
        segments = list(segments)
    fell_back = any(s.temperature > 0 for s in segments)
    heard = asr_info.language
    transcript = [
        {"start": round(s.start, 3), "end": round(s.end, 3), "text": s.text.strip(),
         "words": [{"start": round(w.start, 3), "end": round(w.end, 3), "word": w.word,
                    "probability": round(w.probability, 4)} for w in (s.words or [])]}
        for s in segments
    ]
    (work / "transcript.json").write_text(json.dumps(
        {"language": heard, "language_probability": round(asr_info.language_probability, 4),
         "duration": round(asr_info.duration, 3), "segments": transcript}, indent=1),
        encoding="utf-8")

    if any(not s["words"] for s in transcript):
        cues = [(s["start"], s["end"], s["text"]) for s in transcript if s["text"]]
    else:
        cues = cues_from_words([w for s in transcript for w in s["words"]])

    def one_language(lang: str) -> tuple[Path, float]:
        t0 = time.perf_counter()
        flat = [" ".join(text.split()) for _, _, text in cues]
        if lang == heard:
            texts = flat
        else:
            # one cue per paragraph, as providers/translate.py sends them (a blank line is a
            # break Apertium never moves words across)
            raw = tool(["apertium", APERTIUM_MODES[(heard, lang)]], input_text="\n\n".join(flat) + "\n")
            lines = [part.strip() for part in re.split(r"\n[ \t]*\n", raw.strip("\n"))]
            if len(lines) != len(flat):
                sys.exit(f"apertium returned {len(lines)} lines for {len(flat)} cues")
            texts = [" ".join(_MARKED.sub("", line).split()) for line in lines]
        (work / f"translation.{lang}.json").write_text(json.dumps(
            [{"start": s, "end": e, "text": t, "source": src}
             for (s, e, src), t in zip(cues, texts)], indent=1), encoding="utf-8")
        subs = pysubs2.SSAFile()
        for (cue_start, cue_end, _), text in zip(cues, texts):
            subs.append(pysubs2.SSAEvent(start=round(cue_start * 1000),
                                         end=round(cue_end * 1000), text=r"\N".join(wrap(text))))
        for fmt in ("srt", "vtt"):
            subs.save(str(out / f"{name}.{lang}.{fmt}"), format_=fmt)
        return out / f"{name}.{lang}.srt", time.perf_counter() - t0

    # the languages side by side in threads: the plain limit (Apertium fills both cores either way)
    with Phase("languages"):
        workers = max(1, min(len(languages), len(os.sched_getaffinity(0))))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            done = list(pool.map(one_language, languages))
    srts = [(lang, path) for lang, (path, _) in zip(languages, done)]
    per_language = {lang: round(took, 4) for lang, (_, took) in zip(languages, done)}

    with Phase("mux"):
        cmd = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(video)]
        for _, path in srts:
            cmd += ["-i", str(path)]
        cmd += ["-map", "0:v?", "-map", "0:a?"]
        for n in range(len(srts)):
            cmd += ["-map", f"{n + 1}:0"]
        cmd += ["-c", "copy", "-c:s", "srt"]
        for n, (lang, _) in enumerate(srts):
            tag, title = CONTAINER_TAGS[lang]
            cmd += [f"-metadata:s:s:{n}", f"language={tag}", f"-metadata:s:s:{n}", f"title={title}"]
        cmd += ["-f", "matroska", str(out / f"{name}.mkv")]
        tool(cmd)

    return {
        "video_s": round(time.perf_counter() - t_video, 4),
        "phases": {k: round(v, 4) for k, v in phases.items()},
        # each language's translation + subtitles, side by side within the `languages` phase
        "per_language": per_language,
        "language": heard,
        "asr_fallback": fell_back,
        "asr_decoding": f"batched ({ASR_BATCH})" if ASR_BATCH > 1 else "sequential",
        "audio_s": round(asr_info.duration, 3),
    }


if __name__ == "__main__":
    sys.exit(main())
