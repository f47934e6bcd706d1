"""Headwords written with a marker (`to borrow`, `an apple`): looked up, transcribed and spoken as
the word after it, the card keeping what was written. Through the real `stageflow vocab` CLI
(WordNet, espeak-ng, Apertium, genanki) and into a collection with Anki's own library."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from stageflow_assets.providers.lexicon import WordNetLexicon
from stageflow_assets.providers.translate import ApertiumTranslator
from stageflow_assets.providers.tts import EspeakTTS
from stageflow_assets.vocabulary import stage_dirs
from stageflow_assets.vocabulary.headwords import Marked, marker_split
from stageflow_assets.vocabulary.registry import deck_key
from stageflow_assets_tests.conftest import run_cli
from stageflow_assets_tests.vocabulary.test_vocab_e2e import import_apkg, notes_of

DECK = "Markers::Verbs"


@pytest.mark.parametrize("headword,language,hint,expected", [
    ("to borrow", "en", None, Marked("to", "borrow", "verb")),
    ("To look after", "en", "verb", Marked("To", "look after", "verb")),
    ("an apple", "en", None, Marked("an", "apple", "noun")),
    ("The weather", "en", "noun", Marked("The", "weather", "noun")),
    ("to borrow", "en", "noun", None),  # the hint says it is no verb: `to` marks nothing
    ("toast", "en", None, None),
    ("to", "en", None, None),
    ("to 42", "en", None, None),
    ("a", "en", None, None),
    ("to borrow", "es", None, None),  # English markers only
])
def test_marker_split(headword, language, hint, expected):
    assert marker_split(headword, language, hint) == expected


def analysis_rows() -> dict[str, dict]:
    path = (Path(os.environ["STAGEFLOW_HOME"]) / stage_dirs.DOMAIN / deck_key(DECK) / stage_dirs.WORD_ANALYSIS.dir_name
            / "analysis.json")
    return {w["headword"]: w for w in json.loads(path.read_text())["words"]}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    base = tmp_path_factory.mktemp("markers")
    words = base / "verbs.txt"
    words.write_text("to borrow\nborrow\nan apple\na lot\nto xyzzy\n", encoding="utf-8")
    result = run_cli("vocab", words, "--deck", DECK, "--native", "es", "--out", base / "out")
    assert result.returncode == 0, result.stderr
    return base, result


def test_to_borrow_is_the_verb_borrow_on_a_card_that_says_to_borrow(built):
    base, _ = built
    rows = analysis_rows()
    verb = WordNetLexicon().lookup("borrow", "en", "verb")
    row = rows["to borrow"]
    assert (row["lookup_form"], row["part_of_speech"], row["lemma"]) == ("borrow", "verb", "borrow")
    assert [s["definition"] for s in row["senses"]] == [s.definition for s in verb.senses]  # the verb's meanings
    assert row["ipa"] == EspeakTTS().ipa("borrow", "en") == rows["borrow"]["ipa"]  # /bˈɑːɹoʊ/, not /tə bˈɑːɹoʊ/
    # the verb's infinitive from Apertium's dictionaries: its sentence translation of
    # "to borrow" reads `to` as a preposition ("Para tomar prestado")
    assert row["translation"] == ApertiumTranslator().infinitives(["borrow"], "en", "es")[0] == "tomar prestado"
    assert not row["issues"]

    audio = json.loads((Path(os.environ["STAGEFLOW_HOME"]) / stage_dirs.DOMAIN / deck_key(DECK)
                        / stage_dirs.PRONUNCIATION_AUDIO.dir_name / "audio.json").read_text())
    files = {i["headword"]: i["file"] for i in audio["items"]}
    assert files["to borrow"] == files["borrow"] == EspeakTTS().media_name("borrow", "en")  # spoken: `borrow`

    col, log = import_apkg(base / "markers.anki2", base / "out" / "markers-verbs.apkg")
    try:
        notes = {f["Headword"]: f for f in notes_of(col).values()}
        card = notes["to borrow"]  # the written form stays on the card
        assert card["PartOfSpeech"] == "verb" and "get temporarily" in card["Meanings"]
        assert card["IPA"] == row["ipa"] and card["Translation"] == "tomar prestado"
        assert card["Audio"] == f"[sound:{files['borrow']}]"
        assert (Path(col.media.dir()) / files["borrow"]).stat().st_size > 0
        assert len(log.new) == 5
    finally:
        col.close()


def test_articles_mark_nouns_and_whole_entries_stay_whole(built):
    rows = analysis_rows()
    apple = rows["an apple"]
    assert (apple["lookup_form"], apple["part_of_speech"]) == ("apple", "noun")
    assert apple["ipa"] == EspeakTTS().ipa("apple", "en")
    assert apple["translation"] == "una manzana"  # the written form: the article shows the gender
    # `a lot` is a WordNet entry itself: nothing taken off
    assert (rows["a lot"]["lookup_form"], rows["a lot"]["part_of_speech"]) == ("", "adverb")
    # an unknown word after a marker: no meanings, and the headword as written is what is spoken
    assert rows["to xyzzy"]["lookup_form"] == "" and rows["to xyzzy"]["issues"][0] == "not in the lexicon"
    assert rows["to xyzzy"]["ipa"] == EspeakTTS().ipa("to xyzzy", "en")


def test_infinitives_from_apertium_dictionaries():
    translator = ApertiumTranslator()
    assert translator.infinitives(["borrow", "have", "look after", "xyzzy", "C#"], "en", "es") == [
        "tomar prestado", "tener", "vigilar", "", ""]
    assert translator.infinitives(["borrow"], "en", "ca") == ["manllevar"]
