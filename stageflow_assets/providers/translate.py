"""Machine translation with Apertium (Debian packages; offline), one output line per cue."""

from __future__ import annotations

import functools
import re

import dagster as dg

from stageflow_assets.core.errors import ProviderError
from stageflow_assets.core.languages import iso639_3
from stageflow_assets.providers.process import run_tool

# Apertium marks words it could not translate: *unknown, @no-bidix-entry, #no-generation
_MARKED = re.compile(r"(?<![\w])[*@#](?=\w)")


@functools.lru_cache(maxsize=4)
def _modes(binary: str) -> frozenset[str]:
    result = run_tool([binary, "-l"], timeout_s=30)
    return frozenset(line.strip() for line in result.stdout.splitlines() if line.strip())


class ApertiumTranslator(dg.ConfigurableResource):
    """`apertium <mode>` over cue lines; `*`-marked unknown words are recorded, then unmarked."""

    apertium: str = "apertium"
    timeout_s: float = 600

    def mode_for(self, source: str, target: str) -> str | None:
        modes = _modes(self.apertium)
        for mode in (f"{iso639_3(source)}-{iso639_3(target)}", f"{source}-{target}"):
            if mode in modes:
                return mode
        return None

    def parameters(self, source: str, target: str) -> dict[str, str | None]:
        return {"backend": "apertium", "mode": self.mode_for(source, target)}

    def versions(self) -> dict[str, str]:
        return {"apertium": "debian"}

    def translate(self, lines: list[str], source: str, target: str) -> tuple[list[str], list[str]]:
        """Return (translated lines, unknown words). Keeps exactly one line per input line."""
        mode = self.mode_for(source, target)
        if mode is None:
            raise ProviderError(f"Apertium has no {source}→{target} pair installed")
        if not lines:
            return [], []
        flat = [" ".join(line.split()) for line in lines]
        result = run_tool([self.apertium, mode], timeout_s=self.timeout_s, input_text="\n".join(flat) + "\n")
        out = result.stdout.rstrip("\n").split("\n")
        if len(out) != len(flat):
            raise ProviderError(
                f"Apertium returned {len(out)} lines for {len(flat)} cues ({mode})",
                mode=mode,
            )
        unknown = sorted({m.group(0)[1:] for line in out for m in re.finditer(r"[*@#]\w[\w'-]*", line)})
        cleaned = [" ".join(_MARKED.sub("", line).split()) for line in out]
        return cleaned, unknown
