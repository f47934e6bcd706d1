"""The storage resource: where stage directories live."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from stageflow_assets.core.paths import StagePaths
from stageflow_assets.core.settings import stageflow_home


class StageStore(dg.ConfigurableResource):
    """Root of the stage directories (`STAGEFLOW_HOME`, default `.stageflow` in the checkout)."""

    home: str | None = None

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # every run initializes this resource first: a Celery worker's run pools its connections here
        from stageflow_assets.core.worker import pool_run_connections

        pool_run_connections(context.instance)

    @property
    def paths(self) -> StagePaths:
        return StagePaths(Path(self.home).resolve() if self.home else stageflow_home())
