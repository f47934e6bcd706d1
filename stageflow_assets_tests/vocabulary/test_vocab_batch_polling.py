"""`poll_batch`, the one decision `claude_batch_sensor` and the CLI share: which batch a deck
awaits, its status, and whether to ingest now, against the loopback Claude fake (real SDK).

The deck is prepared and submitted by `claude_batch_job` and ingested by `claude_batch_results`
alone (the deck steps after it are covered in test_vocab_claude.py), one item expiring so that
the ingestion submits a follow-up batch, which is what the deck awaits next.
"""

from __future__ import annotations

import dagster as dg

from stageflow_assets.core.stage_store import StageStore
from stageflow_assets.providers.llm import ClaudeResource
from stageflow_assets.vocabulary.batch_polling import poll_batch
from stageflow_assets.vocabulary.claude import ClaudeLexicon, custom_id_for
from stageflow_assets.vocabulary.partitions import word_list_partitions
from stageflow_assets.vocabulary.registry import deck_key, register_word_list
from stageflow_assets_tests.fakes.anthropic_server import FAKE_KEY
from stageflow_assets_tests.vocabulary.test_vocab_claude import answer, headword_of


def test_poll_batch_ended_in_progress_and_the_follow_up(fake_anthropic, tmp_path):
    from stageflow_assets.vocabulary.definitions import defs as vocabulary_defs
    from stageflow_assets_tests.swap_resources import with_resources

    deck = "Claude::Polling"
    job = deck_key(deck)
    paths = StageStore().paths
    words = tmp_path / "polling.txt"
    words.write_text("apple\nbread\nhoney\n", encoding="utf-8")
    fake_anthropic.batch_polls = 1  # each batch: in_progress once, then ended
    fake_anthropic.batch_outcomes = {custom_id_for("en", "honey", None): "expired"}
    fake_anthropic.batch_handler = lambda cid, params: answer(headword_of(params), "batch")
    lexicon = ClaudeLexicon(claude=ClaudeResource(api_key=FAKE_KEY, base_url=fake_anthropic.base_url,
                                                  max_retries=0), batch_threshold=1, max_rebatch_rounds=1)
    claude = lexicon.claude
    defs = with_resources(vocabulary_defs, lexicon=lexicon)
    results_only = [dg.AssetKey("claude_batch_results")]

    with dg.instance_for_test() as instance:
        register_word_list(paths, words, deck, "en", "es")
        instance.add_dynamic_partitions(word_list_partitions.name, [job])
        assert poll_batch(paths, job, claude).state == "none"  # nothing submitted yet

        assert defs.resolve_job_def("claude_batch_job").execute_in_process(
            instance=instance, partition_key=job).success
        (batch_id,) = fake_anthropic.batches
        status_path = f"/v1/messages/batches/{batch_id}"

        # requested already (the sensor's cursor) or no calls left this tick: no status call
        assert poll_batch(paths, job, claude, handled={batch_id}).state == "handled"
        spared = poll_batch(paths, job, claude, ask=False)
        assert (spared.state, spared.batch_id, spared.asked) == ("not_asked", batch_id, False)
        assert not fake_anthropic.calls(status_path, "GET")

        running = poll_batch(paths, job, claude)
        assert (running.state, running.status, running.batch_id, running.followup) == (
            "running", "in_progress", batch_id, False)
        assert running.counts["processing"] == 3 and running.asked
        assert len(fake_anthropic.calls(status_path, "GET")) == 1  # one poll, one call
        ended = poll_batch(paths, job, claude)
        assert (ended.state, ended.batch_id, ended.what) == ("ended", batch_id, "batch")
        assert ended.counts["succeeded"] == 2 and ended.counts["expired"] == 1

        # the ingestion re-batches the expired item: the deck now awaits the follow-up
        ingest = defs.resolve_job_def("claude_batch_ingest_job")
        assert ingest.execute_in_process(instance=instance, partition_key=job, asset_selection=results_only).success
        (_, followup_id) = fake_anthropic.batches
        followup = poll_batch(paths, job, claude)
        assert (followup.state, followup.submitted_id, followup.batch_id, followup.followup, followup.what) == (
            "running", batch_id, followup_id, True, "follow-up batch")

        # a status Claude does not give: unavailable, saying why, for the caller to report
        fake_anthropic.fail(500, path=f"/v1/messages/batches/{followup_id}")
        failed = poll_batch(paths, job, claude)
        assert (failed.state, failed.batch_id, failed.asked) == ("unavailable", followup_id, True)
        assert failed.error and not failed.status

        fake_anthropic.batch_outcomes = {}
        assert poll_batch(paths, job, claude).state == "ended"
        assert ingest.execute_in_process(instance=instance, partition_key=job, asset_selection=results_only).success
        calls = len(fake_anthropic.requests)
        done = poll_batch(paths, job, claude)
        assert (done.state, done.submitted_id, done.batch_id, done.asked) == ("ingested", batch_id, None, False)
        assert len(fake_anthropic.requests) == calls  # nothing awaited: no call
