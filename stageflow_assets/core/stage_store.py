"""The storage resource: where stage directories live."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from stageflow_assets.core.paths import StagePaths
from stageflow_assets.core.settings import stageflow_home


class StageStore(dg.ConfigurableResource):
    """Root of the stage directories (`STAGEFLOW_HOME`, default `.stageflow` in the checkout)."""

    home: str | None = None

    @property
    def paths(self) -> StagePaths:
        return StagePaths(Path(self.home).resolve() if self.home else stageflow_home())
