"""Everything the usage domain ships: `daily_usage`, its job and its schedule (`stageflow costs`
reads the asset), with the resources it needs."""

import dagster as dg

from stageflow_assets.core.resources import SHARED, pick
from stageflow_assets.usage.assets import daily_usage
from stageflow_assets.usage.jobs import daily_usage_job
from stageflow_assets.usage.schedules import daily_usage_schedule

defs = dg.Definitions(
    assets=[daily_usage],
    jobs=[daily_usage_job],
    schedules=[daily_usage_schedule],
    resources=pick(SHARED, "storage", "io_manager"),
    executor=dg.in_process_executor,  # see stageflow_assets/definitions.py
)
