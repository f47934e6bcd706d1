"""What the batch path's stages read, as Dagster sees it and on disk.

- `word_analysis` takes `claude_batch_results` as a declared input (the asset graph shows it),
  and a deck built without batches needs no batch stage materialized.
- `claude_batch_requests` leaves out the words the Claude lexicon already answered for the deck
  (its kept answers, not `word_analysis`'s cache); a batch deck and, afterwards, the one-run
  deck build both take the ingested answers through that input.
"""

from __future__ import annotations

import json

import dagster as dg

from stageflow_assets.core.manifest import stage_manifest
from stageflow_assets.core.stage_store import StageStore
from stageflow_assets.providers.lexicon import WordNetLexicon
from stageflow_assets.providers.llm import ClaudeResource
from stageflow_assets.vocabulary import stage_dirs
from stageflow_assets.vocabulary.assets import word_analysis
from stageflow_assets.vocabulary.claude import ClaudeLexicon
from stageflow_assets.vocabulary.jobs import claude_batch_ingest_job, vocabulary_deck_job
from stageflow_assets.vocabulary.lexicon_answers import ANSWERS_DIR
from stageflow_assets.vocabulary.partitions import word_list_partitions
from stageflow_assets.vocabulary.registry import deck_key, register_word_list
from stageflow_assets_tests.fakes.anthropic_server import FAKE_KEY
from stageflow_assets_tests.vocabulary.test_vocab_claude import answer, headword_of, messages_handler

BATCH_STAGES = {"claude_batch_requests", "claude_batch", "claude_batch_results"}


def _defs(**resources) -> dg.Definitions:
    from stageflow_assets.vocabulary.definitions import defs
    from stageflow_assets_tests.swap_resources import with_resources

    return with_resources(defs, **resources)


def _steps(result, event: str = "STEP_SUCCESS") -> set[str]:
    return {e.step_key for e in result.all_events if e.event_type_value == event}


def test_word_analysis_declares_the_batch_results_it_reads():
    from stageflow_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    results, analysis = dg.AssetKey("claude_batch_results"), dg.AssetKey("word_analysis")
    assert results in graph.get(analysis).parent_keys and analysis in graph.get(results).child_keys
    # an input the step loads (`manifest_if_any`), not an ordering-only dep
    assert word_analysis.keys_by_input_name["claude_batch_results"] == results
    # the one-run deck job selects no batch stage; the ingestion job selects both ends of the edge
    selected = {job.name: {k.to_user_string() for k in job.selection.resolve(graph)}
                for job in (vocabulary_deck_job, claude_batch_ingest_job)}
    assert "word_analysis" in selected["vocabulary_deck_job"] and not selected["vocabulary_deck_job"] & BATCH_STAGES
    assert {"claude_batch_results", "word_analysis"} <= selected["claude_batch_ingest_job"]


def test_a_deck_without_batches_needs_no_batch_stage(tmp_path):
    deck = "Lineage::WordNet"
    job = deck_key(deck)
    paths = StageStore().paths
    words = tmp_path / "plain.txt"
    words.write_text("apple\nbread\n", encoding="utf-8")
    with dg.instance_for_test() as instance:
        register_word_list(paths, words, deck)
        instance.add_dynamic_partitions(word_list_partitions.name, [job])
        built = _defs(lexicon=WordNetLexicon()).resolve_job_def("vocabulary_deck_job").execute_in_process(
            instance=instance, partition_key=job)
    assert built.success and {"word_analysis", "anki_deck"} <= _steps(built)
    assert not _steps(built) & BATCH_STAGES
    assert stage_manifest(paths, stage_dirs.CLAUDE_BATCH_RESULTS, job) is None
    analysis = stage_manifest(paths, stage_dirs.WORD_ANALYSIS, job)
    assert [i.kind for i in analysis.inputs] == ["words"] and analysis.details["known_words"] == 2


def test_a_batch_asks_only_what_the_lexicon_has_not_answered(fake_anthropic, tmp_path):
    deck = "Lineage::Claude"
    job = deck_key(deck)
    paths = StageStore().paths
    words = tmp_path / "grows.txt"
    words.write_text("apple\nbread\n", encoding="utf-8")
    fake_anthropic.handler = messages_handler
    fake_anthropic.batch_polls = 0  # ended at the first status call
    fake_anthropic.batch_handler = lambda cid, params: answer(headword_of(params), "batch")
    lexicon = ClaudeLexicon(claude=ClaudeResource(api_key=FAKE_KEY, base_url=fake_anthropic.base_url,
                                                  max_retries=1), batch_threshold=2)
    defs = _defs(lexicon=lexicon)

    def run(name: str):
        result = defs.resolve_job_def(name).execute_in_process(instance=instance, partition_key=job)
        assert result.success, name
        return result

    with dg.instance_for_test() as instance:
        register_word_list(paths, words, deck, "en", "es")
        instance.add_dynamic_partitions(word_list_partitions.name, [job])

        # two words: through Messages, and the lexicon keeps both answers for the deck
        run("vocabulary_deck_job")
        assert len(fake_anthropic.calls()) == 2
        assert len(list(paths.job_dir(stage_dirs.DOMAIN, job).joinpath(ANSWERS_DIR).glob("*.json"))) == 2

        # five words, threshold 2: the batch asks the three it has no answer for
        words.write_text("apple\nbread\ncheese\nhoney\ngrape\n", encoding="utf-8")
        run("claude_batch_job")
        prepared = stage_manifest(paths, stage_dirs.CLAUDE_BATCH_REQUESTS, job)
        assert (prepared.details["to_ask"], prepared.details["cached_words"]) == (3, 2)
        (batch_id,) = fake_anthropic.batches
        assert sorted(headword_of(r["params"]) for r in fake_anthropic.batches[batch_id].requests) == [
            "cheese", "grape", "honey"]

        # the ingestion run builds the deck from the batch's answers: no Messages call
        ingested = run("claude_batch_ingest_job")
        assert {"claude_batch_results", "word_analysis", "anki_deck"} <= _steps(ingested)
        analysis = stage_manifest(paths, stage_dirs.WORD_ANALYSIS, job)
        assert analysis.details["word_paths"] == {"apple": "cached", "bread": "cached", "cheese": "batch",
                                                  "honey": "batch", "grape": "batch"}
        assert analysis.details["answered_by_batch"] == 3 and len(fake_anthropic.calls()) == 2
        assert any(i.kind == "batch_results" and i.upstream_asset == "claude_batch_results" for i in analysis.inputs)

        # the one-run deck build, outside the batch job, loads the same results as its input:
        # nothing changed, so the analysis is reused rather than asking anything again
        rebuilt = run("vocabulary_deck_job")
        assert not _steps(rebuilt) & BATCH_STAGES
        again = stage_manifest(paths, stage_dirs.WORD_ANALYSIS, job)
        assert again.reused and again.fingerprint == analysis.fingerprint
        assert len(fake_anthropic.calls()) == 2
        notes = json.loads((paths.dir_of(stage_dirs.ANKI_DECK, job) / "notes.json").read_text())["notes"]
        assert {n["headword"] for n in notes} == {"apple", "bread", "cheese", "honey", "grape"}
