"""Speech recognition with faster-whisper on CPU (offline default: bundled Whisper base)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import dagster as dg
from pydantic import BaseModel, Field, PrivateAttr

from stageflow_assets.core.errors import ProviderError
from stageflow_assets.providers import whisper_models

OnProgress = Callable[[float, float], None]  # (position in the audio, its duration), seconds


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


def reported(segments: Iterable[Any], duration_s: float, on_progress: OnProgress | None) -> Iterator[Any]:
    """faster-whisper's segments as it decodes them (lazily, sequential or batched), telling
    `on_progress` each one's end: Whisper's position in the audio."""
    if on_progress is None:
        yield from segments
        return
    on_progress(0.0, duration_s)
    for segment in segments:
        on_progress(min(segment.end, duration_s), duration_s)
        yield segment


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

        A failure here is left to `transcribe`, which loads again and reports it.
        """
        def load() -> None:
            try:
                self._model()
            except Exception:  # noqa: BLE001 - transcribe() reports it
                pass

        thread = threading.Thread(target=load, name="whisper-preload", daemon=True)
        thread.start()
        return thread

    def _model(self):
        return whisper_models.load_model(
            self.model_path(), self.device, self.compute_type, self.cpu_threads, self.local_files_only,
        )

    def transcribe(
        self, wav: Path, language: str | None = None, task: str = "transcribe", hotwords: str | None = None,
        on_progress: OnProgress | None = None,
    ) -> Transcript:
        """`task="translate"` is Whisper's own speech translation into English; `hotwords`
        biases decoding towards given terms (a glossary's target terms). `on_progress(position_s,
        duration_s)`, if given, hears how far decoding is in the audio as it goes."""
        model = self._model()
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
                for s in reported(segments, info.duration, on_progress)
            ]
        except (RuntimeError, ValueError) as exc:
            raise ProviderError(f"Whisper failed on {wav.name}: {exc}", audio=str(wav)) from exc
        return Transcript(
            language=info.language,
            language_probability=round(info.language_probability, 4),
            duration=round(info.duration, 3),
            segments=result,
        )
