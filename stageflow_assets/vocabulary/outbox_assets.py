"""`deck_outbox`: a deck's `.apkg`, where users pick it up."""

import shutil

import dagster as dg

from stageflow_assets.core.keys import slug
from stageflow_assets.core.manifest import StageManifest
from stageflow_assets.core.stage import StageWriter, one_line_failures, run_stage, stage_input
from stageflow_assets.core.stage_store import StageStore
from stageflow_assets.vocabulary import stage_dirs

from stageflow_assets.vocabulary.partitions import word_list_partitions


@dg.asset(
    partitions_def=word_list_partitions, group_name=stage_dirs.DOMAIN, code_version="1", kinds={"anki"},
    metadata=stage_dirs.OUTBOX.metadata,
)
@one_line_failures
def deck_outbox(context: dg.AssetExecutionContext, storage: StageStore, anki_deck: StageManifest):
    """The deck's Anki package in `$STAGEFLOW_HOME/outbox/vocabulary/<deck key>/<deck slug>.apkg`.

    The folder is this stage's directory, built beside its place and swapped in whole; the run
    that builds the deck delivers it (the CLI's, the words inbox's).
    """
    package = stage_input(storage.paths, anki_deck, "apkg")
    name = f"{anki_deck.details.get('deck_slug') or slug(str(anki_deck.config.get('deck', '')), fallback='deck')}.apkg"

    def work(out: StageWriter) -> None:
        shutil.copyfile(package.path, out.output(name, kind="apkg", fmt="apkg"))
        out.details.update(deck=anki_deck.config.get("deck"), notes=anki_deck.details.get("notes"),
                           folder=str(out.directory), files=[name])
        out.preview = f"- `{name}`: {anki_deck.details.get('notes')} notes"

    return run_stage(context, storage.paths, stage_dirs.OUTBOX, inputs=[package], config={"name": name}, work=work)
