"""What a journey partition stands for, and the files its stages exchange (pydantic, as JSON)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

STILLE_POST = "stille-post"


class JourneyJob(BaseModel):
    """One execution of a prompt: the options it was asked with (`job.json` in its job dir)."""

    job: str
    prompt: str
    lang: str = Field(description="the language the prompt is written in")
    work_lang: str = "en"
    interception: str = STILLE_POST
    iterations: int | None = Field(default=None, description="Stille Post hops; None: 8, or one more than --via")
    via: list[str] = Field(default_factory=list)
    outputs: list[str] = Field(default_factory=lambda: ["image"], description="--output specs, as given")
    seed: int
    safety: str = "youth"
    source: Literal["cli", "inbox"] = "cli"
    original_name: str | None = None  # the inbox file it came from
    registered_at: datetime

    def options(self) -> dict[str, Any]:
        """The options as the record's parameters."""
        return self.model_dump(exclude={"job", "prompt", "registered_at"}, mode="json")


class SafetyResult(BaseModel):
    """One safety verdict as a stage recorded it."""

    text_of: str  # "original", "translation", "output 1", ...
    check: str
    blocked: bool
    summary: str
    verdict: dict[str, Any] = Field(default_factory=dict)


class PromptDoc(BaseModel):
    """`prompt.json` (stage 1): the prompt, its working-language text and the §86a verdicts."""

    original: str
    language: str
    work_lang: str
    text: str | None = Field(default=None, description="None when blocked before translation")
    translation: dict[str, Any] | None = None
    checks: list[SafetyResult] = Field(default_factory=list)
    blocked: bool = False
    blocked_summary: str = ""


class InterceptionDoc(BaseModel):
    """`interception.json` (stage 2): every hop of the interception and the text it ends with."""

    input: str
    interception: str
    hops: list[dict[str, Any]]
    final: str


class OutputClearance(BaseModel):
    index: int
    spec: str
    config: dict[str, Any]
    level: str
    blocked: bool
    summary: str
    verdict: dict[str, Any] = Field(default_factory=dict)


class ClearanceDoc(BaseModel):
    """`clearance.json` (stage 3): the text each output is made from and its verdict per output."""

    text: str
    level: str
    outputs: list[OutputClearance]

    @property
    def blocked(self) -> list[OutputClearance]:
        return [o for o in self.outputs if o.blocked]
