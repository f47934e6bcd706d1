"""Pure functions: word-list parsing, ids and GUIDs, the IPA whitelist, WordNet parsing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stageflow_assets.core.errors import BadInputError
from stageflow_assets.core.keys import KEY_PATTERN
from stageflow_assets.providers.lexicon import WordNetLexicon, parse_gloss
from stageflow_assets.providers.tts import EspeakTTS
from stageflow_assets.vocabulary.cards import MODEL_ID, NOTE_TYPE, deck_id_for, note_fields, note_guid
from stageflow_assets.vocabulary.ipa import ipa_problems, is_valid_ipa
from stageflow_assets.vocabulary.models import WordAnalysis
from stageflow_assets.vocabulary.registry import deck_key
from stageflow_assets.vocabulary.wordlist import MAX_HEADWORD_CHARS, parse_word_list


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


# --- word lists ---------------------------------------------------------------------------------


def test_text_list_comments_blanks_duplicates_and_long_lines(tmp_path):
    long_line = "x" * 10_000
    doc = parse_word_list(write(tmp_path, "w.txt", "\n".join([
        "# fruit", "  apple  ", "", "Banana # yellow", "APPLE", "ice   cream", long_line, "   ", "C#", "123",
        "<script>alert(1)</script>",
    ])))
    assert [w.headword for w in doc.words] == ["apple", "Banana", "ice cream", "C#", "<script>alert(1)</script>"]
    assert [w.line for w in doc.words] == [2, 4, 6, 9, 11]
    assert [(d.line, d.first_line, d.kept) for d in doc.duplicates] == [(5, 2, "apple")]
    bad = {b.line: b.reason for b in doc.bad_lines}
    assert bad[7].startswith("headword of 10000 characters") and str(MAX_HEADWORD_CHARS) in bad[7]
    assert bad[10] == "no letters in the headword"
    assert all(len(b.text) <= 80 for b in doc.bad_lines)
    assert doc.blank_or_comment_lines == 3


def test_csv_with_optional_columns(tmp_path):
    doc = parse_word_list(write(tmp_path, "w.csv", "Word,POS,Tags,Note\nrun,v,\"sport, verbs\",to move fast\n"
                                "run,n,,\nlead,noun,metal,\nlead,bogus,,\n\n"))
    assert [(w.headword, w.pos_hint, w.tags, w.note) for w in doc.words] == [
        ("run", "verb", ["sport", "verbs"], "to move fast"), ("lead", "noun", ["metal"], "")]
    assert [d.line for d in doc.duplicates] == [3]
    assert [b.line for b in doc.bad_lines] == [5] and "part of speech" in doc.bad_lines[0].reason


def test_csv_without_a_word_header_is_an_error(tmp_path):
    with pytest.raises(BadInputError, match="header row naming a `word` column"):
        parse_word_list(write(tmp_path, "w.csv", "apple,noun\nbanana,noun\n"))


def test_json_lists(tmp_path):
    doc = parse_word_list(write(tmp_path, "w.json", json.dumps(
        {"words": ["cat", {"word": "dog", "pos": "noun", "tags": ["pets"]}, {"nope": 1}, 42]})))
    assert [(w.headword, w.line) for w in doc.words] == [("cat", 1), ("dog", 2)]
    assert [b.line for b in doc.bad_lines] == [3, 4]
    with pytest.raises(BadInputError, match="not valid JSON"):
        parse_word_list(write(tmp_path, "bad.json", "{nope"))


@pytest.mark.parametrize("content,message", [
    (b"", "empty"),
    (b"  \n\n ", "empty"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not a UTF-8 text word list"),
    (b"caf\xe9\n", "not a UTF-8 text word list"),
    (b"# only comments\n\n123\n", "no usable headword"),
])
def test_unusable_files(tmp_path, content, message):
    with pytest.raises(BadInputError, match=message):
        parse_word_list(write(tmp_path, "w.txt", content))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(min_size=0, max_size=30), max_size=25))
def test_parsing_never_crashes_and_dedupes(tmp_path_factory, lines):
    path = tmp_path_factory.mktemp("h") / "w.txt"
    path.write_text("\n".join(lines), encoding="utf-8")
    try:
        doc = parse_word_list(path)
    except BadInputError:
        return
    folded = [w.headword.casefold() for w in doc.words]
    assert len(folded) == len(set(folded))
    assert all(w.headword == w.headword.strip() and w.headword for w in doc.words)


# --- ids ------------------------------------------------------------------------------------------


def test_ids_and_guids_are_stable_and_identity_based():
    assert deck_id_for("Spanish::Food") == deck_id_for("Spanish::Food") == 1119685679
    assert deck_id_for("Spanish::Food") != deck_id_for("Spanish Food")
    assert (1 << 30) <= deck_id_for("x") < (1 << 31) and MODEL_ID == NOTE_TYPE.model_id == 1873541629
    assert note_guid("en", "Apple", None) == note_guid("EN", "apple", None) == "u-y1mHpP[["
    assert note_guid("en", "lead", "noun") != note_guid("en", "lead", "verb")
    assert note_guid("en", "apple", None) != note_guid("es", "apple", None)
    key = deck_key("Spanish::Food")
    assert KEY_PATTERN.match(key) and key.startswith("spanish-food-") and key != deck_key("Spanish Food")


def test_fields_escape_html_and_reference_media_by_basename():
    word = WordAnalysis(key="k", headword="<script>alert(1)</script>", line=1, ipa="skɹˈɪpt", ipa_valid=True)
    fields = dict(zip(NOTE_TYPE.fields, note_fields(word, "tts_en-us_ab.mp3", None, reverse=True)))
    assert fields["Headword"] == "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert fields["Audio"] == "[sound:tts_en-us_ab.mp3]" and fields["Image"] == ""
    assert fields["Production"] == ""  # no meanings: a production card would have an empty front


# --- IPA ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ipa", ["wˈɔːɾɚ", "wˈɔntᵻd", "ɡɾˈasjəs", "prʲivʲˈet", "/həlˈoʊ/", "[t͡ʃˈiːz]", "ʃəvˈal"])
def test_ipa_accepts_espeak_output(ipa):
    assert is_valid_ipa(ipa), ipa_problems(ipa)


@pytest.mark.parametrize("ipa,problem", [
    ("(en)nɪ5θɹˈiː5(cmn)", "language-switch"), ("ni3 hao3", "digits"), ("", "empty"),
    ("kæt!", "outside the IPA"), ("k\u200dæt", "outside the IPA"), ("psst", "no vowel"),
])
def test_ipa_rejects(ipa, problem):
    assert any(problem in p for p in ipa_problems(ipa))


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=20))
def test_ipa_validation_is_total(text):
    problems = ipa_problems(text)
    assert isinstance(problems, list)
    if any(ch.isdigit() for ch in text):
        assert problems


@pytest.mark.parametrize("lang,word", [("en", "thought"), ("es", "perro"), ("ca", "gràcies"), ("de", "Brücke")])
def test_real_espeak_ipa_is_valid(lang, word):
    assert is_valid_ipa(EspeakTTS().ipa(word, lang))


# --- WordNet --------------------------------------------------------------------------------------


def test_gloss_parsing():
    assert parse_gloss('move fast; "run home"; "the children ran"') == ("move fast", ["run home", "the children ran"])
    assert parse_gloss("a domesticated animal") == ("a domesticated animal", [])


def test_wordnet_lookup_morphology_and_unknowns():
    lexicon = WordNetLexicon()
    dog = lexicon.lookup("dog", "en")
    assert dog.part_of_speech == "noun" and "verb" in dog.other_parts_of_speech
    assert dog.senses[0].examples == ["the dog barked all night"]
    assert lexicon.lookup("mice", "en").lemma == "mouse"
    assert lexicon.lookup("ran", "en").lemma == "run"
    assert lexicon.lookup("Ice Cream", "en").lemma == "ice cream"
    assert lexicon.lookup("dog", "en", "verb").senses[0].part_of_speech == "verb"
    assert lexicon.lookup("xyzzy", "en") is None
    assert lexicon.lookup("<script>", "en") is None
    assert lexicon.lookup("perro", "es") is None  # WordNet serves English only
