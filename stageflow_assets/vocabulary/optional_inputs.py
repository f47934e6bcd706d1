"""Inputs that only one way of building a deck makes, loaded as the upstream's manifest or None.

`word_analysis` reads `claude_batch_results`, which only the Message Batches path materializes:
the input stays declared (lineage, and the ingestion run skips the analysis while a follow-up
batch is in flight) while a deck built through Messages or WordNet, whose job never selects the
batch stages, gets None instead of the IO manager's "materialize it first".
"""

from __future__ import annotations

import dagster as dg

from stageflow_assets.core.io_manager import StageManifestIOManager
from stageflow_assets.core.manifest import StageManifest, stage_manifest
from stageflow_assets.core.paths import StageSpec

MANIFEST_IF_ANY = "manifest_if_any"  # the resource key, listed in vocabulary/definitions.py


class ManifestIfAny(StageManifestIOManager):
    """Loads an upstream stage's manifest from its stage dir, as the IO manager does; None where
    that stage never ran for the partition."""

    def load_input(self, context: dg.InputContext) -> StageManifest | None:
        spec = StageSpec.from_metadata(context.upstream_output.definition_metadata)
        return stage_manifest(self.store.paths, spec, str(context.asset_partition_key))
