"""Which backend translates a cue list into a language, and the call itself.

Same language: the cues are copied (captions). Otherwise the configured backend (Apertium by
default, Claude when selected), then Whisper's own translate task for English, else skipped
with the reason. Glossary terms are forced in every backend: placeholders through Apertium,
mandatory terms in Claude's prompt, hotwords for Whisper, and the QC reports misses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import dagster as dg
from pydantic import BaseModel

from stageflow_assets.providers.asr import ASRBackend
from stageflow_assets.providers.llm import ClaudeResource
from stageflow_assets.providers.translate import ApertiumTranslator
from stageflow_assets.subtitles import glossary
from stageflow_assets.subtitles.segmenter import Cue


class TranslationSettings(dg.ConfigurableResource):
    """`backend`: apertium (offline) or claude; Whisper translates into English as a fallback."""

    backend: Literal["apertium", "claude"] = "apertium"
    whisper_for_english: bool = True


class Plan(BaseModel):
    backend: Literal["none", "apertium", "claude", "whisper-translate", "skip"]
    detail: dict = {}
    reason: str = ""


class Translated(BaseModel):
    texts: list[str]
    unknown_words: list[str] = []
    usage: dict = {}
    cues: list[Cue] | None = None  # whisper-translate brings its own cues and timing


def plan(source: str, target: str, settings: TranslationSettings, apertium: ApertiumTranslator,
         claude: ClaudeResource) -> Plan:
    if source == target:
        return Plan(backend="none", reason="same language: captions")
    if settings.backend == "claude":
        return Plan(backend="claude", detail=claude.parameters())
    mode = apertium.mode_for(source, target)
    if mode:
        return Plan(backend="apertium", detail={"mode": mode})
    if target == "en" and settings.whisper_for_english:
        return Plan(backend="whisper-translate", detail={"task": "translate"})
    return Plan(backend="skip", reason=f"no translation backend serves {source}→{target} "
                                       "(Apertium pairs: `apertium -l`; or select the Claude backend)")


def translate(plan_: Plan, cues: list[Cue], source: str, target: str, terms: dict[str, str], *,
              apertium: ApertiumTranslator, claude: ClaudeResource, asr: ASRBackend,
              audio: Path | None, build_cues) -> Translated:
    sources = [c.text for c in cues]
    if plan_.backend == "none":
        return Translated(texts=sources)
    if plan_.backend == "apertium":
        protected, placeholders = glossary.protect(sources, terms)
        texts, unknown = apertium.translate(protected, source, target)
        return Translated(texts=glossary.restore(texts, placeholders),
                          unknown_words=[w for w in unknown if w not in placeholders])
    if plan_.backend == "claude":
        texts, usage = claude.translate_numbered(sources, source, target, glossary=terms)
        return Translated(texts=texts, usage=usage.model_dump())
    if plan_.backend == "whisper-translate":
        # Whisper cannot be told "translate X as Y"; the target terms as hotwords steer it
        heard = asr.transcribe(audio, language=source, task="translate", hotwords=" ".join(terms.values()))
        words = [w for segment in heard.segments for w in segment.words]
        own = build_cues(words)
        return Translated(texts=[c.text for c in own], cues=own)
    raise ValueError(f"cannot translate with {plan_.backend}")
