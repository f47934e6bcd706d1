"""Subtitle quality on real and generated speech: WER per ASR backend/model, QC violations per language.

    .venv/bin/python bench/quality.py            # LibriVox clips from ../shared/data + espeak-ng media

WER is jiwer's, after lower-casing and removing punctuation, against each clip's reference.
The QC counts come from the same code the `subtitles` asset runs: cues cut from the word
timings (`segmenter.build_cues`), translated with Apertium (or, into English from a language
Apertium lacks, Whisper's translate task with its own cues), lines broken per language, then
`qc.violations` (25 fps); "skip" marks a pair no offline backend serves.
"""

from __future__ import annotations

import importlib.util
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jiwer

from stageflow_assets.demo import speech_wav
from stageflow_assets.providers.asr import WhisperASR
from stageflow_assets.providers.translate import ApertiumTranslator
from stageflow_assets.subtitles import qc
from stageflow_assets.subtitles.linebreak import break_lines
from stageflow_assets.subtitles.rules import SubtitleRules
from stageflow_assets.subtitles.segmenter import build_cues

LIBRIVOX = Path(__file__).resolve().parents[2] / "shared" / "data" / "librivox"
NORMALISE = jiwer.Compose([jiwer.ToLowerCase(), jiwer.RemovePunctuation(), jiwer.RemoveMultipleSpaces(),
                           jiwer.Strip(), jiwer.ReduceToListOfListOfWords()])
GENERATED = {
    "espeak-en": ("en-us", "Welcome to the stageflow demo. This short video was made by a machine. "
                           "Every stage of the pipeline is a Dagster asset, and you can follow it in the user interface."),
    "espeak-fr": ("fr", "Bonjour à tous. Aujourd'hui nous parlons de la maison et du jardin, "
                        "et de la cuisine que nous préparons le soir."),
}


def backends() -> dict[str, object]:
    found = {"faster-whisper base int8 beam5 batched (default)": WhisperASR(),
             "faster-whisper base int8 beam5 sequential": WhisperASR(batch_size=1),
             "faster-whisper base int8 beam1 batched": WhisperASR(beam_size=1)}
    if importlib.util.find_spec("whisperx") is not None:
        from stageflow_assets.providers.asr_whisperx import WhisperXASR

        found["whisperx base int8 (batched)"] = WhisperXASR()
    return found


def wer_table(clips: list[tuple[Path, str]]) -> None:
    print("\n## WER per ASR backend (LibriVox, real speech)\n")
    print("| backend | " + " | ".join(p.stem[-4:] for p, _ in clips) + " | all clips | seconds |")
    print("|---|" + "---:|" * (len(clips) + 2))
    for name, asr in backends().items():
        asr.transcribe(clips[0][0])  # load the model outside the timing
        refs, hyps, cells = [], [], []
        start = time.perf_counter()
        for wav, ref in clips:
            hyp = asr.transcribe(wav).text
            refs.append(ref)
            hyps.append(hyp)
            cells.append(f"{jiwer.wer(ref, hyp, reference_transform=NORMALISE, hypothesis_transform=NORMALISE):.3f}")
        elapsed = time.perf_counter() - start
        total = jiwer.wer(refs, hyps, reference_transform=NORMALISE, hypothesis_transform=NORMALISE)
        print(f"| {name} | " + " | ".join(cells) + f" | {total:.3f} | {elapsed:.1f} |")


def qc_table(media: dict[str, Path]) -> None:
    asr, apertium, rules = WhisperASR(), ApertiumTranslator(), SubtitleRules()
    rule_names = qc.ERROR_RULES + qc.WARN_RULES
    print("\n## QC violations per language (cues by the subtitle rules, Apertium translation)\n")
    print("| media | lang | cues | " + " | ".join(rule_names) + " |")
    print("|---|---|---:|" + "---:|" * len(rule_names))
    for name, wav in media.items():
        heard = asr.transcribe(wav)
        words = [w for s in heard.segments for w in s.words]
        cues = build_cues(words, heard.language, rules, 25.0)
        for lang in ("en", "es", "ca"):
            lang_cues = cues
            if lang == heard.language:
                texts, unknown = [c.text for c in cues], []
            elif apertium.mode_for(heard.language, lang):
                texts, unknown = apertium.translate([c.text for c in cues], heard.language, lang)
            elif lang == "en":  # Whisper's translate task, with its own cues, as the pipeline does
                english = asr.transcribe(wav, language=heard.language, task="translate")
                lang_cues = build_cues([w for s in english.segments for w in s.words], "en", rules, 25.0)
                texts, unknown = [c.text for c in lang_cues], []
            else:
                print(f"| {name} ({heard.language}) | {lang} | – | " + " | ".join("skip" for _ in rule_names) + " |")
                continue
            lined = [qc.QcCue(c.index, c.start, c.end, break_lines(t, lang, rules.line_chars(lang)))
                     for c, t in zip(lang_cues, texts)]
            counts = qc.counts(qc.violations(lined, lang, rules, 25.0, unknown_words=unknown))
            print(f"| {name} ({heard.language}) | {lang} | {len(lang_cues)} | " + " | ".join(str(counts[r]) for r in rule_names) + " |")


def main() -> int:
    print(f"machine: {platform.processor() or platform.machine()}, python {platform.python_version()}")
    clips = sorted(LIBRIVOX.glob("*.wav")) if LIBRIVOX.is_dir() else []
    with tempfile.TemporaryDirectory() as tmp:
        media: dict[str, Path] = {}
        if clips:
            listing = Path(tmp) / "clips.txt"
            listing.write_text("".join(f"file '{c}'\n" for c in clips))
            joined = Path(tmp) / "librivox.wav"
            subprocess.run(["ffmpeg", "-v", "error", "-f", "concat", "-safe", "0", "-i", str(listing),
                            "-c", "copy", str(joined)], check=True)
            media["librivox (15 s)"] = joined
            wer_table([(c, c.with_suffix(".txt").read_text().strip()) for c in clips])
        else:
            print("../shared/data/librivox is absent: WER table skipped")
        for name, (voice, text) in GENERATED.items():
            media[name] = speech_wav(text, Path(tmp) / f"{name}.wav", voice)
        qc_table(media)
    return 0


if __name__ == "__main__":
    sys.exit(main())
