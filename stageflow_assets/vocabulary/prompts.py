"""What the Claude lexicon asks, and the JSON it must answer with.

Bump PROMPT_VERSION on any change to the text or to `ClaudeWord`: it is part of the lexicon's
parameters, so of every per-word cache key, stage fingerprint and batch request set.
Messages and Message Batches send exactly the same request for a word (`word_request`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, model_validator

from stageflow_assets.core.languages import language_name

PROMPT_VERSION = "1"

ClaudePartOfSpeech = Literal[
    "noun", "verb", "adjective", "adverb", "pronoun", "preposition", "conjunction", "interjection",
    "determiner", "numeral", "particle", "phrase", "other",
]


class ClaudeSense(BaseModel):
    definition: str = Field(description="a short learner's-dictionary definition, in the headword's language")
    examples: list[str] = Field(description="natural example sentences that use the headword")
    synonyms: list[str] = Field(description="a few common synonyms; may be empty")


class ClaudeWord(BaseModel):
    """Claude's answer for one headword (structured output, validated here again)."""

    known: bool = Field(description="false when the headword is not a word or phrase of the language")
    lemma: str = Field(description="the dictionary form")
    part_of_speech: ClaudePartOfSpeech
    senses: list[ClaudeSense] = Field(description="the most common senses first")
    other_parts_of_speech: list[ClaudePartOfSpeech]
    translation: str = Field(description="the usual translation into the learner's language; empty if none asked")

    @model_validator(mode="after")
    def _usable(self) -> "ClaudeWord":
        if self.known:
            if not self.senses:
                raise ValueError("a known word needs at least one sense")
            if any(not s.definition.strip() for s in self.senses):
                raise ValueError("every sense needs a non-empty definition")
        return self


SYSTEM = (
    "You are a lexicographer writing vocabulary flashcards for language learners.\n"
    "For the headword you are given, reply with one JSON object that matches the schema:\n"
    "- known: false only if it is not a word or set phrase of {language}; then leave the rest empty.\n"
    "- lemma: its dictionary form; part_of_speech: the part of speech learners meet most "
    "(or the one requested).\n"
    "- senses: at most {max_senses}, most common first; each a short, plain definition written in "
    "{language}, with at most {max_examples} natural example sentence(s) that contain the headword, "
    "and up to 4 synonyms.\n"
    "- other_parts_of_speech: other parts of speech the same spelling has.\n"
    "- translation: {translation_rule}\n"
    "Facts only; no markup, no commentary."
)

USER = "Headword: {headword}\nLanguage: {language} ({code})\nPart of speech: {pos}"


def word_request(headword: str, language: str, pos_hint: str | None, native: str | None,
                 max_senses: int, max_examples: int) -> tuple[str, str]:
    """(system, user prompt) for one headword."""
    if native and native != language:
        rule = (f"the usual {language_name(native)} ({native}) translation of the headword in its "
                "main sense, a word or short phrase")
    else:
        rule = "an empty string (no translation is wanted)"
    system = SYSTEM.format(language=language_name(language), max_senses=max_senses,
                           max_examples=max_examples, translation_rule=rule)
    user = USER.format(headword=" ".join(headword.split()), language=language_name(language), code=language,
                       pos=pos_hint or "the most common one")
    return system, user
