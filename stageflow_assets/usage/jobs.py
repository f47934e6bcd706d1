"""The usage job: one day's `daily_usage` per run (a backfill is one run per day)."""

import dagster as dg

from stageflow_assets.usage.assets import daily_usage

daily_usage_job = dg.define_asset_job(
    "daily_usage_job",
    selection=dg.AssetSelection.assets(daily_usage),
    description="Count one day's runs, media, words, decks, journeys, Claude usage and stage time.",
)
