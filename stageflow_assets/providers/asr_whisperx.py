"""Production speech recognition with whisperX (optional extra: `make whisperx`).

whisperX = batched faster-whisper over pyannote VAD chunks (its VAD model ships in the wheel),
then wav2vec2 forced alignment for word times, then optional pyannote speaker diarization.

Offline rules, as everywhere in stageflow:
- the Whisper model is the bundled `base` (or a model name/local dir already on disk);
- wav2vec2 alignment models are only *looked up* locally (`align_model_dir`, else the torch hub /
  Hugging Face caches), never downloaded. Where none exists for the language, the word times come
  from Whisper itself (faster-whisper `word_timestamps=True` on the same audio, same model), and
  the transcript records `alignment: "whisper-word-timestamps (no alignment model for <lang>)"`.
  A missing alignment model never fails the job.
- `task="translate"` (English from other speech) decodes with whisperX's own Whisper model and
  takes the word times from Whisper too: wav2vec2 aligns text in the spoken language, and
  whisperX itself skips alignment when translating. `hotwords` go into the decoder's prompt on
  both paths (whisperX's batched pipeline reads them from its options, set for the one call).

whisperx and torch are imported inside the methods only: the project and its tests import
without the extra. The small helpers at the bottom pick the `asr` resource and the `transcript`
asset's concurrency pool from the environment at definitions time.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field, PrivateAttr

from stageflow_assets.core.errors import ProviderError, ToolRefusedError
from stageflow_assets.providers import whisper_models
from stageflow_assets.providers.asr import (ASRBackend, OnProgress, Segment, Transcript, Word, WhisperASR,
                                            check_task)

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
ALIGNED = "wav2vec2"
# languages written without spaces: whisperX's aligner splits them per character
_NO_SPACES = {"ja", "zh"}


class SpeakerSegment(Segment):
    speaker: str | None = None


class WhisperXTranscript(Transcript):
    """The same `Transcript` (the pipeline reads it as one) plus how its word times were made."""

    segments: list[SpeakerSegment]
    backend: str = "whisperx"
    alignment: str = ALIGNED
    align_model: str | None = None
    diarization: str = "off"


def whisperx_missing_reason() -> str | None:
    """None when the extra is importable, else why not (for skips and errors)."""
    try:
        import whisperx  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - ImportError or a broken torch install alike
        return f"whisperx is not installed ({type(exc).__name__}: {exc}); run `make whisperx`"
    return None


def _import_whisperx():
    reason = whisperx_missing_reason()
    if reason:  # a retry cannot install it
        raise ToolRefusedError(reason)
    import whisperx

    return whisperx


def _split_device(device: str) -> tuple[str, int]:
    kind, _, index = device.partition(":")
    return kind, int(index) if index else 0


_LOCK = threading.RLock()  # loads and runs: whisperX's pipeline keeps per-call state (tokenizer)
_PIPELINES: dict[tuple, Any] = {}
_ALIGNERS: dict[tuple, tuple[Any, dict] | str] = {}
_DIARIZERS: dict[tuple, Any] = {}


class WhisperXASR(ASRBackend):
    """whisperX: batched Whisper + wav2vec2 word alignment (+ optional diarization).

    `model` is `base` (the bundled offline model), a model name in the local cache, or a
    CTranslate2 model directory. `align_model_dir` is where wav2vec2 alignment models are
    looked for (None: the torch hub and Hugging Face caches); `align_models` maps a language to
    a model name or local directory of your own. Diarization runs only when `hf_token` is set.
    """

    model: str = whisper_models.BUNDLED_NAME
    model_cache: str | None = None
    device: str = "cpu"
    compute_type: str = Field(default="auto", description="auto: int8 on CPU, float16 on CUDA")
    batch_size: int = 8
    beam_size: int = 5
    cpu_threads: int = 0
    vad_method: str = Field(default="pyannote", description="pyannote ships in the wheel; silero downloads")
    align_model_dir: str | None = None
    align_models: dict[str, str] = Field(default_factory=dict)
    interpolate_method: str = "nearest"
    hf_token: str | None = Field(default=None, description="enables diarization; never logged")
    diarize_model: str | None = None
    min_speakers: int | None = None
    max_speakers: int | None = None
    _resolved: str | None = PrivateAttr(default=None)

    # -- configuration --------------------------------------------------------------------
    def model_path(self) -> str:
        if self._resolved is None:
            self._resolved = whisper_models.resolve_model(self.model, self.model_cache)
        return self._resolved

    def resolved_compute_type(self) -> str:
        if self.compute_type != "auto":
            return self.compute_type
        return "int8" if _split_device(self.device)[0] == "cpu" else "float16"

    def _threads(self) -> int:
        return self.cpu_threads or os.cpu_count() or 4

    @property
    def diarize(self) -> bool:
        return bool(self.hf_token)

    def parameters(self) -> dict[str, Any]:
        """Everything that changes the transcript: part of the stage fingerprint (no token)."""
        return {
            "backend": "whisperx",
            "model": self.model,
            "device": self.device,
            "compute_type": self.resolved_compute_type(),
            "batch_size": self.batch_size,
            "beam_size": self.beam_size,
            "vad_method": self.vad_method,
            "word_timestamps": True,
            # which languages get wav2vec2 alignment here: adding a model changes transcripts
            "alignment_models": self.local_alignment_languages(),
            "interpolate_method": self.interpolate_method,
            "diarize": self.diarize,
            "diarize_model": self.diarize_model if self.diarize else None,
        }

    def versions(self) -> dict[str, str]:
        from importlib.metadata import PackageNotFoundError, version

        found = {}
        for package in ("whisperx", "torch", "torchaudio", "faster-whisper", "ctranslate2",
                        "transformers", "pyannote.audio"):
            try:
                found[package] = version(package)
            except PackageNotFoundError:
                found[package] = "not installed"
        return found

    def preload(self) -> threading.Thread:
        def load() -> None:
            try:
                self._pipeline()
            except Exception:  # noqa: BLE001 - transcribe() reports it
                pass

        thread = threading.Thread(target=load, name="whisperx-preload", daemon=True)
        thread.start()
        return thread

    # -- alignment models: looked up locally, never downloaded ------------------------------
    def _align_candidate(self, language: str) -> str | None:
        if language in self.align_models:
            return self.align_models[language]
        try:
            from whisperx.alignment import DEFAULT_ALIGN_MODELS_HF, DEFAULT_ALIGN_MODELS_TORCH
        except Exception:  # noqa: BLE001 - no extra: nothing can align
            return None
        return DEFAULT_ALIGN_MODELS_TORCH.get(language) or DEFAULT_ALIGN_MODELS_HF.get(language)

    def _align_model_local(self, name: str) -> bool:
        """True when `name` (torchaudio bundle, HF repo id or local dir) loads without network."""
        if Path(name).expanduser().is_dir():
            return True
        import torchaudio

        if name in torchaudio.pipelines.__all__:
            import torch

            bundle = getattr(torchaudio.pipelines, name)
            directory = (Path(self.align_model_dir) if self.align_model_dir
                         else Path(torch.hub.get_dir()) / "checkpoints")
            return (directory / os.path.basename(bundle._path)).is_file()
        from huggingface_hub import try_to_load_from_cache

        hit = try_to_load_from_cache(name, "config.json", cache_dir=self.align_model_dir)
        return isinstance(hit, str)

    def local_alignment_languages(self) -> list[str]:
        if whisperx_missing_reason():
            return sorted(lang for lang, name in self.align_models.items() if Path(name).is_dir())
        from whisperx.alignment import DEFAULT_ALIGN_MODELS_HF, DEFAULT_ALIGN_MODELS_TORCH

        names = {**DEFAULT_ALIGN_MODELS_TORCH, **DEFAULT_ALIGN_MODELS_HF, **self.align_models}
        return sorted(lang for lang, name in names.items() if self._align_model_local(name))

    def _aligner(self, language: str) -> tuple[Any, dict, str] | str:
        """(model, metadata, name), or the reason there is no alignment for `language`."""
        name = self._align_candidate(language)
        if name is None:
            return f"no alignment model for {language}"
        key = (language, name, self.device, self.align_model_dir)
        with _LOCK:
            if key not in _ALIGNERS:
                if not self._align_model_local(name):
                    # not cached: a model put there later is used by the next job
                    return f"no alignment model for {language}"
                else:
                    whisperx = _import_whisperx()
                    try:
                        model, meta = whisperx.load_align_model(
                            language_code=language, device=_split_device(self.device)[0],
                            model_name=name, model_dir=self.align_model_dir, model_cache_only=True,
                        )
                        _ALIGNERS[key] = (model, meta)
                    except Exception as exc:  # noqa: BLE001 - a broken model falls back too
                        log.warning("whisperx: alignment model %s for %s did not load: %s",
                                    name, language, exc)
                        _ALIGNERS[key] = f"alignment model for {language} did not load"
            found = _ALIGNERS[key]
        return found if isinstance(found, str) else (*found, name)

    @staticmethod
    def _punkt_available(language: str) -> bool:
        """whisperX's align() would try `nltk.download('punkt_tab')` without it: never here."""
        import nltk
        from whisperx.utils import PUNKT_LANGUAGES

        try:
            nltk.data.load(f"tokenizers/punkt_tab/{PUNKT_LANGUAGES.get(language, 'english')}.pickle")
        except LookupError:
            return False
        return True

    # -- models -----------------------------------------------------------------------------
    def _pipeline(self):
        kind, index = _split_device(self.device)
        key = (self.model_path(), kind, index, self.resolved_compute_type(), self._threads(),
               self.beam_size, self.batch_size, self.vad_method)
        with _LOCK:
            if key not in _PIPELINES:
                whisperx = _import_whisperx()
                try:
                    _PIPELINES[key] = whisperx.load_model(
                        self.model_path(), kind, device_index=index,
                        compute_type=self.resolved_compute_type(),
                        asr_options={"beam_size": self.beam_size},
                        vad_method=self.vad_method, local_files_only=True, threads=self._threads(),
                    )
                except Exception as exc:  # noqa: BLE001 - any load failure means the same to a user
                    raise ProviderError(
                        f"whisperx cannot load Whisper model {self.model!r} on {self.device} "
                        f"({type(exc).__name__}: {exc}); give a local model directory or 'base'",
                        model=self.model, device=self.device,
                    ) from exc
            return _PIPELINES[key]

    def _diarizer(self):
        kind, index = _split_device(self.device)
        key = (self.diarize_model, kind, index)
        with _LOCK:
            if key not in _DIARIZERS:
                from whisperx.diarize import DiarizationPipeline

                _DIARIZERS[key] = DiarizationPipeline(
                    model_name=self.diarize_model, token=self.hf_token, device=self.device,
                )
            return _DIARIZERS[key]

    # -- transcription ----------------------------------------------------------------------
    def transcribe(
        self, wav: Path, language: str | None = None, task: str = "transcribe", hotwords: str | None = None,
        on_progress: OnProgress | None = None,
    ) -> WhisperXTranscript:
        check_task(task)
        whisperx = _import_whisperx()
        try:
            audio = whisperx.load_audio(str(wav))
        except Exception as exc:  # noqa: BLE001 - ffmpeg failures (RuntimeError) and the like
            raise ProviderError(f"whisperx cannot read {wav.name}: {exc}", audio=str(wav)) from exc
        duration = round(len(audio) / SAMPLE_RATE, 3)
        hotwords = hotwords or None
        with _LOCK:
            pipeline = self._pipeline()
            try:
                if language:
                    lang, probability = language, 1.0
                else:
                    lang, probability, _ = pipeline.model.detect_language(audio)
                if task == "translate":
                    aligner = "translate: wav2vec2 aligns the spoken language, not English"
                else:
                    aligner = self._aligner(lang)
                if not isinstance(aligner, str) and not self._punkt_available(lang):
                    aligner = f"no nltk punkt_tab data for {lang}"
                if isinstance(aligner, str):
                    segments = self._whisper_words(pipeline, audio, lang, task, hotwords)
                    alignment, align_name = None, None
                else:
                    align_model, align_meta, align_name = aligner
                    result = self._batched(pipeline, audio, lang, hotwords)
                    try:
                        aligned = whisperx.align(
                            result["segments"], align_model, align_meta, audio,
                            _split_device(self.device)[0], interpolate_method=self.interpolate_method,
                            return_char_alignments=False,
                        )
                        segments, alignment = _from_aligned(aligned["segments"], lang), ALIGNED
                    except Exception as exc:  # noqa: BLE001 - never fail the job for alignment
                        log.warning("whisperx: alignment failed for %s (%s); using Whisper's "
                                    "word timestamps", wav.name, exc)
                        aligner = f"alignment failed: {type(exc).__name__}"
                        segments = self._whisper_words(pipeline, audio, lang, task, hotwords)
                        align_name = None
                if isinstance(aligner, str):
                    alignment = f"whisper-word-timestamps ({aligner})"
            except ProviderError:
                raise
            except (RuntimeError, ValueError) as exc:
                raise ProviderError(f"whisperx failed on {wav.name}: {exc}", audio=str(wav)) from exc
            diarization = "off"
            if self.diarize and segments:
                segments, diarization = self._diarize(audio, segments)
        if on_progress is not None:  # whisperX hands over its segments all at once
            on_progress(duration, duration)
        log.info("whisperx: %s (%s, %s, %d segments), alignment: %s, diarization: %s",
                 wav.name, lang, task, len(segments), alignment, diarization)
        return WhisperXTranscript(
            language=lang, language_probability=round(float(probability), 4), duration=duration,
            segments=segments, alignment=alignment, align_model=align_name,
            diarization=diarization,
        )

    def _batched(self, pipeline, audio, language: str, hotwords: str | None) -> dict:
        """whisperX's batched pipeline; it reads hotwords from its options: set for this call."""
        kept = pipeline.options
        pipeline.options = dataclasses.replace(kept, hotwords=hotwords)
        try:
            return pipeline.transcribe(audio, batch_size=self.batch_size, language=language,
                                       task="transcribe")
        finally:
            pipeline.options = kept

    def _whisper_words(self, pipeline, audio, language: str, task: str = "transcribe",
                       hotwords: str | None = None) -> list[SpeakerSegment]:
        """Whisper's own word timestamps (cross-attention DTW) with the same loaded model."""
        found, _ = pipeline.model.transcribe(
            audio, language=language, task=task, hotwords=hotwords, beam_size=self.beam_size,
            word_timestamps=True, vad_filter=True, condition_on_previous_text=False,
        )
        return [
            SpeakerSegment(
                start=round(s.start, 3), end=round(s.end, 3), text=s.text.strip(),
                words=[Word(start=round(w.start, 3), end=round(w.end, 3), word=w.word,
                            probability=round(w.probability, 4)) for w in (s.words or [])],
            )
            for s in found
        ]

    def _diarize(self, audio, segments: list[SpeakerSegment]) -> tuple[list[SpeakerSegment], str]:
        """Speakers per segment; a failure is recorded, not raised (the token never is)."""
        whisperx = _import_whisperx()
        try:
            turns = self._diarizer()(audio, min_speakers=self.min_speakers,
                                     max_speakers=self.max_speakers)
            labelled = whisperx.assign_word_speakers(
                turns, {"segments": [{"start": s.start, "end": s.end, "text": s.text,
                                      "words": [w.model_dump() for w in s.words]}
                                     for s in segments]},
            )
        except Exception as exc:  # noqa: BLE001
            reason = str(exc).replace(self.hf_token or "\0", "***")[:200]
            log.warning("whisperx: diarization failed: %s: %s", type(exc).__name__, reason)
            return segments, f"failed: {type(exc).__name__}"
        for segment, found in zip(segments, labelled["segments"]):
            segment.speaker = found.get("speaker")
        return segments, "pyannote"


