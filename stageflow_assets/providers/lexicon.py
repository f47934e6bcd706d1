"""Meanings, parts of speech and example glosses for headwords.

`Lexicon` is the seam every backend plugs into (the embedded WordNet reader here; the Claude
backend is `stageflow_assets.vocabulary.claude.ClaudeLexicon`, selected with
`STAGEFLOW_LEXICON=claude`): the `word_analysis` asset asks for `Lexicon` and gets whichever is
configured.
WordNet is read straight from its WNDB files (`/usr/share/wordnet`, Debian `wordnet`), because
nltk's reader wants a `lexnames` file Debian does not ship.
"""

from __future__ import annotations

import functools
import mmap
import re
from pathlib import Path

import dagster as dg
from pydantic import BaseModel, Field

from stageflow_assets.core.errors import ProviderError

POS_NAMES = {"n": "noun", "v": "verb", "a": "adjective", "s": "adjective", "r": "adverb"}
_FILES = {"noun": "noun", "verb": "verb", "adjective": "adj", "adverb": "adv"}
# WordNet's own detachment rules (morph.c): inflected ending → base ending, tried in order
_RULES = {
    "noun": [("s", ""), ("ses", "s"), ("xes", "x"), ("zes", "z"), ("ches", "ch"), ("shes", "sh"),
             ("men", "man"), ("ies", "y")],
    "verb": [("s", ""), ("ies", "y"), ("es", "e"), ("es", ""), ("ed", "e"), ("ed", ""),
             ("ing", "e"), ("ing", "")],
    "adjective": [("er", ""), ("est", ""), ("er", "e"), ("est", "e")],
    "adverb": [],
}


class Sense(BaseModel):
    part_of_speech: str
    definition: str
    examples: list[str] = Field(default_factory=list)
    synonyms: list[str] = Field(default_factory=list)


class LexEntry(BaseModel):
    """What a backend knows about one headword: senses of its main part of speech first."""

    headword: str
    lemma: str
    part_of_speech: str
    senses: list[Sense]
    other_parts_of_speech: list[str] = Field(default_factory=list)
    backend: str
    translation: str = Field(default="", description="native-language translation, from backends "
                             "that translate (`Lexicon.translates`)")


class Lexicon(dg.ConfigurableResource):
    """The lexicon interface: subclasses answer `lookup`; None means the word is unknown."""

    def languages(self) -> frozenset[str]:
        raise NotImplementedError

    def lookup(self, headword: str, language: str, pos_hint: str | None = None) -> LexEntry | None:
        raise NotImplementedError

    def parameters(self) -> dict[str, object]:
        return {"backend": type(self).__name__}

    def translates(self, language: str, native: str | None) -> bool:
        """True when `lookup(..., native=native)` also fills `LexEntry.translation`: the caller
        then passes `native` and needs no separate translator."""
        return False

    def versions(self) -> dict[str, str]:
        return {}


class _WordNetIndex:
    """The WNDB index files, searched where they lie.

    They are sorted byte-wise by lemma (WordNet's own `bin_search` relies on it), so a lemma is
    a binary search in a memory map and nothing is parsed up front: reading all 155,000 rows
    into dicts took 1-2.6 s of every deck build, for the few thousand a deck asks about. The
    exception lists (a few thousand lines) are read whole.
    """

    def __init__(self, root: Path) -> None:
        self.maps: dict[str, mmap.mmap] = {}
        self.exceptions: dict[str, dict[str, list[str]]] = {}
        for pos, stem in _FILES.items():
            index = root / f"index.{stem}"
            if not index.is_file():
                raise ProviderError(
                    f"WordNet is not installed ({index} is missing): run `make install` "
                    "(Debian package `wordnet`)", path=str(index))
            with index.open("rb") as fh:
                self.maps[pos] = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
            exc = root / f"{stem}.exc"
            if exc.is_file():
                for line in exc.read_text(encoding="utf-8", errors="replace").splitlines():
                    form, *bases = line.split()
                    self.exceptions.setdefault(form, {})[pos] = bases
        head = self.maps["noun"][:4096].decode("utf-8", "replace")
        found = re.search(r"WordNet (\d+\.\d+)", head)
        self.version = found.group(1) if found else "unknown"

    @functools.lru_cache(maxsize=65536)
    def entry(self, lemma: str) -> dict[str, tuple[list[int], int]]:
        """part of speech → (synset offsets by frequency, tagged sense count) for `lemma`."""
        found: dict[str, tuple[list[int], int]] = {}
        key = lemma.encode("utf-8")
        for pos, data in self.maps.items():
            line = _find_line(data, key)
            if line is not None:
                parts = line.decode("utf-8", "replace").split()
                p_cnt = int(parts[3])
                found[pos] = ([int(o) for o in parts[6 + p_cnt:]], int(parts[5 + p_cnt]))
        return found


