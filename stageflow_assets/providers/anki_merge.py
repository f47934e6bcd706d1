"""What a sync does to the notes already in Anki: a three-way merge per field, tags, removals.

Both ways into Anki (AnkiConnect, a collection file) plan the same way and only apply the plan
differently. `base` is what the pipeline wrote into that Anki last time; `theirs` is the note in
Anki now; `ours` is the pipeline's new value:

- theirs == ours: nothing to do;
- no base recorded (the first sync into this Anki, or a note imported from an `.apkg`): ours is
  written, as an import would;
- theirs == base: the pipeline's value changed, the user's did not: ours is written;
- ours == base: the user edited it: theirs is kept;
- both changed and differ: a conflict. The user's value is kept and the conflict reported with
  both values; the base becomes ours, so it is reported once, not at every sync.

Tags merge the same way one tag at a time, so tags the user (or Anki: `leech`) added stay.
Notes of the deck whose word left the list are tagged `stageflow::removed` and kept with their
review history; with `prune` they are deleted. A word that comes back loses the tag and is
merged like any other.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from stageflow_assets.providers.anki import NoteSpec

REMOVED_TAG = "stageflow::removed"


class AnkiNote(BaseModel):
    """A note as Anki holds it now."""

    note_id: int
    fields: dict[str, str]
    tags: list[str] = Field(default_factory=list)


class BaseNote(BaseModel):
    """What the pipeline last wrote into one note of one Anki."""

    fields: dict[str, str]
    tags: list[str] = Field(default_factory=list)


class FieldConflict(BaseModel):
    key: str
    headword: str
    field: str
    yours: str = Field(description="the value in Anki, kept")
    pipeline: str = Field(description="the pipeline's new value, not written")
    before: str = Field(description="what the pipeline wrote last time")


class SyncReport(BaseModel):
    """What one sync did, for either way into Anki."""

    target: str
    note_type_created: bool = False
    media_stored: int = 0
    media_already_there: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    kept_user_edits: int = Field(0, description="fields the user changed and the pipeline did not")
    conflicts: int = Field(0, description="fields both changed: the user's value kept")
    removed_tagged: int = Field(0, description=f"notes of the deck whose word left the list, tagged {REMOVED_TAG}")
    restored: int = Field(0, description=f"words back on the list: {REMOVED_TAG} taken off")
    pruned: int = 0
    notes_in_collection: int | None = None
    conflict_details: list[FieldConflict] = Field(default_factory=list)
    kept_edit_fields: list[str] = Field(default_factory=list, description="`headword: field`")
    removed_words: list[str] = Field(default_factory=list)
    restored_words: list[str] = Field(default_factory=list)
    pruned_words: list[str] = Field(default_factory=list)
    failed: list[dict[str, str]] = Field(default_factory=list)


class NoteChange(BaseModel):
    note_id: int
    fields: dict[str, str] = Field(default_factory=dict)
    add_tags: list[str] = Field(default_factory=list)
    remove_tags: list[str] = Field(default_factory=list)


class SyncPlan(BaseModel):
    add: list[NoteSpec] = Field(default_factory=list)
    changes: list[NoteChange] = Field(default_factory=list)
    delete: list[int] = Field(default_factory=list)
    report: SyncReport
    state: dict[str, BaseNote] = Field(description="the base for the next sync, by key")


def _has(tags: list[str], tag: str) -> bool:
    return tag.casefold() in {t.casefold() for t in tags}


def merge_tags(ours: list[str], theirs: list[str], base: list[str] | None) -> tuple[list[str], list[str]]:
    """(tags to add, tags to remove): a tag moves only where the pipeline moved it and the note did not."""
    before = base or []
    add = [t for t in ours if not _has(before, t) and not _has(theirs, t)]
    # without a base nothing is known to be the pipeline's, so nothing is taken away
    remove = [t for t in before if not _has(ours, t) and _has(theirs, t)]
    return add, remove


def search_term(prefix: str, value: str) -> str:
    """One quoted Anki search term matching `value` literally (`*`, `_`, `\\`, `"` escaped)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("*", "\\*").replace("_", "\\_")
    return f'"{prefix}:{escaped}"'


def deck_query(model: str, deck: str) -> str:
    """The notes of `model` with cards in `deck` itself (not in its subdecks)."""
    inside = search_term("deck", deck)
    return f'{search_term("note", model)} {inside} -{inside[:-1]}::*"'


def plan_sync(notes: list[NoteSpec], field_names: list[str], existing: dict[str, AnkiNote],
              deck_keys: set[str], base: dict[str, BaseNote], *, key_field: str = "Key",
              label_field: str = "Headword", prune: bool = False, target: str = "") -> SyncPlan:
    """What to write, tag and delete so Anki holds the list, keeping the user's own edits.

    `existing`: the note type's notes in Anki by key; `deck_keys`: the keys of those with cards
    in the deck; `base`: what the pipeline wrote last time, by key.
    """
    report = SyncReport(target=target)
    plan = SyncPlan(report=report, state={})
    wanted = set()
    for spec in notes:
        ours = dict(zip(field_names, spec.fields))
        key = ours[key_field]
        wanted.add(key)
        plan.state[key] = BaseNote(fields=ours, tags=list(spec.tags))
        note = existing.get(key)
        if note is None:
            plan.add.append(spec)
            continue
        before = base.get(key)
        change = NoteChange(note_id=note.note_id)
        label = note.fields.get(label_field) or ours.get(label_field, key)
        for name, value in ours.items():
            if name not in note.fields:  # a field Anki's note type lacks
                continue
            theirs = note.fields[name]
            was = before.fields.get(name) if before else None
            if theirs == value:
                continue
            if was is None or theirs == was:
                change.fields[name] = value
            elif value == was:
                report.kept_user_edits += 1
                report.kept_edit_fields.append(f"{label}: {name}")
            else:
                report.conflicts += 1
                report.conflict_details.append(FieldConflict(
                    key=key, headword=label, field=name, yours=theirs, pipeline=value, before=was))
        change.add_tags, change.remove_tags = merge_tags(list(spec.tags), note.tags, before.tags if before else None)
        if _has(note.tags, REMOVED_TAG):
            change.remove_tags.append(REMOVED_TAG)
            report.restored += 1
            report.restored_words.append(label)
        if change.fields or change.add_tags or change.remove_tags:
            plan.changes.append(change)
            report.updated += 1
        else:
            report.unchanged += 1
    for key in sorted(deck_keys - wanted, key=lambda k: existing[k].fields.get(label_field, k)):
        note = existing[key]
        label = note.fields.get(label_field, key)
        if prune:
            plan.delete.append(note.note_id)
            report.pruned += 1
            report.pruned_words.append(label)
            continue
        if not _has(note.tags, REMOVED_TAG):
            plan.changes.append(NoteChange(note_id=note.note_id, add_tags=[REMOVED_TAG]))
        report.removed_tagged += 1
        report.removed_words.append(label)
    # kept notes keep their base: a word that comes back merges against what was written before
    for key, note in base.items():
        if key not in plan.state and key in existing and not (prune and key in deck_keys):
            plan.state[key] = note
    return plan