def _from_aligned(aligned: list[dict], language: str) -> list[SpeakerSegment]:
    """whisperX's aligned segments as ours: every word gets a time (neighbours fill gaps)."""
    out = []
    for seg in aligned:
        start, end = float(seg["start"]), float(seg["end"])
        words = seg.get("words") or []
        times: list[tuple[float | None, float | None]] = [(w.get("start"), w.get("end")) for w in words]
        filled: list[Word] = []
        for i, word in enumerate(words):
            w_start, w_end = times[i]
            if w_start is None:
                w_start = filled[-1].end if filled else start
            if w_end is None:
                later = next((t[0] for t in times[i + 1:] if t[0] is not None), None)
                w_end = max(w_start, later if later is not None else end)
            text = word["word"] if language in _NO_SPACES else " " + word["word"].strip()
            filled.append(Word(start=round(float(w_start), 3), end=round(float(w_end), 3),
                               word=text, probability=round(float(word.get("score", 1.0) or 0.0), 4)))
        out.append(SpeakerSegment(start=round(start, 3), end=round(end, 3),
                                  text=seg["text"].strip(), words=filled))
    return out


# -- selection at definitions time -------------------------------------------------------------
BACKENDS = ("faster-whisper", "whisperx")


def asr_backend_from_env() -> str:
    """`STAGEFLOW_ASR_BACKEND`: faster-whisper (default) or whisperx."""
    backend = os.environ.get("STAGEFLOW_ASR_BACKEND", "").strip().lower() or "faster-whisper"
    if backend not in BACKENDS:
        raise ValueError(f"STAGEFLOW_ASR_BACKEND={backend!r}: choose one of {', '.join(BACKENDS)}")
    return backend


