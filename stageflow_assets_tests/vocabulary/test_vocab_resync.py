"""Syncing again: the user's edits survive, conflicts are reported, removed words are tagged,
pruned or restored. Through AnkiConnect (the loopback fake) and into a real collection file
with Anki's own library, the same cases for both."""

from __future__ import annotations

from pathlib import Path

import pytest

from stageflow_assets.providers.anki import AnkiCollection, NoteSpec, write_apkg
from stageflow_assets.providers.anki_merge import REMOVED_TAG, BaseNote, AnkiNote, plan_sync
from stageflow_assets.providers.ankiconnect import AnkiConnect
from stageflow_assets.vocabulary.cards import NOTE_TYPE, deck_id_for, note_guid
from stageflow_assets_tests.vocabulary.fakes import FakeAnki, FakeServer

DECK = "Resync::Te_st"  # `_` is a wildcard in Anki's search: the deck's own notes only


def spec(word: str, tags: tuple[str, ...] = ("stageflow",), **fields: str) -> NoteSpec:
    values = {name: "" for name in NOTE_TYPE.fields}
    values.update(Key=note_guid("en", word, None), Headword=word, PartOfSpeech="noun",
                  Meanings=f"<ol><li>a {word}</li></ol>", Translation=f"{word}-es")
    values.update(fields)
    return NoteSpec(guid=values["Key"], fields=list(values.values()), tags=list(tags), mod=1_800_000_000)


class AnkiConnectSide:
    """The sync through AnkiConnect, and the user's hand in Anki (the fake's notes)."""

    def __init__(self, server: FakeServer, fake: FakeAnki, tmp_path: Path) -> None:
        self.fake, self.client = fake, AnkiConnect(url=server.url, backoff_s=0.01, timeout_s=5)

    def sync(self, notes, state, prune=False):
        return self.client.sync(DECK, NOTE_TYPE, notes, [], state, prune=prune)

    def _id(self, word):
        return next(i for i, n in self.fake.notes.items() if n["fields"]["Headword"] == word)

    def field(self, word, name):
        return self.fake.notes[self._id(word)]["fields"][name]

    def edit(self, word, name, value):
        self.fake.notes[self._id(word)]["fields"][name] = value

    def tags(self, word):
        return self.fake.notes[self._id(word)]["tags"]

    def add_tag(self, word, tag):
        self.tags(word).append(tag)

    def review(self, word):
        self.fake.notes[self._id(word)]["reviews"] = 3  # the fake's stand-in for a card's history

    def history(self, word):
        return self.fake.notes[self._id(word)].get("reviews", 0)

    def note_id(self, word):
        return self._id(word)

    def words(self):
        return sorted(n["fields"]["Headword"] for n in self.fake.notes.values() if n["modelName"] == NOTE_TYPE.name)

    def other_deck_note(self, deck, word):
        self.client.sync(deck, NOTE_TYPE, [spec(word)], [])


class CollectionSide:
    """The sync into a collection file, and the user's hand in it (Anki's own library)."""

    def __init__(self, server, fake, tmp_path: Path) -> None:
        self.tmp, self.path = tmp_path, tmp_path / "user.anki2"

    def _apkg(self, deck, notes):
        apkg = self.tmp / "deck.apkg"
        write_apkg(apkg, deck_id_for(deck), deck, NOTE_TYPE, notes, [])
        return apkg

    def sync(self, notes, state, prune=False):
        return AnkiCollection().sync(self.path, self._apkg(DECK, notes), DECK, NOTE_TYPE, notes, [], state,
                                     prune=prune)

    def _open(self):
        from anki.collection import Collection

        return Collection(str(self.path))

    def _with_note(self, word, change=None):
        col = self._open()
        try:
            note = col.get_note(next(i for i in col.find_notes(f'"Headword:{word}"')))
            if change is None:
                return note
            change(col, note)
            col.update_note(note)
            return note
        finally:
            col.close()

    def field(self, word, name):
        return self._with_note(word)[name]

    def edit(self, word, name, value):
        self._with_note(word, lambda col, note: note.__setitem__(name, value))

    def tags(self, word):
        return self._with_note(word).tags

    def add_tag(self, word, tag):
        self._with_note(word, lambda col, note: note.add_tag(tag))

    def review(self, word):
        def answer(col, note):
            card = note.cards()[0]
            card.start_timer()
            col.sched.answerCard(card, 3)
        self._with_note(word, answer)

    def history(self, word):
        col = self._open()
        try:
            card = col.get_note(next(i for i in col.find_notes(f'"Headword:{word}"'))).cards()[0]
            reviews = col.db.scalar("select count() from revlog where cid = ?", card.id)
            return reviews if card.type != 0 else 0  # a new card again would have lost its scheduling
        finally:
            col.close()

    def note_id(self, word):
        return self._with_note(word).id

    def words(self):
        col = self._open()
        try:
            return sorted(col.get_note(i)["Headword"] for i in col.find_notes(f'"note:{NOTE_TYPE.name}"'))
        finally:
            col.close()

    def other_deck_note(self, deck, word):
        AnkiCollection().sync(self.path, self._apkg(deck, [spec(word)]), deck, NOTE_TYPE, [spec(word)], [])


