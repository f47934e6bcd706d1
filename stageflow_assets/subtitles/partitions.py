"""Jobs are dynamic (one per registered video); languages are static, from configuration."""

import dagster as dg

from stageflow_assets.core.settings import configured_languages

subtitle_job_partitions = dg.DynamicPartitionsDefinition(name="subtitle_jobs")
language_partitions = dg.StaticPartitionsDefinition(list(configured_languages()))
job_language_partitions = dg.MultiPartitionsDefinition(
    {"job": subtitle_job_partitions, "lang": language_partitions}
)
