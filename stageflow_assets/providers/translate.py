"""Machine translation with Apertium (Debian packages; offline), one output line per cue."""

from __future__ import annotations

import functools
import os
import re
import shlex
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


# a lemma Apertium's stream format carries without escapes
_PLAIN_LEMMA = re.compile(r"[A-Za-z][A-Za-z' -]*")
_ONE_UNIT = re.compile(r"\^([^$]*)\$")
_TAGGED = re.compile(r"([^<#]+)(#[^<]*)?((?:<[^>]+>)+)(#.*)?")


@functools.lru_cache(maxsize=16)
def _mode_tools(binary: str, mode: str) -> tuple[tuple[str, ...], str, str] | None:
    """(analyser command, bilingual dictionary, generator) of `mode`, read from its mode file."""
    modes_dir = _modes_dir(binary)
    path = modes_dir / f"{mode}.mode" if modes_dir is not None else None
    if path is None or not path.is_file():
        return None
    steps = [shlex.split(step.replace("$1", "-g").replace("$2", "")) for step in path.read_text().split("|")]
    lt = [s for s in steps if s and s[0] == "lt-proc"]
    bidix = next((s[-1] for s in lt if "-b" in s and s[-1].endswith("autobil.bin")), None)
    generator = next((s[-1] for s in lt if s[-1].endswith("autogen.bin")), None)
    if not lt or not lt[0][-1].endswith("automorf.bin") or bidix is None or generator is None:
        return None
    return tuple(lt[0]), bidix, generator


def _units(stdout: str, count: int) -> list[str | None]:
    """The one lexical unit on each of `count` output lines (None: not exactly one)."""
    lines = stdout.split("\n")
    found: list[str | None] = []
    for i in range(count):
        units = _ONE_UNIT.findall(lines[i]) if i < len(lines) else []
        found.append(units[0] if len(units) == 1 else None)
    return found


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

    def infinitives(self, verbs: list[str], source: str, target: str) -> list[str]:
        """Each English-style verb lemma's dictionary translation as an infinitive (`borrow` →
        `tomar prestado`), from the pair's own analyser, bilingual dictionary and generator;
        "" where they do not have it. For headwords like `to borrow`: a sentence translation
        reads that `to` as a preposition ("para tomar prestado")."""
        mode = self.mode_for(source, target)
        tools = _mode_tools(self.apertium, mode) if mode else None
        found = ["" for _ in verbs]
        wanted = [i for i, v in enumerate(verbs) if _PLAIN_LEMMA.fullmatch(v.strip())]
        if tools is None or not wanted:
            return found
        analyser, bidix, generator = tools
        analysed = _units(run_tool(analyser, timeout_s=self.timeout_s,
                                   input_text="".join(verbs[i].strip() + "\n" for i in wanted)).stdout, len(wanted))
        readings: list[tuple[int, str]] = []
        for i, unit in zip(wanted, analysed):
            infinitives = [r for r in (unit or "").split("/")[1:] if "<inf>" in r]
            # a full verb before an auxiliary reading: `have` is `tener`, not `haber`
            infinitive = next((r for r in infinitives if "<vblex>" in r), infinitives[0] if infinitives else None)
            parts = _TAGGED.fullmatch(infinitive or "")
            if parts:  # the queue of a multiword (`look<vblex><inf># after`) goes before the tags
                readings.append((i, f"{parts.group(1)}{parts.group(4) or parts.group(2) or ''}{parts.group(3)}"))
        if not readings:
            return found
        translated = _units(run_tool(["lt-proc", "-b", bidix], timeout_s=self.timeout_s,
                                     input_text="".join(f"^{r}$\n" for _, r in readings)).stdout, len(readings))
        ready: list[tuple[int, str]] = []
        for (i, _), unit in zip(readings, translated):
            first = (unit or "").split("/")[1:2]
            parts = _TAGGED.fullmatch(first[0]) if first and not first[0].startswith("@") else None
            if parts:  # and after them for the generator: `^tomar<vblex><inf># prestado$`
                ready.append((i, f"^{parts.group(1)}{parts.group(3)}{parts.group(2) or parts.group(4) or ''}$"))
        if not ready:
            return found
        generated = run_tool(["lt-proc", "-g", generator], timeout_s=self.timeout_s,
                             input_text="".join(f"{u}\n" for _, u in ready)).stdout.split("\n")
        for (i, _), text in zip(ready, generated):
            text = " ".join(text.split())
            if text and not re.search(r"[#@*^$<>/\\]", text):  # a generation failure is marked `#`
                found[i] = text
        return found

