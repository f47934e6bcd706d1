"""Word analysis with a per-word cache, so an edited list recomputes only the edited words.

The stage runtime reuses a whole stage when nothing changed; one changed word changes the
stage's input, so each word's result is also cached in `cache/` inside the stage dir (the
runtime keeps sub-directories), keyed by everything that decides it. With Claude, the lexicon's
answers are kept too (`lexicon_answers.py`): a row recomputed for another reason (a new espeak-ng,
another translation mode) does not pay for its answer again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ValidationError

from stageflow_assets.core.errors import ProviderError
from stageflow_assets.core.hashing import sha256_json
from stageflow_assets.core.paths import write_text_atomic
from stageflow_assets.providers.lexicon import LexEntry, Lexicon, Sense
from stageflow_assets.providers.translate import ApertiumTranslator
from stageflow_assets.providers.tts import EspeakTTS
from stageflow_assets.vocabulary.cards import note_guid
from stageflow_assets.vocabulary.claude import custom_id_for
from stageflow_assets.vocabulary.headwords import marker_split
from stageflow_assets.vocabulary.ipa import ipa_problems
from stageflow_assets.vocabulary.lexicon_answers import LexiconAnswers
from stageflow_assets.vocabulary.models import WordAnalysis, WordEntry

ANALYSIS_VERSION = "2"  # 2: marked headwords (`to borrow`) looked up as the word after the marker
CACHE_DIR = "cache"


class CachedWord(BaseModel):
    part_of_speech: str = ""
    lemma: str = ""
    senses: list[Sense] = []
    lookup_form: str = ""  # the word after a marker (`to borrow` → `borrow`); "" = the headword
    ipa: str = ""
    translation: str = ""
    issues: list[str] = []


@dataclass
class Analyser:
    lexicon: Lexicon
    tts: EspeakTTS
    translator: ApertiumTranslator
    language: str
    native: str | None
    cache: Path
    # answers already in hand (Message Batches results), by batch custom_id; None = not a word
    answers: dict[str, LexEntry | None] = field(default_factory=dict)
    # the lexicon's answers kept for this deck (Claude's), recalled before asking and kept after
    kept: LexiconAnswers | None = None
    computed: int = 0
    reused: int = 0
    answered: int = 0
    answered_ids: set[str] = field(default_factory=set)  # custom_ids answered from `answers`
    recalled_ids: set[str] = field(default_factory=set)  # custom_ids answered from `kept`
    computed_words: list[WordEntry] = field(default_factory=list)  # computed (not from the cache) this run
    used_keys: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.lexicon_serves = self.language in self.lexicon.languages()
        self.has_voice = self.tts.has_voice(self.language)
        wants = bool(self.native and self.native != self.language)
        # a lexicon that translates (Claude) replaces Apertium for the translation column
        self.lexicon_translates = wants and self.lexicon.translates(self.language, self.native)
        self.mode = self.translator.mode_for(self.language, self.native) if wants and not self.lexicon_translates else None
        self.settings = {
            "version": ANALYSIS_VERSION, "language": self.language, "native": self.native,
            "lexicon": self.lexicon.parameters(), "lexicon_versions": self.lexicon.versions(),
            "tts": self.tts.parameters(self.language), "tts_versions": self.tts.versions(),
            "translation_mode": self.mode,
        }
        if self.lexicon_translates:
            self.settings["translation_mode"] = "lexicon"

    @property
    def translation_backend(self) -> str | None:
        if self.lexicon_translates:
            return str(self.lexicon.parameters().get("backend"))
        return f"apertium {self.mode}" if self.mode else None

    def key(self, word: WordEntry) -> str:
        """The per-word cache key: everything that decides the word's row."""
        return sha256_json({**self.settings, "headword": word.headword, "pos": word.pos_hint})[:24]

    def analyse(self, words: list[WordEntry]) -> list[WordAnalysis]:
        keys = [self.key(w) for w in words]
        results: dict[str, CachedWord] = {}
        missing = []
        for word, key in zip(words, keys):
            cached = self._read(key)
            if cached is None:
                missing.append((word, key))
            else:
                results[key] = cached
        self.reused = len(words) - len(missing)
        # each backend once for all the missing words: the lexicon in process, espeak-ng in one
        # worker, Apertium in one process (and three more for verbs written `to borrow`)
        computed = [self._look_up(word) for word, _ in missing]
        self._transcribe([w for w, _ in missing], computed)
        self._translate_all([w for w, _ in missing], computed)
        for (word, key), result in zip(missing, computed):
            if (self.mode or self.lexicon_translates) and not result.translation:
                result.issues.append(f"no {self.language}→{self.native} translation")
            results[key] = result
            write_text_atomic(self.cache / f"{key}.json", result.model_dump_json())
        self.computed = len(missing)
        self.computed_words = [w for w, _ in missing]
        self.used_keys = set(keys)
        return [self._row(word, results[key]) for word, key in zip(words, keys)]

    def prune(self) -> None:
        """Forget words no longer in the list, so the cache tracks the list it serves."""
        for path in self.cache.glob("*.json"):
            if path.stem not in self.used_keys:
                path.unlink(missing_ok=True)

    def _read(self, key: str) -> CachedWord | None:
        try:
            return CachedWord.model_validate_json((self.cache / f"{key}.json").read_text(encoding="utf-8"))
        except (FileNotFoundError, ValidationError, ValueError):
            return None

    def _translate(self, headwords: list[str]) -> list[str]:
        if not self.mode or not headwords:
            return [""] * len(headwords)
        # Apertium reads across newlines ("apple\nbanana" → "Plátano de manzana"): a full stop
        # makes each headword its own sentence
        lines, unknown = self.translator.translate([f"{h}." for h in headwords], self.language, self.native)
        unknown_set = {u.casefold() for u in unknown}
        out = []
        for head, line in zip(headwords, lines):
            text = line[:-1].strip() if line.endswith(".") else line.strip()
            if text and head[:1].islower():
                text = text[0].lower() + text[1:]  # the sentence capital is not the word's
            # Apertium echoes words it cannot translate; an echo of an unknown word is no translation
            echo = text.casefold() == head.casefold() and head.casefold() in unknown_set
            out.append("" if echo else text)
        return out

    def _translate_all(self, words: list[WordEntry], results: list[CachedWord]) -> None:
        """The written form's translation (`the apple` → `la manzana`: the article shows the
        gender), except a verb written `to borrow`: Apertium reads that `to` as a preposition
        ("para tomar prestado"), so the verb is translated as an infinitive from its dictionaries."""
        if self.lexicon_translates or not self.mode:
            return
        for result, text in zip(results, self._translate([w.headword for w in words])):
            result.translation = text
        verbs = [r for r in results if r.lookup_form and r.part_of_speech == "verb"]
        infinitives = self.translator.infinitives([r.lemma or r.lookup_form for r in verbs], self.language,
                                                  self.native) if verbs else []
        for result, infinitive in zip(verbs, infinitives):
            if infinitive:
                result.translation = infinitive

    def _look_up(self, word: WordEntry) -> CachedWord:
        """Meanings and part of speech; for a headword with a marker (`to borrow`), those of
        the word after it (headwords.py), which is then what gets transcribed and spoken."""
        result = CachedWord()
        if not self.lexicon_serves:
            result.issues.append(f"the lexicon has no {self.language} entries")
            return result
        entry = self._lookup(word)
        marked = marker_split(word.headword, self.language, word.pos_hint)
        if marked is not None:
            if entry is None:
                inner = self._lookup(word.model_copy(update={"headword": marked.word,
                                                             "pos_hint": marked.part_of_speech}))
                if inner is not None and inner.part_of_speech == marked.part_of_speech:
                    entry, result.lookup_form = inner.model_copy(update={"headword": word.headword}), marked.word
            elif entry.part_of_speech == marked.part_of_speech and entry.lemma.casefold() == marked.word.casefold():
                result.lookup_form = marked.word  # the lexicon read it so itself (Claude: lemma `borrow`)
        if entry is None:
            hint = f" as a {word.pos_hint}" if word.pos_hint else ""
            result.issues.append(f"not in the lexicon{hint}")
        else:
            result.part_of_speech, result.lemma, result.senses = entry.part_of_speech, entry.lemma, entry.senses
            if self.lexicon_translates:
                result.translation = entry.translation
        return result

    def _transcribe(self, words: list[WordEntry], results: list[CachedWord]) -> None:
        """IPA of what is spoken (the word after a marker), all words from one espeak-ng worker."""
        if not results:
            return
        if not self.has_voice:
            for result in results:
                result.issues.append(f"espeak-ng has no voice for {self.language}")
            return
        try:
            found = self.tts.ipa_many([r.lookup_form or w.headword for w, r in zip(words, results)], self.language)
        except ProviderError as exc:
            found = [""] * len(results)
            for result in results:
                result.issues.append(f"no IPA: {exc.message}")
        for result, ipa in zip(results, found):
            result.ipa = ipa
            problems = ipa_problems(ipa) if ipa else ["espeak-ng gave no IPA"]
            if ipa and problems:
                result.issues.append("IPA not valid: " + "; ".join(problems))

    def _lookup(self, word: WordEntry) -> LexEntry | None:
        cid = custom_id_for(self.language, word.headword, word.pos_hint)
        key = self.kept.key(word.headword, self.language, word.pos_hint, self.native) if self.kept else None
        if cid in self.answers:
            self.answered += 1
            self.answered_ids.add(cid)
            found = self.answers[cid]
            entry = None if found is None else found.model_copy(update={"headword": word.headword})
        elif key is not None and (kept := self.kept.recall(key)) is not None:
            self.recalled_ids.add(cid)
            return None if kept.entry is None else kept.entry.model_copy(update={"headword": word.headword})
        elif self.lexicon_translates:
            entry = self.lexicon.lookup(word.headword, self.language, word.pos_hint, native=self.native)
        else:
            entry = self.lexicon.lookup(word.headword, self.language, word.pos_hint)
        if key is not None:
            self.kept.keep(key, entry)
        return entry

    def _row(self, word: WordEntry, cached: CachedWord) -> WordAnalysis:
        return WordAnalysis(
            key=note_guid(self.language, word.headword, word.pos_hint), headword=word.headword,
            line=word.line, pos_hint=word.pos_hint, part_of_speech=cached.part_of_speech or word.pos_hint or "",
            lemma=cached.lemma, lookup_form=cached.lookup_form, senses=cached.senses, ipa=cached.ipa,
            ipa_valid=bool(cached.ipa) and not ipa_problems(cached.ipa), translation=cached.translation,
            tags=word.tags, note=word.note, issues=cached.issues,
        )
