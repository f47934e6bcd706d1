"""The words inbox sensor, with `build_sensor_context` on a real (SQLite) test instance."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import dagster as dg
import pytest

from stageflow_assets.core.stage_store import StageStore
from stageflow_assets.providers.lexicon import WordNetLexicon
from stageflow_assets.definitions import defs
from stageflow_assets.core.stage import JOB_TAG
from stageflow_assets.vocabulary.partitions import word_list_partitions
from stageflow_assets.vocabulary.registry import deck_key, load_word_list_job
from stageflow_assets.vocabulary.sensors import deck_settings, words_inbox_sensor

PARTITIONS = word_list_partitions.name


def drop(store: StageStore, name: str, text: str, age: float = 60.0) -> Path:
    inbox = store.paths.inbox("words")
    inbox.mkdir(parents=True, exist_ok=True)
    path = inbox / name
    path.write_text(text, encoding="utf-8")
    stamp = time.time() - age
    os.utime(path, (stamp, stamp))
    return path


def tick(instance, store, cursor=None) -> dg.SensorResult:
    # closed here, not when garbage-collected: its resources hold the instance (test_nightly_deck_sync)
    with dg.build_sensor_context(instance=instance, instance_ref=instance.get_ref(), definitions=defs,
                                 resources={"storage": store, "lexicon": WordNetLexicon()}, cursor=cursor) as context:
        result = words_inbox_sensor(context)
    for request in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    return result


def test_file_names_carry_deck_and_languages():
    assert deck_settings(Path("Spanish__Food.en-es.txt")) == ("Spanish::Food", "en", "es")
    assert deck_settings(Path("verbs.csv")) == ("verbs", "en", None)
    assert deck_settings(Path("My deck.de.json")) == ("My deck", "de", None)


def test_new_list_becomes_a_deck_partition_and_a_build_run(instance, store):
    drop(store, "Spanish__Food.en-es.txt", "apple\nbread\n")
    result = tick(instance, store)
    job = deck_key("Spanish::Food")
    assert [(r.partition_key, r.tags[JOB_TAG], r.tags["stageflow/source"]) for r in result.run_requests] == [
        (job, job, "inbox")]
    assert instance.get_dynamic_partitions(PARTITIONS) == [job]
    registered = load_word_list_job(store.paths, job)
    assert (registered.deck, registered.language, registered.native) == ("Spanish::Food", "en", "es")
    assert "Spanish__Food.en-es.txt" in json.loads(result.cursor)

    again = tick(instance, store, result.cursor)
    assert again.run_requests == [] and not again.dynamic_partitions_requests


def test_edited_list_rebuilds_the_same_deck(instance, store):
    path = drop(store, "verbs.txt", "run\nwalk\n")
    first = tick(instance, store)
    path.write_text("run\nwalk\nswim\n", encoding="utf-8")
    stamp = time.time() - 30
    os.utime(path, (stamp, stamp))
    second = tick(instance, store, first.cursor)
    (a,), (b,) = first.run_requests, second.run_requests
    assert a.partition_key == b.partition_key == deck_key("verbs")
    assert a.run_key != b.run_key  # a new build, not deduplicated by the daemon
    assert not second.dynamic_partitions_requests  # the deck partition already exists


def test_unsettled_hidden_and_foreign_files_wait_or_are_ignored(instance, store):
    drop(store, "fresh.txt", "cat\n", age=0)
    drop(store, ".partial.txt", "cat\n")
    drop(store, "photo.jpg", "not a list")
    result = tick(instance, store)
    assert result.run_requests == [] and json.loads(result.cursor) == {}


def test_evaluate_tick_validates_the_partition_added_in_the_same_tick(instance, store):
    drop(store, "Nouns.txt", "cat\n")
    with dg.build_sensor_context(instance=instance, instance_ref=instance.get_ref(), definitions=defs,
                                 resources={"storage": store, "lexicon": WordNetLexicon()}) as context:
        data = words_inbox_sensor.evaluate_tick(context)
    assert data.skip_message is None and len(data.run_requests) == 1
    assert data.run_requests[0].tags["dagster/partition"] == deck_key("Nouns")
    assert data.run_requests[0].job_name in (None, "vocabulary_deck_job")


def test_the_injected_lexicon_decides_the_job_of_a_long_list(instance, store):
    """The sensor takes the `lexicon` resource it is given, not the environment's: the same long
    list is one deck run with WordNet and the Message Batches path with Claude."""
    from stageflow_assets.providers.llm import ClaudeResource
    from stageflow_assets.vocabulary.claude import ClaudeLexicon

    drop(store, "Long.txt", "apple\nbread\ncheese\nhoney\n")
    claude = ClaudeLexicon(claude=ClaudeResource(api_key="unused: no call is made"), batch_threshold=3)
    jobs = {}
    for name, lexicon in (("wordnet", WordNetLexicon()), ("claude", claude)):
        with dg.build_sensor_context(instance=instance, instance_ref=instance.get_ref(), definitions=defs,
                                     resources={"storage": store, "lexicon": lexicon}) as context:
            (request,) = words_inbox_sensor(context).run_requests
        jobs[name] = request.job_name
    assert jobs == {"wordnet": "vocabulary_deck_job", "claude": "claude_batch_job"}
