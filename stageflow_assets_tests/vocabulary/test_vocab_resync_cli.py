"""Re-syncing an edited list into a collection file through the real `stageflow vocab` CLI
(WordNet, espeak-ng, Apertium, genanki, Anki's own library): the user's edits and review history
survive, a changed translation on an edited field is a conflict, a removed word is tagged, reported
by the .apkg build, and deleted with --prune."""

from __future__ import annotations

import json
import os
from pathlib import Path

from stageflow_assets.providers.anki_merge import REMOVED_TAG
from stageflow_assets.vocabulary import stage_dirs
from stageflow_assets.vocabulary.registry import deck_key
from stageflow_assets_tests.conftest import run_cli

DECK = "Resync::Food"


def details(stage) -> dict:
    path = Path(os.environ["STAGEFLOW_HOME"]) / stage_dirs.DOMAIN / deck_key(DECK) / stage.dir_name / "manifest.json"
    return json.loads(path.read_text())["details"]


class Collection:
    def __init__(self, path: Path) -> None:
        from anki.collection import Collection as AnkiCollection

        self.col = AnkiCollection(str(path))

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.col.close()

    def note(self, word):
        ids = self.col.find_notes(f'"Headword:{word}"')
        return self.col.get_note(ids[0]) if ids else None


def test_resync_keeps_edits_reports_conflicts_tags_and_prunes_removed_words(tmp_path):
    words, collection = tmp_path / "food.txt", tmp_path / "user.anki2"
    words.write_text("apple\nbread\ncheese\n", encoding="utf-8")
    result = run_cli("vocab", words, "--deck", DECK, "--native", "es", "--collection", collection)
    assert result.returncode == 0, result.stderr
    assert details(stage_dirs.ANKI_SYNC)["added"] == 3

    with Collection(collection) as anki:
        apple, bread = anki.note("apple"), anki.note("bread")
        spanish_bread = bread["Translation"]
        apple["Translation"], bread["Meanings"] = "manzanita", "<ol><li>what I bake on Sundays</li></ol>"
        anki.col.update_notes([apple, bread])
        card = anki.note("cheese").cards()[0]
        card.start_timer()
        anki.col.sched.answerCard(card, 3)
        cheese_card = card.id

    # the .apkg path cannot touch the user's Anki: it reports the word that left
    words.write_text("apple\nbread\n", encoding="utf-8")
    result = run_cli("vocab", words, "--deck", DECK, "--native", "es", "--out", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    assert result.value("removed") == ["1 words left the list since the last build "
                                       f"(sync to tag their notes {REMOVED_TAG}): cheese"]
    assert details(stage_dirs.ANKI_DECK)["removed_words"] == ["cheese"]

    # Catalan now: every translation changes; apple's was edited by the user (a conflict)
    result = run_cli("vocab", words, "--deck", DECK, "--native", "ca", "--collection", collection)
    assert result.returncode == 0, result.stderr
    assert result.value("conflict") == ["apple: Translation changed in Anki and in the list; kept yours "
                                        "(both values in the sync's conflict_details)"]
    assert result.value("kept") == ["1 field(s) you edited in Anki"]
    assert result.value("removed")[0].startswith(f"1 words left the list; their notes are tagged {REMOVED_TAG}")
    synced = details(stage_dirs.ANKI_SYNC)
    assert (synced["conflicts"], synced["kept_user_edits"], synced["removed_tagged"]) == (1, 1, 1)
    [conflict] = synced["conflict_details"]
    assert (conflict["yours"], conflict["before"]) == ("manzanita", "manzana")
    assert conflict["pipeline"] not in ("", "manzana", "manzanita")
    with Collection(collection) as anki:
        apple, bread, cheese = anki.note("apple"), anki.note("bread"), anki.note("cheese")
        assert apple["Translation"] == "manzanita"
        assert bread["Meanings"] == "<ol><li>what I bake on Sundays</li></ol>"
        assert bread["Translation"] not in ("", spanish_bread)  # not edited: the Catalan value
        assert cheese.has_tag(REMOVED_TAG) and cheese.cards()[0].id == cheese_card
        assert anki.col.db.scalar("select count() from revlog where cid = ?", cheese_card) == 1

    result = run_cli("vocab", words, "--deck", DECK, "--native", "ca", "--collection", collection, "--prune")
    assert result.returncode == 0, result.stderr
    assert result.value("pruned") == ["1 notes deleted: cheese"]
    with Collection(collection) as anki:
        assert anki.note("cheese") is None and anki.col.note_count() == 2
        assert anki.note("apple")["Translation"] == "manzanita"

    result = run_cli("vocab", words, "--deck", DECK, "--prune")
    assert result.returncode == 2 and "use it with --sync or --collection" in result.error_lines[0]
