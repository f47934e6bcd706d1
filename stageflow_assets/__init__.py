"""stageflow_assets: media pipelines as Dagster software-defined assets."""
