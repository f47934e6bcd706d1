"""Offline pronunciation with espeak-ng: IPA transcriptions and spoken MP3s.

espeak-ng output is byte-deterministic and ffmpeg is run with bitexact flags, so a file's name
can be a hash of what determines its bytes (text, voice, engine, encoder settings): the same word
always lands in the same file, which is what lets a stage reuse it and Anki deduplicate it.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import dagster as dg

from stageflow_assets.core.errors import ProviderError
from stageflow_assets.providers.process import run_tool, tool_version

# ISO 639-1 → espeak-ng voice where the bare code is not the voice people expect
_VOICES = {"en": "en-us", "pt": "pt-br", "zh": "cmn", "fr": "fr-fr"}
ENCODER = ("-codec:a", "libmp3lame", "-qscale:a", "5", "-ac", "1", "-ar", "22050")
# bump when the synthesis or encoding changes, so old files get new names instead of lying
AUDIO_RECIPE = "1"


def _espeak_version(binary: str) -> str:
    out = tool_version(binary, "--version")  # "eSpeak NG text-to-speech: 1.51  Data at: ..."
    parts = out.split(":")[1].split() if ":" in out else out.split()
    return parts[0] if parts else "unknown"


class EspeakTTS(dg.ConfigurableResource):
    """espeak-ng for IPA (`-q --ipa`) and speech (WAV), ffmpeg to encode MP3."""

    espeak: str = "espeak-ng"
    ffmpeg: str = "ffmpeg"
    timeout_s: float = 60
    speed_wpm: int = 150

    def voice_for(self, language: str) -> str:
        return _VOICES.get(language.lower(), language.lower())

    def parameters(self, language: str) -> dict[str, object]:
        return {"engine": "espeak-ng", "voice": self.voice_for(language), "speed_wpm": self.speed_wpm,
                "encoder": " ".join(ENCODER), "recipe": AUDIO_RECIPE}

    def versions(self) -> dict[str, str]:
        return {"espeak-ng": _espeak_version(self.espeak)}

    def has_voice(self, language: str) -> bool:
        result = run_tool([self.espeak, "-q", "--ipa", "-v", self.voice_for(language)],
                          timeout_s=self.timeout_s, input_text="a\n", check=False)
        return result.returncode == 0

    def ipa(self, text: str, language: str) -> str:
        """espeak-ng's IPA for `text`, one line; text goes through stdin so `-x` is no option."""
        result = run_tool([self.espeak, "-q", "--ipa", "-v", self.voice_for(language)],
                          timeout_s=self.timeout_s, input_text=text + "\n")
        return " ".join(result.stdout.split())

    def media_name(self, text: str, language: str) -> str:
        recipe = "|".join([text, self.voice_for(language), str(self.speed_wpm), " ".join(ENCODER),
                           AUDIO_RECIPE, self.versions()["espeak-ng"]])
        digest = hashlib.sha256(recipe.encode("utf-8")).hexdigest()[:16]
        return f"tts_{self.voice_for(language)}_{digest}.mp3"

    def synthesize(self, text: str, language: str, target: Path) -> None:
        """Speak `text` into the MP3 `target` (via a WAV beside it, removed afterwards)."""
        wav = target.with_name(f".{target.name}.wav")
        try:
            # no `-q` here: with it espeak-ng writes no WAV at all
            run_tool([self.espeak, "-v", self.voice_for(language), "-s", str(self.speed_wpm),
                      "-w", str(wav)], timeout_s=self.timeout_s, input_text=text + "\n")
            if not wav.is_file() or wav.stat().st_size <= 44:
                raise ProviderError(f"espeak-ng produced no audio for {text[:40]!r}", text=text[:200])
            run_tool([self.ffmpeg, "-nostdin", "-v", "error", "-y", "-i", str(wav), *ENCODER,
                      "-map_metadata", "-1", "-fflags", "+bitexact", "-flags:a", "+bitexact",
                      "-f", "mp3", str(target)], timeout_s=self.timeout_s)
        finally:
            if wav.exists():
                os.unlink(wav)