def asr_device_from_env() -> str:
    """`STAGEFLOW_ASR_DEVICE`: cpu (default), cuda or cuda:N."""
    return os.environ.get("STAGEFLOW_ASR_DEVICE", "").strip().lower() or "cpu"


def pool_for_device(device: str) -> str | None:
    """Steps on an accelerator share the `gpu` pool (limit 1 in dagster.yaml); CPU steps none."""
    return None if _split_device(device)[0] == "cpu" else "gpu"


def transcript_pool() -> str | None:
    return pool_for_device(asr_device_from_env())


def asr_batch_from_env() -> int | None:
    """`STAGEFLOW_ASR_BATCH`: chunks decoded at once (default 8); 0 or 1: faster-whisper decodes
    sequentially (whisperX always batches: 1 is one chunk at a time). None when unset."""
    raw = os.environ.get("STAGEFLOW_ASR_BATCH", "").strip()
    if not raw:
        return None
    if not raw.isdigit():
        raise ValueError(f"STAGEFLOW_ASR_BATCH={raw!r}: give a whole number (8 batched, 1 sequential)")
    return int(raw)


def asr_resource_from_env() -> ASRBackend:
    """The `asr` resource for the configured backend, device and batch size."""
    device = asr_device_from_env()
    batch = asr_batch_from_env()
    batching = {} if batch is None else {"batch_size": batch}
    if asr_backend_from_env() == "whisperx":
        token = dg.EnvVar("HF_TOKEN") if os.environ.get("HF_TOKEN") else None
        if batching:
            batching["batch_size"] = max(1, batch)
        return WhisperXASR(device=device, hf_token=token, **batching)
    threads = os.environ.get("STAGEFLOW_ASR_THREADS", "").strip()  # `stageflow worker --threads`
    cpu_threads = int(threads) if threads.isdigit() else 0
    if device == "cpu":
        return WhisperASR(cpu_threads=cpu_threads, **batching)
    return WhisperASR(device=_split_device(device)[0], compute_type="float16", cpu_threads=cpu_threads,
                      **batching)
