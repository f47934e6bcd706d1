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
from typing import Literal

import dagster as dg
import genanki
from pydantic import BaseModel, Field

from stageflow_assets.core.errors import ProviderError


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


class ImportCounts(BaseModel):
    new: int
    updated: int
    duplicate: int
    conflicting: int
    notes_in_collection: int
    collection: str


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
    """Imports a deck into a collection file (`.anki2`) with Anki's own Rust-backed library."""

    update_notes: Literal["if_newer", "always", "never"] = "if_newer"
    merge_notetypes: bool = True

    def versions(self) -> dict[str, str]:
        return {"anki": anki_version()}

    def import_package(self, collection: Path, apkg: Path) -> ImportCounts:
        from anki.collection import Collection, ImportAnkiPackageOptions, ImportAnkiPackageRequest
        from anki.import_export_pb2 import ImportAnkiPackageUpdateCondition as Condition

        condition = getattr(Condition, f"IMPORT_ANKI_PACKAGE_UPDATE_CONDITION_{self.update_notes.upper()}")
        collection = collection.expanduser().resolve()
        if collection.suffix != ".anki2":
            raise ProviderError(f"{collection}: an Anki collection file ends in .anki2", path=str(collection))
        collection.parent.mkdir(parents=True, exist_ok=True)
        try:
            col = Collection(str(collection))
        except Exception as exc:  # the backend raises its own DBError types
            raise ProviderError(f"{collection}: cannot open the collection ({exc}); close Anki "
                                "or sync through AnkiConnect instead", path=str(collection)) from exc
        try:
            options = ImportAnkiPackageOptions(
                merge_notetypes=self.merge_notetypes, update_notes=condition,
                update_notetypes=condition, with_scheduling=False, with_deck_configs=False,
            )
            response = col.import_anki_package(ImportAnkiPackageRequest(package_path=str(apkg), options=options))
            log = response.log
            return ImportCounts(new=len(log.new), updated=len(log.updated), duplicate=len(log.duplicate),
                                conflicting=len(log.conflicting), notes_in_collection=col.note_count(),
                                collection=str(collection))
        finally:
            col.close()