@pytest.fixture(params=["ankiconnect", "collection"])
def anki(request, tmp_path):
    fake = FakeAnki()
    with FakeServer(fake) as server:
        side = AnkiConnectSide if request.param == "ankiconnect" else CollectionSide
        yield side(server, fake, tmp_path)


def test_the_users_edit_survives_a_resync_of_the_same_list(anki):
    _, state = anki.sync([spec("cat"), spec("dog")], {})
    anki.edit("cat", "Meanings", "<ol><li>my own words</li></ol>")
    report, state = anki.sync([spec("cat"), spec("dog")], state)
    assert anki.field("cat", "Meanings") == "<ol><li>my own words</li></ol>"
    assert (report.kept_user_edits, report.conflicts, report.updated, report.unchanged) == (1, 0, 0, 2)
    assert report.kept_edit_fields == ["cat: Meanings"]

    # the pipeline changes another field of the same note: that one is written, the edit stays
    report, _ = anki.sync([spec("cat", IPA="kˈæt"), spec("dog")], state)
    assert anki.field("cat", "IPA") == "kˈæt" and anki.field("cat", "Meanings") == "<ol><li>my own words</li></ol>"
    assert (report.updated, report.kept_user_edits, report.conflicts) == (1, 1, 0)


def test_a_field_changed_on_both_sides_is_a_reported_conflict_and_the_users_value_stays(anki):
    _, state = anki.sync([spec("cat"), spec("dog")], {})
    anki.edit("cat", "Translation", "gatito")
    report, state = anki.sync([spec("cat", Translation="gat"), spec("dog", Translation="gos")], state)
    assert anki.field("cat", "Translation") == "gatito"
    assert anki.field("dog", "Translation") == "gos"  # not edited by the user: the new value
    assert (report.conflicts, report.updated) == (1, 1)
    [conflict] = report.conflict_details
    assert (conflict.headword, conflict.field, conflict.yours, conflict.pipeline, conflict.before) == (
        "cat", "Translation", "gatito", "gat", "cat-es")

    # reported once: the same list again keeps the edit quietly
    report, _ = anki.sync([spec("cat", Translation="gat"), spec("dog", Translation="gos")], state)
    assert (report.conflicts, report.kept_user_edits) == (0, 1) and anki.field("cat", "Translation") == "gatito"


def test_a_removed_word_is_tagged_kept_with_its_history_restored_then_pruned(anki):
    anki.other_deck_note("Resync::TeXst", "owl")  # a deck the `_` wildcard would also match
    anki.other_deck_note(DECK + "::Sub", "yak")  # a subdeck: not the deck's own
    _, state = anki.sync([spec("cat"), spec("dog"), spec("eel")], {})
    anki.review("cat")
    anki.add_tag("dog", "my-own-tag")
    cat_id = anki.note_id("cat")

    report, state = anki.sync([spec("dog"), spec("eel")], state)
    assert report.removed_words == ["cat"] and report.removed_tagged == 1
    assert REMOVED_TAG in anki.tags("cat") and anki.note_id("cat") == cat_id
    assert anki.history("cat") > 0
    assert "my-own-tag" in anki.tags("dog") and REMOVED_TAG not in anki.tags("dog")
    assert REMOVED_TAG not in anki.tags("owl") and REMOVED_TAG not in anki.tags("yak")

    # back on the list, with a meaning the pipeline changed meanwhile: untagged and refreshed
    report, state = anki.sync([spec("cat", Meanings="<ol><li>a small feline</li></ol>"), spec("dog"),
                               spec("eel")], state)
    assert report.restored_words == ["cat"] and REMOVED_TAG not in anki.tags("cat")
    assert anki.field("cat", "Meanings") == "<ol><li>a small feline</li></ol>" and anki.history("cat") > 0

    report, state = anki.sync([spec("dog"), spec("eel")], state, prune=True)
    assert report.pruned_words == ["cat"] and report.removed_tagged == 0
    assert anki.words() == ["dog", "eel", "owl", "yak"]
    assert note_guid("en", "cat", None) not in state


def test_pipeline_tags_move_the_users_stay(anki):
    _, state = anki.sync([spec("cat", tags=("stageflow", "animals"))], {})
    anki.add_tag("cat", "leech")
    anki.sync([spec("cat", tags=("stageflow", "pets"))], state)
    assert sorted(anki.tags("cat")) == ["leech", "pets", "stageflow"]


def test_without_a_base_the_pipeline_value_is_written():
    """The first sync into an Anki (or after an .apkg import) knows no earlier value: it writes
    the pipeline's values, as an import would, and the merge starts from there."""
    ours = spec("cat", Meanings="new")
    note = AnkiNote(note_id=7, fields=dict(zip(NOTE_TYPE.fields, spec("cat", Meanings="old").fields)),
                    tags=["stageflow"])
    plan = plan_sync([ours], NOTE_TYPE.fields, {ours.guid: note}, set(), {})
    assert [c.fields for c in plan.changes] == [{"Meanings": "new"}]
    base = {ours.guid: BaseNote(fields=dict(zip(NOTE_TYPE.fields, spec("cat", Meanings="older").fields)))}
    plan = plan_sync([ours], NOTE_TYPE.fields, {ours.guid: note}, set(), base)
    assert plan.changes == [] and plan.report.conflicts == 1
