"""The deck (`.apkg`) and, only when asked, its sync into Anki."""


import json
import time
from pathlib import Path
from typing import Literal

import dagster as dg

from stageflow_assets.core.errors import BadInputError
from stageflow_assets.core.keys import slug
from stageflow_assets.core.manifest import StageManifest
from stageflow_assets.core.stage import StageInput, StageWriter, one_line_failures, run_stage, stage_input
from stageflow_assets.core.stage_store import StageStore
from stageflow_assets.providers.anki import AnkiCollection, NoteSpec, genanki_version, write_apkg
from stageflow_assets.providers.ankiconnect import AnkiConnect
from stageflow_assets.vocabulary import stage_dirs
from stageflow_assets.vocabulary.assets import cell
from stageflow_assets.vocabulary.cards import NOTE_TYPE, content_hash, deck_id_for, note_fields
from stageflow_assets.vocabulary.models import AnalysisDoc, AudioDoc, DeckDoc, ImageDoc, NoteRow, SyncState
from stageflow_assets.vocabulary.partitions import word_list_partitions
from stageflow_assets.vocabulary.registry import load_word_list_job

DECK_FILE = "deck.apkg"
NOTES_FILE = "notes.json"
SYNC_STATE_FILE = "sync_state.json"


def _previous_mods(directory: Path) -> dict[str, NoteRow]:
    try:
        doc = DeckDoc.model_validate_json((directory / NOTES_FILE).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return {}
    return {n.guid: n for n in doc.notes}


@dg.asset(
    partitions_def=word_list_partitions, group_name=stage_dirs.DOMAIN, code_version="2",
    kinds={"genanki", "anki"}, metadata=stage_dirs.ANKI_DECK.metadata,
)
@one_line_failures
def anki_deck(
    context: dg.AssetExecutionContext, storage: StageStore, word_analysis: StageManifest,
    pronunciation_audio: StageManifest, card_images: StageManifest,
):
    """The Anki package (`.apkg`): one note per distinct headword with meanings, examples, IPA,
    audio, translation and tags; a recognition card, and a production card with `--reverse`.

    Fixed note-type and deck ids and identity GUIDs make re-imports update notes in place; a
    note's `mod` moves only when its content changes, so unchanged notes are left alone. Words
    that left the list since the previous build are reported (`removed_words`).
    """
    paths = storage.paths
    job = load_word_list_job(paths, str(context.partition_key))
    analysis = stage_input(paths, word_analysis, "analysis")
    inputs = [analysis]
    audio: dict[str, Path] = {}
    if pronunciation_audio.status == "success":
        index = stage_input(paths, pronunciation_audio, "audio_index")
        inputs.append(index)
        doc = AudioDoc.model_validate_json(index.path.read_text(encoding="utf-8"))
        folder = index.path.parent
        audio = {i.key: folder / i.file for i in doc.items if i.file}
    images: dict[str, Path] = {}
    if card_images.status == "success":
        index = stage_input(paths, card_images, "image_index")
        inputs.append(index)
        doc = ImageDoc.model_validate_json(index.path.read_text(encoding="utf-8"))
        images = {i.key: index.path.parent / i.file for i in doc.items if i.file}
    media = sorted({*audio.values(), *images.values()})
    inputs += [StageInput(p, kind="media") for p in media]
    config = {"deck": job.deck, "deck_id": deck_id_for(job.deck), "model_id": NOTE_TYPE.model_id,
              "reverse": job.reverse, "images": card_images.status == "success"}

    def work(out: StageWriter) -> None:
        words = AnalysisDoc.model_validate_json(analysis.path.read_text(encoding="utf-8")).words
        previous = _previous_mods(out.directory)
        now = int(time.time())
        rows, changed, new = [], 0, 0
        for word in words:
            a, i = audio.get(word.key), images.get(word.key)
            fields = note_fields(word, a.name if a else None, i.name if i else None, job.reverse)
            tags = list(dict.fromkeys(["stageflow", *(t for t in word.tags)]))
            digest = content_hash(fields, tags)
            before = previous.get(word.key)
            if before is not None and before.content_hash == digest:
                mod = before.mod
            else:
                # strictly newer than what Anki holds, or "update if newer" would skip it
                mod = max(now, before.mod + 1) if before else now
                changed += before is not None
                new += before is None
            rows.append(NoteRow(guid=word.key, headword=word.headword, fields=dict(zip(NOTE_TYPE.fields, fields)),
                                tags=tags, content_hash=digest, mod=mod))
        if not rows:
            raise BadInputError(f"{job.original_name}: no words to put in the deck")
        specs = [NoteSpec(guid=r.guid, fields=list(r.fields.values()), tags=r.tags, mod=r.mod) for r in rows]
        write_apkg(out.output(DECK_FILE, kind="apkg", fmt="apkg"), config["deck_id"], job.deck, NOTE_TYPE, specs, media,
                   description=f"Built by stageflow from {job.original_name}")
        deck_doc = DeckDoc(deck=job.deck, deck_id=config["deck_id"], model_id=NOTE_TYPE.model_id,
                           model_name=NOTE_TYPE.name, reverse=job.reverse, notes=rows, media=[p.name for p in media])
        out.output(NOTES_FILE, kind="notes", fmt="json").write_text(deck_doc.model_dump_json(indent=1), encoding="utf-8")
        production = sum(1 for r in rows if r.fields["Production"])
        # an .apkg cannot take notes out of the user's Anki: say which words left, a sync tags them
        kept = {r.guid for r in rows}
        removed = sorted((n.headword for g, n in previous.items() if g not in kept), key=str.casefold)
        out.details.update(
            deck=job.deck, deck_slug=slug(job.deck, fallback="deck"), notes=len(rows), cards=len(rows) + production,
            media_files=len(media), new_notes=new, changed_notes=changed, unchanged_notes=len(rows) - new - changed,
            removed_notes=len(removed), removed_words=removed,
            images="on" if images else f"off: {card_images.details.get('skipped_reason', 'no images')}",
            audio="on" if audio else f"off: {pronunciation_audio.details.get('skipped_reason', 'no audio')}",
        )
        out.preview = "| headword | POS | IPA | audio |\n|---|---|---|---|\n" + "\n".join(
            f"| {cell(r.headword, 30)} | {r.fields['PartOfSpeech']} | {cell(r.fields['IPA'], 30)} | "
            f"{'yes' if r.fields['Audio'] else 'no'} |" for r in rows[:12])

    return run_stage(context, paths, stage_dirs.ANKI_DECK, inputs=inputs, config=config,
                     provider_versions={"genanki": genanki_version()}, work=work)


class SyncConfig(dg.Config):
    target: Literal["ankiconnect", "collection"] = "ankiconnect"
    """`ankiconnect`: a running Anki (the `ankiconnect` resource's URL); `collection`: a file."""
    collection_path: str = ""
    """The `.anki2` collection file for `target: collection` (Anki must not have it open)."""
    ankiconnect_url: str = ""
    """AnkiConnect URL for this run; empty means the `ankiconnect` resource's own."""
    prune: bool = False
    """Delete the deck's notes whose word left the list instead of tagging them `stageflow::removed`."""


def _sync_state(directory: Path) -> SyncState:
    try:
        return SyncState.model_validate_json((directory / SYNC_STATE_FILE).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return SyncState()


def _conflicts_table(report: dict) -> str:
    rows = ["| headword | field | in Anki (kept) | the pipeline's new value |", "|---|---|---|---|"]
    rows += [f"| {cell(c['headword'], 30)} | {c['field']} | {cell(c['yours'], 40)} | {cell(c['pipeline'], 40)} |"
             for c in report["conflict_details"][:12]]
    return "\n".join(rows)


@dg.asset(
    partitions_def=word_list_partitions, group_name=stage_dirs.DOMAIN, code_version="2",
    # no op-level retry: the AnkiConnect client already retries transport failures with backoff
    kinds={"anki"}, metadata=stage_dirs.ANKI_SYNC.metadata,
)
@one_line_failures
def anki_sync(
    context: dg.AssetExecutionContext, config: SyncConfig, storage: StageStore, ankiconnect: AnkiConnect,
    anki_collection: AnkiCollection, anki_deck: StageManifest,
):
    """The deck pushed into Anki: note type, media and notes (upserted by their `Key`) through
    AnkiConnect, or into a collection file with Anki's own library.

    Each field is merged three ways with what the last sync wrote (`sync_state.json`), so a field
    the user edited in Anki stays unless the pipeline's own value changed too (a conflict: the
    user's value stays, both are reported). The deck's notes whose word left the list are tagged
    `stageflow::removed` and kept (`prune` deletes them). Only materialized when asked
    (`stageflow vocab --sync`, or from the UI): every run pushes.
    """
    paths = storage.paths
    deck = stage_input(paths, anki_deck, "apkg")
    notes = stage_input(paths, anki_deck, "notes")
    if config.target == "collection" and not config.collection_path:
        raise dg.Failure("anki_sync: target `collection` needs a collection_path (an .anki2 file)", allow_retries=False)
    client = ankiconnect.with_url(config.ankiconnect_url) if config.ankiconnect_url else ankiconnect
    collection = Path(config.collection_path).expanduser().resolve() if config.target == "collection" else None
    where = f"collection {collection}" if collection else f"ankiconnect {client.url}"
    # the run id makes every sync a fresh push: Anki's state may have changed since the last one
    settings = {"target": config.target, "run": context.run_id, "prune": config.prune,
                "where": str(collection) if collection else client.url}

    def work(out: StageWriter) -> None:
        doc = DeckDoc.model_validate_json(notes.path.read_text(encoding="utf-8"))
        specs = [NoteSpec(guid=n.guid, fields=list(n.fields.values()), tags=n.tags, mod=n.mod) for n in doc.notes]
        # the deck stage recorded where each media file it packaged lives
        media = [paths.absolute(r.path) for r in anki_deck.inputs if r.kind == "media"]
        state = _sync_state(out.directory)
        base = state.targets.get(where, {})
        if collection is not None:
            result, state.targets[where] = anki_collection.sync(
                collection, deck.path, doc.deck, NOTE_TYPE, specs, media, base, prune=config.prune)
        else:
            result, state.targets[where] = client.sync(doc.deck, NOTE_TYPE, specs, media, base, prune=config.prune)
            out.details["breaker"] = client.breaker_state()
        report = result.model_dump()
        out.output("sync.json", kind="sync_report", fmt="json").write_text(json.dumps(report, indent=1), encoding="utf-8")
        out.output(SYNC_STATE_FILE, kind="sync_state", fmt="json").write_text(
            state.model_dump_json(indent=1), encoding="utf-8")
        out.details.update({k: v for k, v in report.items() if k != "failed" and v is not None},
                           failed=report.get("failed", []))
        if report.get("failed"):
            out.warnings.append(f"{len(report['failed'])} note(s) were not added")
        if report["conflicts"]:
            out.warnings.append(f"{report['conflicts']} field(s) changed both in Anki and in the pipeline: "
                                "kept the Anki value (conflict_details has both)")
            out.preview = _conflicts_table(report)

    return run_stage(context, paths, stage_dirs.ANKI_SYNC, inputs=[deck, notes], config=settings,
                     provider_versions=anki_collection.versions(), work=work)
