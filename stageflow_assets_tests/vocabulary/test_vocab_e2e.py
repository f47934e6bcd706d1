"""End to end through the real `stageflow vocab` CLI: WordNet, espeak-ng, ffmpeg, Apertium,
genanki and Anki's own library, all for real, offline.

Build a 30-word deck, import it into a fresh collection with Anki's library and check every
note; then edit two words and rebuild with `--collection`: Anki must report 2 updated notes and
no new ones, and only the two edited words may be recomputed.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from stageflow_assets.vocabulary import stage_dirs
from stageflow_assets.vocabulary.ipa import is_valid_ipa
from stageflow_assets.vocabulary.registry import deck_key
from stageflow_assets_tests.conftest import run_cli

WORDS = ("apple bread cheese water milk egg butter rice soup salt sugar coffee tea orange lemon carrot "
         "potato tomato onion garlic chicken fish meat cake honey pepper bean grape cherry juice").split()
DECK = "E2E::Food"
SOUND = re.compile(r"\[sound:([^\]]+)\]")


def manifest(stage) -> dict:
    path = Path(os.environ["STAGEFLOW_HOME"]) / stage_dirs.DOMAIN / deck_key(DECK) / stage.dir_name / "manifest.json"
    return json.loads(path.read_text())


def import_apkg(collection: Path, apkg: Path):
    from anki.collection import Collection, ImportAnkiPackageOptions, ImportAnkiPackageRequest

    col = Collection(str(collection))
    response = col.import_anki_package(ImportAnkiPackageRequest(
        package_path=str(apkg), options=ImportAnkiPackageOptions(merge_notetypes=True)))
    return col, response.log


def notes_of(col) -> dict[str, dict[str, str]]:
    return {dict(col.get_note(i).items())["Key"]: dict(col.get_note(i).items()) for i in col.find_notes("")}


@pytest.fixture(scope="module")
def first_build(tmp_path_factory):
    base = tmp_path_factory.mktemp("vocab_e2e")
    words = base / "food.txt"
    words.write_text("# thirty foods\n" + "\n".join(WORDS) + "\n", encoding="utf-8")
    result = run_cli("vocab", words, "--deck", DECK, "--lang", "en", "--native", "es", "--reverse", "--out", base / "out")
    assert result.returncode == 0, result.stderr
    return base, words, result


def test_first_build_imports_into_a_fresh_collection(first_build):
    base, _, result = first_build
    apkg = base / "out" / "e2e-food.apkg"
    assert result.value("wrote") == [str(apkg)]
    assert result.value("job") == [deck_key(DECK)]
    assert len(result.value("run")) == 1 and not result.error_lines

    col, log = import_apkg(base / "fresh.anki2", apkg)
    try:
        assert len(log.new) == 30 and col.note_count() == 30
        assert col.card_count() == 60  # recognition + production (--reverse)
        notes = notes_of(col)
        media_dir = Path(col.media.dir())
        translated = 0
        for fields in notes.values():
            for name in ("Key", "Headword", "PartOfSpeech", "Meanings", "IPA", "Audio"):
                assert fields[name].strip(), (fields["Headword"], name)
            assert is_valid_ipa(fields["IPA"]), fields
            assert fields["Production"] == "y"
            translated += bool(fields["Translation"])
            for name in SOUND.findall(fields["Audio"]):
                assert (media_dir / name).is_file() and (media_dir / name).stat().st_size > 0
        assert translated >= 25
        assert {f["Headword"] for f in notes.values()} == set(WORDS)
    finally:
        col.close()
    audio = manifest(stage_dirs.PRONUNCIATION_AUDIO)
    assert audio["details"]["synthesized"] == 30 and len(audio["outputs"]) == 31  # 30 mp3 + index
    assert manifest(stage_dirs.CARD_IMAGES)["status"] == "skipped"
    assert manifest(stage_dirs.ANKI_DECK)["details"]["images"].startswith("off")


def test_second_build_with_two_edited_words_updates_two_notes(first_build):
    base, words, _ = first_build
    collection = base / "synced.anki2"
    col, log = import_apkg(collection, base / "out" / "e2e-food.apkg")
    col.close()
    assert len(log.new) == 30

    # same identity (headwords are case-insensitive), new content: two notes change
    edited = [w.capitalize() if w in ("honey", "grape") else w for w in WORDS]
    words.write_text("\n".join(edited) + "\n", encoding="utf-8")
    result = run_cli("vocab", words, "--deck", DECK, "--native", "es", "--reverse", "--out", base / "out",
                     "--collection", collection)
    assert result.returncode == 0, result.stderr
    assert len(result.value("run")) == 2  # the deck, then the sync

    analysis = manifest(stage_dirs.WORD_ANALYSIS)["details"]
    assert (analysis["computed_words"], analysis["reused_words"]) == (2, 28)
    audio = manifest(stage_dirs.PRONUNCIATION_AUDIO)["details"]
    assert (audio["synthesized"], audio["reused_files"]) == (2, 28)
    deck = manifest(stage_dirs.ANKI_DECK)["details"]
    assert (deck["new_notes"], deck["changed_notes"], deck["unchanged_notes"]) == (0, 2, 28)
    sync = manifest(stage_dirs.ANKI_SYNC)["details"]
    assert (sync["added"], sync["updated"], sync["notes_in_collection"]) == (0, 2, 30)

    from anki.collection import Collection

    col = Collection(str(collection))
    try:
        heads = {f["Headword"] for f in notes_of(col).values()}
        assert {"Honey", "Grape"} <= heads and "honey" not in heads and col.note_count() == 30
    finally:
        col.close()


def test_rebuilding_an_unchanged_list_reuses_everything(first_build):
    base, words, _ = first_build
    result = run_cli("vocab", words, "--deck", DECK, "--native", "es", "--reverse", "--out", base / "out")
    assert result.returncode == 0, result.stderr
    assert "deck reused" in result.stdout
    for stage in (stage_dirs.WORD_LIST, stage_dirs.WORD_ANALYSIS, stage_dirs.PRONUNCIATION_AUDIO, stage_dirs.ANKI_DECK):
        assert manifest(stage)["reused"], stage
