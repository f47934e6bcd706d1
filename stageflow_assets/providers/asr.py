"""Speech recognition with faster-whisper on CPU (offline default: bundled Whisper base)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import BaseModel, Field, PrivateAttr

from stageflow_assets.core.errors import ProviderError
from stageflow_assets.providers import whisper_models


class Word(BaseModel):
    start: float
    end: float
    word: str
    probability: float = 1.0


class Segment(BaseModel):
    start: float
    end: float
    text: str
    words: list[Word] = Field(default_factory=list)


class Transcript(BaseModel):
    language: str
    language_probability: float
    duration: float
    segments: list[Segment]

    @property
    def text(self) -> str:
        return " ".join(s.text.strip() for s in self.segments).strip()


_MODELS: dict[tuple, Any] = {}
_MODELS_LOCK = threading.Lock()


def _load(path: str, device: str, compute_type: str, cpu_threads: int, local_only: bool):
    """Loaded models are kept per process: a CLI or worker running many jobs loads once."""
    key = (path, device, compute_type, cpu_threads)
    with _MODELS_LOCK:
        if key not in _MODELS:
            _MODELS[key] = _construct(path, device, compute_type, cpu_threads, local_only)
        return _MODELS[key]


def _construct(path: str, device: str, compute_type: str, cpu_threads: int, local_only: bool):
    """Build the model in a thread of its own, never in the process's main thread.

    CTranslate2 starts its compute threads from the thread that builds the model. Built from
    the main thread, decoding on the 2-core reference machine took 7.2-7.6 s for 60 s of
    speech; built from any other thread, 4.3-4.9 s with the same transcript (CPU time
    ~10.4 s against ~9.5 s: the first way loses time to contention). A Dagster run worker
    builds it from its main thread, so every caller goes through here.
    """
    from faster_whisper import WhisperModel  # heavy import, only when ASR really runs

    built: dict[str, Any] = {}

    def build() -> None:
        try:
            built["model"] = WhisperModel(
                path, device=device, compute_type=compute_type, cpu_threads=cpu_threads,
                local_files_only=local_only,
            )
        except Exception as exc:  # noqa: BLE001 - any load failure means the same to a user
            built["error"] = exc

    thread = threading.Thread(target=build, name="whisper-load")
    thread.start()
    thread.join()
    if "error" in built:
        exc = built["error"]
        raise ProviderError(
            f"cannot load Whisper model {path!r} ({exc}); give a local model directory or the bundled 'base'",
            model=path,
        ) from exc
    return built["model"]


class WhisperASR(dg.ConfigurableResource):
    """faster-whisper. `model` is `base` (the bundled offline model), a model name or a path."""

    model: str = whisper_models.BUNDLED_NAME
    device: str = "cpu"
    compute_type: str = "int8"
    cpu_threads: int = 0
    beam_size: int = 5
    vad_filter: bool = False
    local_files_only: bool = True
    model_cache: str | None = None
    _resolved: str | None = PrivateAttr(default=None)

    def model_path(self) -> str:
        if self._resolved is None:
            self._resolved = whisper_models.resolve_model(self.model, self.model_cache)
        return self._resolved

    def parameters(self) -> dict[str, Any]:
        """Everything that changes the transcript: part of the stage fingerprint."""
        return {
            "backend": "faster-whisper",
            "model": self.model,
            "device": self.device,
            "compute_type": self.compute_type,
            "beam_size": self.beam_size,
            "vad_filter": self.vad_filter,
            "word_timestamps": True,
        }

    def versions(self) -> dict[str, str]:
        from importlib.metadata import version

        return {"faster-whisper": version("faster-whisper"), "ctranslate2": version("ctranslate2")}

    def preload(self) -> threading.Thread:
        """Start loading the model in a background thread; `transcribe` then waits for it.

        The CLI starts this while Dagster plans the first run and ffmpeg probes and demuxes:
        the main thread mostly waits on those processes, so the load (~0.5 s: importing
        faster-whisper, reading the model) is off the critical path. A failure here is
        left to `transcribe`, which loads again and reports it as a ProviderError.
        """
        def load() -> None:
            try:
                _load(self.model_path(), self.device, self.compute_type, self.cpu_threads, self.local_files_only)
            except Exception:  # noqa: BLE001 - transcribe() reports it
                pass

        thread = threading.Thread(target=load, name="whisper-preload", daemon=True)
        thread.start()
        return thread

    def transcribe(
        self, wav: Path, language: str | None = None, task: str = "transcribe", hotwords: str | None = None,
    ) -> Transcript:
        """`task="translate"` is Whisper's own speech translation into English; `hotwords`
        biases decoding towards given terms (a glossary's target terms)."""
        model = _load(
            self.model_path(), self.device, self.compute_type, self.cpu_threads,
            self.local_files_only,
        )
        try:
            segments, info = model.transcribe(
                str(wav),
                language=language,
                task=task,
                hotwords=hotwords or None,
                beam_size=self.beam_size,
                word_timestamps=True,
                vad_filter=self.vad_filter,
            )
            result = [
                Segment(
                    start=round(s.start, 3),
                    end=round(s.end, 3),
                    text=s.text.strip(),
                    words=[
                        Word(start=round(w.start, 3), end=round(w.end, 3), word=w.word,
                             probability=round(w.probability, 4))
                        for w in (s.words or [])
                    ],
                )
                for s in segments
            ]
        except (RuntimeError, ValueError) as exc:
            raise ProviderError(f"Whisper failed on {wav.name}: {exc}", audio=str(wav)) from exc
        return Transcript(
            language=info.language,
            language_probability=round(info.language_probability, 4),
            duration=round(info.duration, 3),
            segments=result,
        )
