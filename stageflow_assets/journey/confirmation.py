"""An LLM's second opinion on a safety keyword match (the `Confirm` of safety.py).

Keyword lists cannot tell a history lesson from propaganda; where an LLM is configured it reads
the text and the matched entries and answers FORBIDDEN or HARMLESS. Only a clear HARMLESS clears
a match: anything else (another answer, an error, no answer) keeps the block.
"""

from __future__ import annotations

from stageflow_assets.core.errors import StageError

CONFIRM_VERSION = "1"
SYSTEM = (
    "You review texts that a keyword filter flagged before they are used to generate images, music "
    "or video in an art-education setting. The filter lists symbols, slogans, greetings and names of "
    "organisations banned under section 86a of the German Criminal Code (StGB), and content unfit for "
    "the stated audience. Decide whether the text really uses such content, or only mentions the "
    "words harmlessly (a different meaning, a place name, a clearly critical or historical context). "
    "Answer with exactly one word: FORBIDDEN or HARMLESS."
)


class LLMConfirmation:
    """`confirm(text, matches) -> bool` (True: really forbidden) through a `ChatBackend`."""

    def __init__(self, llm) -> None:
        self.llm = llm
        self.label = f"llm:{llm.name}"
        self.review: dict | None = None  # the last call: backend, model, usage (what it cost)

    def take_review(self) -> dict | None:
        """The last call's backend, model and usage, once (the check's record item keeps them)."""
        review, self.review = self.review, None
        return review

    def __call__(self, text: str, matches) -> bool:
        listed = "\n".join(f"- {m.term} ({m.category}), written as: {m.found}" for m in matches)
        prompt = f"Flagged entries:\n{listed}\n\nText:\n{text}"
        try:
            reply, model, parameters = self.llm.complete(SYSTEM, prompt, temperature=0.0)
        except StageError as exc:
            self.label = f"llm:{self.llm.name} (no answer: {exc.message[:80]}; block kept)"
            return True
        self.label = f"llm:{model}"
        self.review = {"backend": self.llm.name, "model": model, "usage": parameters.get("usage")}
        return reply.strip().strip(".").upper() != "HARMLESS"
