"""Stage 1 and stage 3 as plain functions: what is checked, in which order, and what is recorded.

Stage 1 checks the prompt as written for §86a content before anything that needs a translation
backend, so a prompt is screened even where no backend can translate it; then it translates and
checks the translation too. Stage 3 checks the text each output is made from, per output, at the
journey's safety level.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Callable

from stageflow_assets.journey.interception import Translators, translate_prompt
from stageflow_assets.journey.offline_media import OutputConfig
from stageflow_assets.journey.models import ClearanceDoc, JourneyJob, OutputClearance, PromptDoc, SafetyResult
from stageflow_assets.journey.recording import StageRecording
from stageflow_assets.journey.safety import check_86a, check_output


def _result(text_of: str, verdict) -> SafetyResult:
    return SafetyResult(text_of=text_of, check=verdict.check, blocked=verdict.blocked,
                        summary=verdict.summary(), verdict=verdict.as_dict())


def screen_prompt(job: JourneyJob, translators: Translators, confirm: Callable | None,
                  rec: StageRecording) -> PromptDoc:
    """Stage 1: check the prompt, translate it, check the translation; stop at the first block."""
    rec.add("pipeline_start", content=f"journey {job.job}", parameters=job.options())
    rec.add("user_input", content=job.prompt, metadata={"language": job.lang})
    doc = PromptDoc(original=job.prompt, language=job.lang, work_lang=job.work_lang)
    if _blocked(doc, "original", job.prompt, confirm, rec):
        return doc
    hop = translate_prompt(job.prompt, job.lang, job.work_lang, translators)
    doc.text, doc.translation = hop.text, asdict(hop)
    rec.add("translation", content=hop.text, parameters={"source": hop.source, "target": hop.target,
                                                          **hop.parameters},
            backend=hop.backend, model=hop.model, duration_s=hop.duration_s, metadata=hop.metadata)
    if hop.backend != "none":  # "none": written in the working language, already checked
        _blocked(doc, "translation", hop.text, confirm, rec)
    return doc


def _blocked(doc: PromptDoc, text_of: str, text: str, confirm: Callable | None, rec: StageRecording) -> bool:
    verdict = check_86a(text, confirm)
    doc.checks.append(_result(text_of, verdict))
    backend, usage = _review(confirm)
    rec.add("safety_check", content=verdict.summary() or f"{verdict.check}: no match",
            parameters={"check": verdict.check, "text_of": text_of}, metadata={**verdict.as_dict(), **usage},
            **backend)
    if verdict.blocked:
        doc.blocked, doc.blocked_summary = True, verdict.summary()
        rec.add("blocked", content=verdict.summary(), metadata={"text_of": text_of, **verdict.as_dict()})
    return verdict.blocked


def clear_outputs(text: str, job: JourneyJob, confirm: Callable | None, rec: StageRecording) -> ClearanceDoc:
    """Stage 3: one verdict per output configuration at the journey's level."""
    outputs = []
    for index, spec in enumerate(job.outputs, start=1):
        config = OutputConfig.parse(spec)
        verdict = check_output(text, job.safety, confirm)
        backend, usage = _review(confirm)
        outputs.append(OutputClearance(index=index, spec=spec, config=config.as_dict(), level=job.safety,
                                       blocked=verdict.blocked, summary=verdict.summary(), verdict=verdict.as_dict()))
        rec.add("output_safety_check", output_index=index,
                content=verdict.summary() or f"{verdict.check}: no match",
                parameters={"check": verdict.check, "level": job.safety, "output": config.label()},
                metadata={**verdict.as_dict(), **usage}, **backend)
        if verdict.blocked:
            rec.add("output_blocked", output_index=index, content=verdict.summary(),
                    metadata={"output": config.label(), "level": job.safety})
    return ClearanceDoc(text=text, level=job.safety, outputs=outputs)


def _review(confirm: Callable | None) -> tuple[dict, dict]:
    """(backend and model, usage) of the LLM review the last check asked for, if it asked one:
    what the check's record item names and what it cost."""
    take = getattr(confirm, "take_review", None)
    review = take() if take is not None else None
    if not review:
        return {}, {}
    return {"backend": review["backend"], "model": review["model"]}, (
        {"usage": review["usage"]} if review.get("usage") else {})
