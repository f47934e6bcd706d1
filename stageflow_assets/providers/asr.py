"""Speech recognition: the protocol every ASR backend follows, and faster-whisper on CPU
(the offline default: the bundled Whisper base)."""

from __future__ import annotations

import abc
import threading
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import dagster as dg
from pydantic import BaseModel, Field, PrivateAttr

from stageflow_assets.core.errors import ProviderError
from stageflow_assets.providers import whisper_models

TASKS = ("transcribe", "translate")
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


class ASRBackend(dg.ConfigurableResource, abc.ABC):
    """What every speech recogniser offers; assets declare this type, so any backend injects.

    `transcribe` returns a `Transcript` whose segments carry word timings (the cues are cut
    from them) and whose `language` is the spoken language, whatever the task.
    `task="translate"` is Whisper's speech translation into English; `hotwords` are terms to
    bias decoding towards (a glossary's target terms). `on_progress(position_s, duration_s)`, if
    given, hears how far decoding is in the audio as it goes (once at the end where a backend
    cannot tell sooner).
    """

    @abc.abstractmethod
    def transcribe(
        self, wav: Path, language: str | None = None, task: str = "transcribe", hotwords: str | None = None,
        on_progress: OnProgress | None = None,
    ) -> Transcript: ...

    @abc.abstractmethod
    def parameters(self) -> dict[str, Any]:
        """Everything that changes the transcript: part of the stage fingerprint (no secrets)."""

    @abc.abstractmethod
    def versions(self) -> dict[str, str]:
        """The versions of the libraries that decode."""

    @abc.abstractmethod
    def preload(self) -> threading.Thread:
        """Start loading the model in a background thread; `transcribe` then waits for it.
        A failure there is left to `transcribe`, which loads again and reports it."""


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


def check_task(task: str) -> None:
    if task not in TASKS:
        raise ValueError(f"ASR task {task!r}: choose one of {', '.join(TASKS)}")


class WhisperASR(ASRBackend):
    """faster-whisper. `model` is `base` (the bundled offline model), a model name or a path.

    `batch_size` > 1 decodes batched (faster-whisper's `BatchedInferencePipeline`): Silero VAD
    (in faster-whisper's wheel) cuts the speech into chunks of up to 30 s, silence is skipped,
    and `batch_size` chunks go through the model at once, with the same word timings. 0 or 1
    decodes sequentially, window after window, over the whole audio (`vad_filter` applies).
    """

    model: str = whisper_models.BUNDLED_NAME
    device: str = "cpu"
    compute_type: str = "int8"
    cpu_threads: int = 0
    beam_size: int = 5
    batch_size: int = Field(default=8, description="> 1: batched decoding over VAD chunks; 0 or 1: sequential")
    vad_filter: bool = Field(default=False, description="sequential decoding only: batched always uses VAD")
    local_files_only: bool = True
    model_cache: str | None = None
    _resolved: str | None = PrivateAttr(default=None)

    @property
    def batched(self) -> bool:
        return self.batch_size > 1

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
            "decoding": "batched" if self.batched else "sequential",
            "batch_size": self.batch_size if self.batched else 1,
            "vad_filter": self.batched or self.vad_filter,
            "word_timestamps": True,
        }

    def versions(self) -> dict[str, str]:
        from importlib.metadata import version

        return {"faster-whisper": version("faster-whisper"), "ctranslate2": version("ctranslate2")}

    def preload(self) -> threading.Thread:
        def load() -> None:
            try:
                self._model()
                if self.batched:  # the Silero VAD model batched decoding chunks with (~0.1 s)
                    from faster_whisper.vad import get_vad_model

                    get_vad_model()
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
        check_task(task)
        model = self._model()
        options = dict(language=language, task=task, hotwords=hotwords or None, beam_size=self.beam_size,
                       word_timestamps=True)
        try:
            if self.batched:
                from faster_whisper import BatchedInferencePipeline

                # one pipeline per call: it keeps the last word's time between batches. No
                # timestamp tokens (one segment per VAD chunk; word times come from the
                # cross-attention either way): with them, batched decoding missed words on the
                # LibriVox talks (WER 0.084 and 0.062 against 0.026 and 0.024 without them,
                # which is sequential decoding's, word for word; bench/README.md)
                segments, info = BatchedInferencePipeline(model).transcribe(
                    str(wav), batch_size=self.batch_size, vad_filter=True, without_timestamps=True,
                    **options,
                )
            else:
                segments, info = model.transcribe(str(wav), vad_filter=self.vad_filter, **options)
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
