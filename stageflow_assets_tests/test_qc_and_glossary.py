import pytest

from stageflow_assets.core.errors import BadInputError
from stageflow_assets.subtitles import glossary, qc
from stageflow_assets.subtitles.rules import SubtitleRules
from stageflow_assets.providers.translate import ApertiumTranslator

RULES = SubtitleRules()


def _cue(i, start, end, *lines):
    return qc.QcCue(i, start, end, list(lines))


def test_qc_names_offending_cues_per_rule():
    cues = [
        _cue(1, 0.0, 2.0, "A fine first line."),
        _cue(2, 1.5, 3.0, "Overlaps the first one."),
        _cue(3, 3.0, 3.2, ""),
        _cue(4, 4.0, 12.0, "x" * 50, "two", "three"),
        _cue(5, 12.2, 13.0, "Far too many characters for so short a cue"),
        _cue(6, 20.0, 22.0, "Thank you for watching!"),
    ]
    found = qc.violations(cues, "en", RULES, 25.0, unknown_words=["Dashwood"], missing_terms={2: ["Dagster"]})
    by_rule = {rule: [v.get("cue") for v in items] for rule, items in found.items()}
    assert by_rule["overlap"] == [2]
    assert by_rule["empty"] == [3]
    assert 3 in by_rule["duration"] and 4 in by_rule["duration"]
    assert by_rule["line_length"] == [4] and by_rule["line_count"] == [4]
    assert 5 in by_rule["reading_speed"]
    assert by_rule["frame_gap"] == [2, 4]  # after cue 2: 0 frames; after cue 4: 5 frames
    assert by_rule["phantom_phrases"] == [6]
    assert found["unknown_words"] == [{"words": ["Dashwood"]}]
    assert found["glossary"] == [{"cue": 2, "missing_terms": ["Dagster"]}]
    assert qc.counts(found)["overlap"] == 1


def test_reading_speed_per_language_and_user_override():
    cue = [_cue(1, 0.0, 2.0, "Diecinueve caracteres por seg")]  # 29 chars in 2 s = 14.5 cps
    assert not qc.violations(cue, "es", RULES, 25)["reading_speed"]
    assert qc.violations(cue, "ja", RULES, 25)["reading_speed"]  # Japanese: 4 cps
    strict = RULES.model_copy(update={"reading_speed_cps": {"es": 10}})
    assert qc.violations(cue, "es", strict, 25)["reading_speed"]


def test_repeated_ngrams_flag_whisper_loops():
    cues = [_cue(i, i * 2.0, i * 2.0 + 1.5, "I don't know I don't know I don't know") for i in range(1, 2)]
    assert qc.violations(cues, "en", RULES, 25)["repeated_ngrams"]


def test_glossary_csv_parsing_and_errors(tmp_path):
    good = tmp_path / "g.csv"
    good.write_text("source,target_language,target\nDagster,es,Dagster\npipeline,ES,canalización\n# note\n\n")
    entries = glossary.load_glossary(good)
    assert glossary.for_language(entries, "es") == {"Dagster": "Dagster", "pipeline": "canalización"}
    bad = tmp_path / "bad.csv"
    bad.write_text("Dagster,es,Dagster\nonly two,cells\n")
    with pytest.raises(BadInputError, match="bad.csv line 2"):
        glossary.load_glossary(bad)


def test_glossary_terms_are_forced_through_apertium():
    terms = {"pipeline": "canalización", "Dagster": "Dagster"}
    lines = ["The Dagster pipeline is fast.", "A pipeline of assets."]
    protected, placeholders = glossary.protect(lines, terms)
    out, unknown = ApertiumTranslator().translate(protected, "en", "es")
    restored = glossary.restore(out, placeholders)
    assert "canalización" in restored[0] and "Dagster" in restored[0]
    assert "canalización" in restored[1]
    assert glossary.missing_terms(lines, restored, terms) == {}
    assert glossary.missing_terms(lines, ["El Dagster es rápido.", "x"], terms) == {1: ["canalización"], 2: ["canalización"]}


def test_installed_apertium_pairs_are_what_apertium_lists(tmp_path, monkeypatch):
    """The pairs are read from the script's data dir (no process); they must equal `apertium -l`."""
    import subprocess

    from stageflow_assets.providers import translate

    listed = frozenset(subprocess.run(["apertium", "-l"], capture_output=True, text=True, check=True).stdout.split())
    translate._modes.cache_clear()
    assert translate._modes("apertium") == listed
    assert {"eng-spa", "eng-cat"} <= listed
    assert ApertiumTranslator().mode_for("en", "ca") == "eng-cat"
    # a binary that is not the apertium script is asked with `-l`
    other = tmp_path / "other-apertium"
    other.write_text("#!/bin/sh\necho '  xxx-yyy'\n")
    other.chmod(0o755)
    assert translate._modes(str(other)) == frozenset({"xxx-yyy"})
    # and APERTIUM_DATADIR is honoured as the script honours it
    (tmp_path / "data" / "modes").mkdir(parents=True)
    (tmp_path / "data" / "modes" / "eng-zzz.mode").write_text("")
    monkeypatch.setenv("APERTIUM_DATADIR", str(tmp_path / "data"))
    translate._modes.cache_clear()
    assert translate._modes("apertium") == frozenset({"eng-zzz"})
    translate._modes.cache_clear()
