"""Machine translation with Apertium (Debian packages; offline), one output line per cue."""

from __future__ import annotations

import functools
import os
import re
import shutil
from pathlib import Path

import dagster as dg

from stageflow_assets.core.errors import ProviderError
from stageflow_assets.core.languages import iso639_3
from stageflow_assets.providers.process import run_tool

# Apertium marks words it could not translate: *unknown, @no-bidix-entry, #no-generation
_MARKED = re.compile(r"(?<![\w])[*@#](?=\w)")


# the `apertium` script's own default: APERTIUM_DATADIR="${APERTIUM_DATADIR:-/usr/share/apertium}"
_DATADIR_DEFAULT = re.compile(r'^APERTIUM_DATADIR="\$\{APERTIUM_DATADIR:-([^}"]+)\}"', re.MULTILINE)


@functools.lru_cache(maxsize=4)
def _modes(binary: str) -> frozenset[str]:
    """The installed pairs, as `apertium -l` lists them: the `*.mode` files in its data dir.

    Read directly where the script says its data dir is (a process less per language run);
    `apertium -l` itself for anything else.
    """
    modes_dir = _modes_dir(binary)
    if modes_dir is not None:
        return frozenset(p.stem for p in modes_dir.glob("*.mode"))
    result = run_tool([binary, "-l"], timeout_s=30)
    return frozenset(line.strip() for line in result.stdout.splitlines() if line.strip())


def _modes_dir(binary: str) -> Path | None:
    path = shutil.which(binary)
    if path is None:
        return None
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096).decode("utf-8", "replace")
    except OSError:
        return None
    found = _DATADIR_DEFAULT.search(head)
    if found is None:
        return None
    modes = Path(os.environ.get("APERTIUM_DATADIR") or found.group(1)) / "modes"
    return modes if modes.is_dir() else None


def _match_initial_case(source: str, translated: str) -> str:
    if source[:1].islower() and translated[:1].isupper():
        return translated[:1].lower() + translated[1:]
    return translated


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
        keep = [i for i, line in enumerate(lines) if line.strip()]  # blank cues stay blank
        if not keep:
            return ["" for _ in lines], []
        flat = [" ".join(lines[i].split()) for i in keep]
        # Apertium reads a single newline as a space and moves words across it; a blank line
        # is a paragraph break it never crosses, so each cue is translated on its own
        result = run_tool([self.apertium, mode], timeout_s=self.timeout_s, input_text="\n\n".join(flat) + "\n")
        out = [part.strip() for part in re.split(r"\n[ \t]*\n", result.stdout.strip("\n"))]
        if len(out) != len(flat):
            raise ProviderError(
                f"Apertium returned {len(out)} lines for {len(flat)} cues ({mode})",
                mode=mode,
            )
        # a cue that continues a sentence starts in lower case; Apertium capitalises paragraphs
        out = [_match_initial_case(src, dst) for src, dst in zip(flat, out)]
        unknown = sorted({m.group(0)[1:] for line in out for m in re.finditer(r"[*@#]\w[\w'-]*", line)})
        cleaned = ["" for _ in lines]
        for i, line in zip(keep, out):
            cleaned[i] = " ".join(_MARKED.sub("", line).split())
        return cleaned, unknown
