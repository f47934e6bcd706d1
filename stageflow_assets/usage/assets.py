"""`daily_usage`: what stageflow did each day, read back from the instance's event log."""

import dagster as dg

from stageflow_assets.core.days import TIMEZONE, days_partitions
from stageflow_assets.core.hashing import sha256_json
from stageflow_assets.core.stage import one_line_failures
from stageflow_assets.core.stage_store import StageStore
from stageflow_assets.usage.collect import day_usage
from stageflow_assets.usage.tables import usage_metadata

GROUP = "usage"


@dg.asset(partitions_def=days_partitions, group_name=GROUP, code_version="1", kinds={"python"})
@one_line_failures
def daily_usage(context: dg.AssetExecutionContext, storage: StageStore) -> dg.MaterializeResult:
    """What stageflow did on one day (in `STAGEFLOW_TIMEZONE`): per domain and per job (a video, a
    deck, a journey), the runs that ended that day (succeeded, failed, cancelled), the media
    minutes transcribed, the words and decks built, the journeys run, Claude's tokens and cost
    (Messages and batch rates apart) and the seconds spent in each stage.

    Partitioned by day only, domains and jobs are rows inside: the plots show each figure over
    days. Read from the event log and the runs' materialization metadata, so any past day can be
    (re)filled with a backfill; `daily_usage_schedule` materializes yesterday shortly after
    midnight, and `stageflow costs` reads these partitions.
    """
    usage = day_usage(context.instance, storage.paths, context.partition_key, TIMEZONE)
    return dg.MaterializeResult(
        metadata=usage_metadata(usage),
        data_version=dg.DataVersion(sha256_json(usage.model_dump(mode="json"))[:16]),
    )
