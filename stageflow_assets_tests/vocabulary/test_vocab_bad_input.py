"""Bad word lists through the real CLI: unusable files fail with one clear line before any run;
awkward lines (duplicates, blanks, 10,000 characters, HTML, unknown words) are reported and the
deck is built."""

from __future__ import annotations

import json
import os
from pathlib import Path

import dagster as dg
import pytest

from stageflow_assets.core.manifest import FAILED_MANIFEST_NAME, MANIFEST_NAME
from stageflow_assets.core.paths import TEMP_MARK
from stageflow_assets.core.runs import execute_partition
from stageflow_assets.core.stage import JOB_TAG
from stageflow_assets.core.stage_store import StageStore
from stageflow_assets.vocabulary import stage_dirs
from stageflow_assets.vocabulary.partitions import word_list_partitions
from stageflow_assets.vocabulary.registry import deck_key, register_word_list
from stageflow_assets_tests.conftest import run_cli
from stageflow_assets_tests.vocabulary.fakes import FakeAnki, FakeServer


def stage_dir(deck: str, stage) -> Path:
    return Path(os.environ["STAGEFLOW_HOME"]) / stage_dirs.DOMAIN / deck_key(deck) / stage.dir_name


@pytest.mark.parametrize("name,content,message", [
    ("empty.txt", b"", "empty.txt: the word list is empty"),
    ("binary.txt", bytes(range(256)) * 4, "binary.txt: not a UTF-8 text word list (binary data at byte 0)"),
    ("noheader.csv", b"apple,noun\nbanana,noun\n", "noheader.csv: the CSV needs a header row naming a `word` column"),
])
def test_unusable_lists_fail_with_one_line_before_any_run(tmp_path, name, content, message):
    words = tmp_path / name
    words.write_bytes(content)
    deck = f"Bad::{name}"
    with dg.DagsterInstance.get() as instance:
        runs_before = instance.get_runs_count()
    result = run_cli("vocab", words, "--deck", deck, "--out", tmp_path / "out")
    assert result.returncode == 2
    assert len(result.error_lines) == 1, result.stderr
    assert message in result.error_lines[0]
    assert "(run " not in result.error_lines[0]
    with dg.DagsterInstance.get() as instance:  # checked by the CLI: no partition, no run
        assert instance.get_runs_count() == runs_before
        assert deck_key(deck) not in instance.get_dynamic_partitions(word_list_partitions.name)
    assert not stage_dir(deck, stage_dirs.WORD_LIST).parent.exists()
    assert not (tmp_path / "out").exists()


def test_an_unusable_list_that_comes_another_way_fails_its_first_stage_once(tmp_path):
    """A list from the inbox reaches the `word_list` stage unchecked: it fails there, not retried."""
    words = tmp_path / "binary.txt"
    words.write_bytes(bytes(range(256)) * 4)
    deck = "Bad::inbox binary"
    job = register_word_list(StageStore().paths, words, deck).job
    with dg.DagsterInstance.get() as instance:
        instance.add_dynamic_partitions(word_list_partitions.name, [job])
        outcome = execute_partition(instance, "vocabulary_deck_job", word_list_partitions, job, {JOB_TAG: job})
        retried = instance.get_records_for_run(outcome.run_id, of_type=dg.DagsterEventType.STEP_UP_FOR_RETRY)
    assert not outcome.success
    assert outcome.error.startswith("binary.txt: not a UTF-8 text word list (binary data at byte 0)")
    assert retried.records == []
    where = stage_dir(deck, stage_dirs.WORD_LIST)
    assert (where / FAILED_MANIFEST_NAME).is_file() and not (where / MANIFEST_NAME).exists()
    assert not list(where.parent.rglob(f"*{TEMP_MARK}*"))


def test_missing_file_and_bad_collection_path_are_usage_errors(tmp_path):
    result = run_cli("vocab", tmp_path / "nope.txt", "--deck", "X")
    assert result.returncode == 2 and "nope.txt: no such file" in result.error_lines[0]
    words = tmp_path / "w.txt"
    words.write_text("cat\n")
    result = run_cli("vocab", words, "--deck", "X", "--collection", tmp_path / "col.db")
    assert result.returncode == 2 and "ends in .anki2" in result.error_lines[0]


def test_awkward_lines_are_reported_and_synced_to_ankiconnect(tmp_path):
    words = tmp_path / "mixed.txt"
    words.write_text("\n".join([
        "# awkward but usable", "cat", "", "Cat", "  dog  ", "x" * 10_000, "<script>alert(1)</script>",
        "xyzzyq", "   ", "dog", "<b>bold</b>",
    ]) + "\n", encoding="utf-8")
    deck = "Bad::Mixed"
    fake = FakeAnki()
    with FakeServer(fake) as server:
        result = run_cli("vocab", words, "--deck", deck, "--sync", "--ankiconnect-url", server.url)
    assert result.returncode == 0, result.stderr
    assert not result.error_lines
    assert "xyzzyq" in result.value("unknown")[0]

    listed = json.loads((stage_dir(deck, stage_dirs.WORD_LIST) / MANIFEST_NAME).read_text())["details"]
    assert listed["words"] == 5
    assert [(b["line"], b["reason"]) for b in listed["bad_lines"]] == [(6, "headword of 10000 characters (limit 100)")]
    assert [(d["line"], d["first_line"]) for d in listed["duplicates"]] == [(4, 2), (10, 5)]
    analysis = json.loads((stage_dir(deck, stage_dirs.WORD_ANALYSIS) / MANIFEST_NAME).read_text())["details"]
    assert set(analysis["unknown_words"]) == {"<script>alert(1)</script>", "xyzzyq", "<b>bold</b>"}
    assert analysis["issues"]["xyzzyq"] == ["not in the lexicon"]

    # the sync went through AnkiConnect's protocol: note type, media, five notes, HTML escaped
    assert len(fake.notes) == 5 and len(fake.media) == 5
    heads = {n["fields"]["Headword"] for n in fake.notes.values()}
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in heads and "<script>alert(1)</script>" not in heads
    assert all(n["deck"] == deck for n in fake.notes.values())
    synced = json.loads((stage_dir(deck, stage_dirs.ANKI_SYNC) / MANIFEST_NAME).read_text())["details"]
    assert (synced["added"], synced["note_type_created"]) == (5, True)
