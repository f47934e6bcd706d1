"""A journey is one run: its four stages share the `journey` partitions definition, and the
blocking checks of stages 1 and 3 stop the rest of the run when they fail. A day's research
bundle (its journeys' records) is a run of its own, by day."""

import dagster as dg

from stageflow_assets.journey.assets import intercepted_prompt, journey_prompt, output_clearance
from stageflow_assets.journey.bundle_assets import research_bundle
from stageflow_assets.journey.media_assets import journey_media

DOMAIN_TAGS = {"stageflow/domain": "journey"}

journey_job = dg.define_asset_job(
    "journey_job",
    selection=dg.AssetSelection.assets(journey_prompt, intercepted_prompt, output_clearance, journey_media),
    description="Take a prompt through translation and §86a check, interception, output safety and media.",
    tags=DOMAIN_TAGS,
)
research_bundle_job = dg.define_asset_job(
    "research_bundle_job",
    selection=dg.AssetSelection.assets(research_bundle),
    description="Write one day's journeys as RO-Crates with an index into $STAGEFLOW_HOME/outbox/records/<day>/.",
)
