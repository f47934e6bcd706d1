"""Anki decks: `.apkg` files with genanki, and imports into a collection with Anki's own library.

`mod` timestamps are per note, not per build (genanki stamps every note with the build time,
so each re-import would overwrite the user's edits, genanki #157): a note whose content did not
change keeps its old `mod`, and Anki's "update if newer" import leaves it alone.
"""

from __future__ import annotations

import time
import warnings
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
import genanki
from pydantic import BaseModel, Field

from stageflow_assets.core.errors import ProviderError

if TYPE_CHECKING:  # anki_merge builds on NoteSpec below
    from stageflow_assets.providers.anki_merge import SyncReport


class CardTemplate(BaseModel):
    name: str
    front: str
    back: str


class NoteType(BaseModel):
    """A note type Anki keeps forever under `model_id`: never change the id, only `mod`."""

    model_id: int
    name: str
    fields: list[str]
    templates: list[CardTemplate]
    css: str = ""
    sort_field_index: int = 0
    mod: int = Field(description="seconds; bump with the templates/CSS so imports update them")


class NoteSpec(BaseModel):
    guid: str
    fields: list[str]
    tags: list[str] = Field(default_factory=list)
    mod: int


class _Model(genanki.Model):
    def __init__(self, spec: NoteType) -> None:
        super().__init__(
            spec.model_id, spec.name, fields=[{"name": f} for f in spec.fields],
            templates=[{"name": t.name, "qfmt": t.front, "afmt": t.back} for t in spec.templates],
            css=spec.css, sort_field_index=spec.sort_field_index,
        )
        self._mod = spec.mod

    def to_json(self, timestamp, deck_id):  # noqa: ARG002 - the note type's own mod, not the build's
        return super().to_json(self._mod, deck_id)


class _Note(genanki.Note):
    def __init__(self, model: _Model, spec: NoteSpec) -> None:
        super().__init__(model=model, fields=spec.fields, tags=spec.tags, guid=spec.guid)
        self._mod = spec.mod

    def write_to_db(self, cursor, timestamp, deck_id, id_gen):  # noqa: ARG002
        super().write_to_db(cursor, self._mod, deck_id, id_gen)


def genanki_version() -> str:
    return metadata.version("genanki")


def anki_version() -> str:
    return metadata.version("anki")


def write_apkg(target: Path, deck_id: int, deck_name: str, note_type: NoteType,
               notes: list[NoteSpec], media: list[Path], description: str = "") -> None:
    """Write the deck to `target`; media are referenced on cards by basename only."""
    model = _Model(note_type)
    deck = genanki.Deck(deck_id, deck_name, description)
    deck.add_model(model)
    for spec in notes:
        deck.add_note(_Note(model, spec))
    package = genanki.Package(deck, media_files=[str(p) for p in media])
    with warnings.catch_warnings():
        # the fields are escaped by us; genanki's HTML heuristics flag harmless `&lt;` text
        warnings.filterwarnings("ignore", module="genanki")
        # the build time only seeds new note/card ids; each note carries its own mod
        package.write_to_file(str(target), timestamp=time.time())


class AnkiCollection(dg.ConfigurableResource):
    """Syncs a deck into a collection file (`.anki2`) with Anki's own Rust-backed library.

    The `.apkg` import adds the new notes (by GUID), the note type and their media; it leaves the
    notes already there alone, and the merge of providers/anki_merge.py updates, tags or deletes
    those, as the AnkiConnect sync does.
    """

    merge_notetypes: bool = True

    def versions(self) -> dict[str, str]:
        return {"anki": anki_version()}

    def sync(self, collection: Path, apkg: Path, deck: str, note_type: NoteType, notes: list[NoteSpec],
             media: list[Path], base: dict | None = None, prune: bool = False,
             key_field: str = "Key") -> tuple["SyncReport", dict]:
        """Returns the report and the base for the next sync (by key, what was written)."""
        from stageflow_assets.providers.anki_merge import deck_query, plan_sync

        collection = collection.expanduser().resolve()
        if collection.suffix != ".anki2":
            raise ProviderError(f"{collection}: an Anki collection file ends in .anki2", path=str(collection))
        collection.parent.mkdir(parents=True, exist_ok=True)
        col = _open(collection)
        try:
            existing = _notes_by_key(col, note_type.name, key_field)
            in_deck = set(col.find_notes(deck_query(note_type.name, deck)))
            plan = plan_sync(notes, note_type.fields, existing,
                             {key for key, note in existing.items() if note.note_id in in_deck}, base or {},
                             key_field=key_field, label_field=note_type.fields[note_type.sort_field_index],
                             prune=prune, target=str(collection))
            report = plan.report
            report.note_type_created = col.models.get(note_type.model_id) is None
            present = {p.name for p in media if col.media.have(p.name)}
            self._import(col, apkg)
            # the import copies the media of the notes it adds; merged notes may need others
            for path in media:
                if not col.media.have(path.name):
                    col.media.add_file(str(path))
            report.media_stored, report.media_already_there = len(media) - len(present), len(present)
            _apply(col, plan)
            arrived = _notes_by_key(col, note_type.name, key_field)
            for spec in plan.add:
                fields = dict(zip(note_type.fields, spec.fields))
                if fields[key_field] in arrived:
                    report.added += 1
                else:
                    plan.state.pop(fields[key_field], None)
                    report.failed.append({"key": fields[key_field], "headword": fields.get("Headword", ""),
                                          "error": "the .apkg import did not add it"})
            report.notes_in_collection = col.note_count()
            return report, plan.state
        finally:
            col.close()

    def _import(self, col, apkg: Path) -> None:
        from anki.collection import ImportAnkiPackageOptions, ImportAnkiPackageRequest
        from anki.import_export_pb2 import ImportAnkiPackageUpdateCondition as Condition

        options = ImportAnkiPackageOptions(
            merge_notetypes=self.merge_notetypes,
            update_notes=Condition.IMPORT_ANKI_PACKAGE_UPDATE_CONDITION_NEVER,  # the merge's job
            update_notetypes=Condition.IMPORT_ANKI_PACKAGE_UPDATE_CONDITION_IF_NEWER,
            with_scheduling=False, with_deck_configs=False,
        )
        col.import_anki_package(ImportAnkiPackageRequest(package_path=str(apkg), options=options))


def _open(collection: Path):
    from anki.collection import Collection

    try:
        return Collection(str(collection))
    except Exception as exc:  # the backend raises its own DBError types
        raise ProviderError(f"{collection}: cannot open the collection ({exc}); close Anki "
                            "or sync through AnkiConnect instead", path=str(collection)) from exc


def _notes_by_key(col, model: str, key_field: str) -> dict:
    from stageflow_assets.providers.anki_merge import AnkiNote, search_term

    found = {}
    for note_id in col.find_notes(search_term("note", model)):
        note = col.get_note(note_id)
        fields = dict(note.items())
        found[fields.get(key_field, "")] = AnkiNote(note_id=note_id, fields=fields, tags=list(note.tags))
    return found


def _apply(col, plan) -> None:
    changed = []
    for change in plan.changes:
        note = col.get_note(change.note_id)
        for name, value in change.fields.items():
            note[name] = value
        for tag in change.add_tags:
            note.add_tag(tag)
        for tag in change.remove_tags:
            note.remove_tag(tag)
        changed.append(note)
    if changed:
        col.update_notes(changed)
    if plan.delete:
        col.remove_notes(plan.delete)