def _find_line(data: mmap.mmap, key: bytes) -> bytes | None:
    """The line of a byte-sorted file whose first field is `key` (header lines start with
    spaces: an empty first field, which sorts first)."""
    low, high = 0, len(data)
    while low < high:
        mid = (low + high) // 2
        start = data.rfind(b"\n", 0, mid) + 1
        end = data.find(b"\n", start)
        end = len(data) if end < 0 else end
        line = data[start:end]
        field = line.split(b" ", 1)[0]
        if field == key:
            return line
        if field < key:
            low = end + 1
        else:
            high = start
    return None


@functools.lru_cache(maxsize=2)
def _load(directory: str) -> _WordNetIndex:
    return _WordNetIndex(Path(directory))


def parse_gloss(gloss: str) -> tuple[str, list[str]]:
    """WNDB gloss → (definition, example sentences); examples are the double-quoted parts."""
    examples = [e.strip() for e in re.findall(r'"([^"]+)"', gloss) if e.strip()]
    definition = re.split(r';?\s*"', gloss, maxsplit=1)[0].strip().rstrip(";").strip()
    return definition, examples


class WordNetLexicon(Lexicon):
    """Princeton WordNet 3.0 from its WNDB files: English headwords only, fully offline."""

    wordnet_dir: str = "/usr/share/wordnet"
    max_senses: int = 3
    max_examples: int = 2

    def languages(self) -> frozenset[str]:
        return frozenset({"en"})

    def parameters(self) -> dict[str, object]:
        return {"backend": "wordnet", "max_senses": self.max_senses, "max_examples": self.max_examples}

    def versions(self) -> dict[str, str]:
        return {"wordnet": _load(self.wordnet_dir).version}

    def lemmas_for(self, word: str, pos: str) -> list[str]:
        """Base forms of `word` as `pos` (morphy): the word itself, exceptions, then rules."""
        index = _load(self.wordnet_dir)
        key = "_".join(word.lower().split())
        found = [key] if pos in index.entry(key) else []
        found += [b for b in index.exceptions.get(key, {}).get(pos, []) if pos in index.entry(b)]
        for ending, base in _RULES[pos]:
            if key.endswith(ending) and len(key) > len(ending):
                candidate = key[: len(key) - len(ending)] + base
                if pos in index.entry(candidate):
                    found.append(candidate)
        return list(dict.fromkeys(found))

    def lookup(self, headword: str, language: str, pos_hint: str | None = None) -> LexEntry | None:
        if language not in self.languages():
            return None
        index = _load(self.wordnet_dir)
        candidates = []  # (tagged count, sense count, pos, lemma)
        for pos in ([pos_hint] if pos_hint else list(_FILES)):
            for lemma in self.lemmas_for(headword, pos)[:1]:
                offsets, tagged = index.entry(lemma)[pos]
                candidates.append((tagged, len(offsets), pos, lemma))
        if not candidates:
            return None
        # the part of speech people meet most (tagged senses), then the richer one
        candidates.sort(key=lambda c: (-c[0], -c[1], list(_FILES).index(c[2])))
        _, _, pos, lemma = candidates[0]
        offsets, _ = index.entry(lemma)[pos]
        senses = [self._sense(pos, off, lemma) for off in offsets[: self.max_senses]]
        return LexEntry(
            headword=headword, lemma=lemma.replace("_", " "), part_of_speech=pos, senses=senses,
            other_parts_of_speech=[c[2] for c in candidates[1:]], backend="wordnet",
        )

    def _sense(self, pos: str, offset: int, lemma: str) -> Sense:
        path = Path(self.wordnet_dir) / f"data.{_FILES[pos]}"
        with path.open("rb") as fh:
            fh.seek(offset)
            line = fh.readline().decode("utf-8", errors="replace")
        head, _, gloss = line.partition(" | ")
        parts = head.split()
        count = int(parts[3], 16)
        words = [parts[4 + 2 * i] for i in range(count)]
        synonyms = [re.sub(r"\(.*\)$", "", w).replace("_", " ") for w in words if w.lower() != lemma]
        definition, examples = parse_gloss(gloss.strip())
        return Sense(part_of_speech=POS_NAMES.get(parts[2], pos), definition=definition,
                     examples=examples[: self.max_examples], synonyms=synonyms[:4])
