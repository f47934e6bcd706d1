"""The IO manager: a stage's small manifest travels between assets; media stays on disk."""

from __future__ import annotations

import dagster as dg

from stageflow_assets.core.manifest import MANIFEST_NAME, StageManifest, read_manifest
from stageflow_assets.core.paths import StageSpec, write_text_atomic
from stageflow_assets.core.stage import partition_parts
from stageflow_assets.core.stage_store import StageStore

FAN_IN = "stageflow/fan_in"


class StageManifestIOManager(dg.ConfigurableIOManager):
    """Stores each asset partition's `StageManifest` as `manifest.json` in its stage dir.

    Inputs marked `stageflow/fan_in` (a job-level asset reading every language of a
    `job × lang` asset) load as a dict keyed by partition key, holding only the languages
    that have been materialized.
    """

    store: StageStore

    def _manifest_path(self, metadata, partition_key):
        spec = StageSpec.from_metadata(metadata)
        job, lang = partition_parts(partition_key)
        return self.store.paths.dir_of(spec, job, lang) / MANIFEST_NAME

    def handle_output(self, context: dg.OutputContext, obj: StageManifest) -> None:
        path = self._manifest_path(context.definition_metadata, context.partition_key)
        write_text_atomic(path, obj.model_dump_json(indent=2))

    def load_input(self, context: dg.InputContext):
        upstream = context.upstream_output
        metadata = upstream.definition_metadata
        if context.definition_metadata.get(FAN_IN):
            partitions_def = context.asset_partitions_def
            found = {}
            for raw in context.asset_partition_keys:
                key = partitions_def.get_partition_key_from_str(raw)
                manifest = read_manifest(self._manifest_path(metadata, key))
                if manifest is not None:
                    found[raw] = manifest
            return found
        key = context.asset_partition_key
        manifest = read_manifest(self._manifest_path(metadata, key))
        if manifest is None:
            raise dg.Failure(
                description=(
                    f"{context.asset_key.to_user_string()} [{key}] has no manifest yet: "
                    "materialize it first"
                ),
                allow_retries=False,
            )
        return manifest
