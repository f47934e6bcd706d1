"""AnkiConnect against a loopback fake speaking its wire format (version 6, errors as HTTP 200),
and the collection-file import with Anki's own library."""

from __future__ import annotations

from pathlib import Path

import pytest

from stageflow_assets.core.errors import ProviderError
from stageflow_assets.providers.anki import AnkiCollection, NoteSpec, write_apkg
from stageflow_assets.providers.ankiconnect import AnkiConnect, AnkiConnectError
from stageflow_assets.vocabulary.cards import NOTE_TYPE, deck_id_for, note_guid
from stageflow_assets_tests.vocabulary.fakes import FakeAnki, FakeServer

DECK = "Sync::Test"


def spec(word: str, meaning: str = "a thing", mod: int = 1_800_000_000) -> NoteSpec:
    values = {name: "" for name in NOTE_TYPE.fields}
    values.update(Key=note_guid("en", word, None), Headword=word, PartOfSpeech="noun",
                  Meanings=f"<ol><li>{meaning}</li></ol>", Audio=f"[sound:tts_en-us_{word}.mp3]")
    return NoteSpec(guid=values["Key"], fields=list(values.values()), tags=["stageflow"], mod=mod)


@pytest.fixture
def media(tmp_path) -> list[Path]:
    paths = []
    for word in ("cat", "dog"):
        path = tmp_path / f"tts_en-us_{word}.mp3"
        path.write_bytes(b"ID3 fake " + word.encode())
        paths.append(path)
    return paths


def client(url: str, **kwargs) -> AnkiConnect:
    return AnkiConnect(url=url, backoff_s=0.01, timeout_s=5, **kwargs)


def test_sync_creates_note_type_stores_media_and_upserts_by_key(media):
    fake = FakeAnki()
    with FakeServer(fake) as server:
        first, state = client(server.url).sync(DECK, NOTE_TYPE, [spec("cat"), spec("dog")], media)
        assert (first.note_type_created, first.added, first.updated, first.media_stored) == (True, 2, 0, 2)
        assert DECK in fake.decks and fake.models[NOTE_TYPE.name]["fields"] == NOTE_TYPE.fields
        assert set(fake.media) == {"tts_en-us_cat.mp3", "tts_en-us_dog.mp3"}
        assert all(r["body"]["version"] == 6 for r in server.requests)

        again, _ = client(server.url).sync(DECK, NOTE_TYPE, [spec("cat"), spec("dog", "a loyal animal")], media, state)
        assert (again.note_type_created, again.added, again.updated, again.unchanged) == (False, 0, 1, 1)
        assert (again.media_stored, again.media_already_there) == (0, 2)
        assert len(fake.notes) == 2
        dog = next(n for n in fake.notes.values() if n["fields"]["Headword"] == "dog")
        assert "loyal" in dog["fields"]["Meanings"]
        assert "templates_update" in fake.models[NOTE_TYPE.name]


def test_an_error_in_an_http_200_reply_fails_without_retry():
    with FakeServer(FakeAnki()) as server:
        with pytest.raises(AnkiConnectError, match="unsupported action"):
            client(server.url).invoke("noSuchAction")
        assert len(server.requests) == 1


def test_transport_failures_are_retried_then_succeed():
    fake = FakeAnki()
    fake.fail_next = 2
    with FakeServer(fake) as server:
        assert client(server.url, max_retries=3).invoke("version") == 6
        assert len(server.requests) == 3


def test_nothing_listening_is_one_clear_error():
    with FakeServer(FakeAnki()) as server:
        url = server.url
    with pytest.raises(ProviderError, match="did not answer version after 2 tries.*is Anki running"):
        client(url, max_retries=1).invoke("version")


def test_strict_add_notes_falls_back_to_one_by_one(media):
    """Newer AnkiConnect fails a whole `addNotes` call when one note is a duplicate: the client
    then adds note by note and reports exactly which one Anki refused."""
    fake = FakeAnki(strict_add_notes=True)
    fake.decks.add("Other")
    # a note of another note type already has dog's key as its first field: Anki's duplicate check
    fake.notes[1] = {"modelName": "Other", "fields": {"Front": spec("dog").guid}, "tags": [], "deck": "Other"}
    with FakeServer(fake) as server:
        report, state = client(server.url).sync(DECK, NOTE_TYPE, [spec("dog"), spec("eel")], media)
        actions = [r["body"]["action"] for r in server.requests]
    assert report.added == 1 and [f["headword"] for f in report.failed] == ["dog"]
    assert "duplicate" in report.failed[0]["error"]
    assert actions.count("addNotes") == 1 and actions.count("addNote") == 1
    assert set(state) == {spec("eel").guid}  # no base for a note Anki refused


def test_api_key_goes_in_the_body_only(media):
    with FakeServer(FakeAnki()) as server:
        anki = client(server.url, api_key="s3cret-key")
        anki.invoke("version")
        assert server.requests[0]["body"]["key"] == "s3cret-key"
        with pytest.raises(AnkiConnectError) as info:
            anki.invoke("noSuchAction")
    assert "s3cret" not in str(info.value) and "s3cret" not in repr(info.value.details)


def test_not_ankiconnect_is_reported():
    with FakeServer(lambda path, body, headers: (200, {"hello": "world"})) as server:
        with pytest.raises(AnkiConnectError, match="is not AnkiConnect"):
            client(server.url).invoke("version")


def test_collection_sync_new_then_update(tmp_path, media):
    apkg = tmp_path / "deck.apkg"
    notes = [spec("cat"), spec("dog")]
    write_apkg(apkg, deck_id_for(DECK), DECK, NOTE_TYPE, notes, media)
    collection = tmp_path / "col" / "user.anki2"
    first, state = AnkiCollection().sync(collection, apkg, DECK, NOTE_TYPE, notes, media)
    assert (first.added, first.updated, first.notes_in_collection, first.note_type_created) == (2, 0, 2, True)
    notes = [spec("cat"), spec("dog", "a loyal animal", mod=1_800_000_100)]
    write_apkg(apkg, deck_id_for(DECK), DECK, NOTE_TYPE, notes, media)
    second, _ = AnkiCollection().sync(collection, apkg, DECK, NOTE_TYPE, notes, media, state)
    assert (second.added, second.updated, second.unchanged, second.notes_in_collection) == (0, 1, 1, 2)
    assert second.note_type_created is False


def test_collection_path_must_be_anki2(tmp_path):
    with pytest.raises(ProviderError, match="ends in .anki2"):
        AnkiCollection().sync(tmp_path / "user.db", tmp_path / "deck.apkg", DECK, NOTE_TYPE, [], [])
