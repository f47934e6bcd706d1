"""The journey's two blocking checks: §86a on the prompt (stage 1) and each output's clearance
at the journey's safety level (stage 3).

Each is declared on its own stage's asset, so the verdict and the materialization that carries
it come from one step: the stage materializes (its preview says what was checked and what
matched) and then the failed ERROR check fails the step, so Dagster runs nothing downstream in
that run. The UI shows the stage materialized with a failed check, not a crash.
"""

from __future__ import annotations

import warnings

import dagster as dg

from stageflow_assets.journey.models import ClearanceDoc, PromptDoc
from stageflow_assets.journey.partitions import journey_partitions

SECTION_86A_CHECK = "section_86a_clear"
OUTPUTS_CLEARED_CHECK = "outputs_cleared"


def _spec(name: str, asset: str, description: str) -> dg.AssetCheckSpec:
    """A blocking check per journey (partitioned checks are a Dagster preview)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return dg.AssetCheckSpec(name, asset=asset, blocking=True, partitions_def=journey_partitions,
                                 description=description)


def section_86a_spec(asset: str) -> dg.AssetCheckSpec:
    return _spec(
        SECTION_86A_CHECK, asset,
        "Neither the prompt as written nor its translation holds a symbol, slogan or name "
        "of an organisation banned under §86a StGB (blocking: nothing downstream runs).")


def outputs_cleared_spec(asset: str) -> dg.AssetCheckSpec:
    return _spec(
        OUTPUTS_CLEARED_CHECK, asset,
        "Every output configuration passed the safety check at the journey's level "
        "(kids, youth, adult, research); blocking: no media is made when one did not.")


def section_86a_result(doc: PromptDoc) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=SECTION_86A_CHECK, passed=not doc.blocked, severity=dg.AssetCheckSeverity.ERROR,
        description=f"blocked: {doc.blocked_summary}" if doc.blocked else "no §86a match",
        metadata={
            "blocked": doc.blocked,
            "what_matched": doc.blocked_summary or "nothing",
            "checked": dg.MetadataValue.json([c.model_dump() for c in doc.checks]),
        },
    )


def outputs_cleared_result(doc: ClearanceDoc) -> dg.AssetCheckResult:
    blocked = doc.blocked
    return dg.AssetCheckResult(
        check_name=OUTPUTS_CLEARED_CHECK, passed=not blocked, severity=dg.AssetCheckSeverity.ERROR,
        description="; ".join(f"output {o.index}: {o.summary}" for o in blocked) or "every output cleared",
        metadata={
            "level": doc.level,
            "outputs": len(doc.outputs),
            "blocked_outputs": [o.index for o in blocked],
            "verdicts": dg.MetadataValue.json([o.model_dump() for o in doc.outputs]),
        },
    )
