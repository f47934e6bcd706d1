"""The Claude lexicon, through the real anthropic SDK against the loopback Messages/Batches fake.

- Messages: the real `stageflow vocab` CLI with `STAGEFLOW_LEXICON=claude` (a 429 on the way),
  the deck carries Claude's meanings and translations, usage and cost are in the metadata;
  529 then success and invalid JSON then valid on the lexicon itself.
- Message Batches: prepare → submit → sensor ticks (in progress: nothing; ended: one run request)
  → ingest with one errored (api_error) and one expired item → a follow-up batch of exactly those
  two → the sensor requests another ingestion when it ends → full deck, no Messages call, usage of
  both batches at the batch rate; and the CLI, which polls by itself, follow-up batch included,
  where the follow-up fails again (rounds spent) and a non-retryable error → Messages fallback.
- The API key is never in a manifest, stage log, stage file, materialization metadata or .apkg.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import zipfile
from pathlib import Path

import dagster as dg
import pytest

from stageflow_assets.core.stage_store import StageStore
from stageflow_assets.providers import llm_pricing
from stageflow_assets.providers.llm import ClaudeResource
from stageflow_assets.vocabulary import prompts, stage_dirs
from stageflow_assets.vocabulary.cards import FIELDS
from stageflow_assets.vocabulary.claude import ClaudeLexicon, custom_id_for
from stageflow_assets.vocabulary.partitions import word_list_partitions
from stageflow_assets.vocabulary.registry import deck_key, register_word_list
from stageflow_assets.vocabulary.sensors import BATCH_TAG, claude_batch_sensor
from stageflow_assets_tests.conftest import run_cli
from stageflow_assets_tests.fakes.anthropic_server import FAKE_KEY

HEADWORD = re.compile(r"^Headword: (.+)$", re.M)
NOT_WORDS = {"zzqx"}
MODEL = ClaudeResource.model_fields["model"].default


def headword_of(body: dict) -> str:
    """The headword a request asks about (the first user message; re-asks come after it)."""
    return HEADWORD.search(body["messages"][0]["content"]).group(1)


def answer(headword: str, via: str) -> str:
    if headword in NOT_WORDS:
        return json.dumps({"known": False, "lemma": "", "part_of_speech": "other", "senses": [],
                           "other_parts_of_speech": [], "translation": ""})
    return json.dumps({
        "known": True, "lemma": headword, "part_of_speech": "noun",
        "senses": [{"definition": f"{via} meaning of {headword}",
                    "examples": [f"I like the {headword}.", f"A {headword} again.", "one too many"],
                    "synonyms": [f"{headword}-ish"]}],
        "other_parts_of_speech": ["verb", "noun"], "translation": f"es-{headword}",
    })


def messages_handler(body: dict) -> str:
    return answer(headword_of(body), "messages")


def stage_dir(deck: str, spec) -> Path:
    return Path(os.environ["STAGEFLOW_HOME"]) / stage_dirs.DOMAIN / deck_key(deck) / spec.dir_name


def manifest(deck: str, spec) -> dict:
    return json.loads((stage_dir(deck, spec) / "manifest.json").read_text())


def apkg_notes(apkg: Path) -> dict[str, dict[str, str]]:
    """Headword → fields, read from the package's own SQLite collection."""
    with zipfile.ZipFile(apkg) as zf:
        data = zf.read("collection.anki2")
    path = apkg.with_suffix(".anki2.tmp")
    path.write_bytes(data)
    try:
        con = sqlite3.connect(path)
        rows = [dict(zip(FIELDS, flds.split("\x1f"))) for (flds,) in con.execute("select flds from notes")]
        con.close()
    finally:
        path.unlink()
    return {r["Headword"]: r for r in rows}


def assert_key_nowhere(deck: str, *files: Path, instance: dg.DagsterInstance | None = None) -> None:
    root = Path(os.environ["STAGEFLOW_HOME"]) / stage_dirs.DOMAIN / deck_key(deck)
    checked = 0
    for path in [*root.rglob("*"), *files]:
        if path.is_file():
            assert FAKE_KEY.encode() not in path.read_bytes(), path
            checked += 1
    assert checked > 10
    if instance is not None:
        events = 0
        for key in ("word_list", "claude_batch_requests", "claude_batch", "claude_batch_results",
                    "word_analysis", "anki_deck"):
            for record in instance.fetch_materializations(dg.AssetKey(key), limit=100).records:
                text = json.dumps({k: str(v) for k, v in record.asset_materialization.metadata.items()})
                assert FAKE_KEY not in text, key
                events += 1
        assert events >= 3


def claude_env(fake, **extra: str) -> dict[str, str]:
    return {"STAGEFLOW_LEXICON": "claude", "ANTHROPIC_API_KEY": FAKE_KEY,
            "STAGEFLOW_CLAUDE_BASE_URL": fake.base_url, **extra}


def expected_cost(usage_lines: list[dict], batch: bool) -> float:
    price = llm_pricing.price_for(MODEL)
    return sum(llm_pricing.cost_usd(price, input_tokens=u["input_tokens"], output_tokens=u["output_tokens"],
                                    batch=batch) for u in usage_lines)


# ------------------------------------------------------------------------------ Messages, CLI
def test_claude_lexicon_through_the_cli(fake_anthropic, tmp_path):
    deck = "Claude::Messages"
    words = tmp_path / "words.txt"
    words.write_text("apple\nbread\nzzqx\n", encoding="utf-8")
    fake_anthropic.fail(429, retry_after=0.01)  # rate-limited once, then served
    fake_anthropic.handler = messages_handler
    env = claude_env(fake_anthropic)

    result = run_cli("vocab", words, "--deck", deck, "--native", "es", "--out", tmp_path / "out", env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(result.value("run")) == 1  # 3 words: below the batch threshold, one deck run
    assert result.value("unknown") == ["zzqx"]

    calls = fake_anthropic.calls()
    assert len(calls) == 4  # the 429, then one request per word
    assert all(c.headers["authorization"] == f"Bearer {FAKE_KEY}" for c in calls)
    assert all(c.body["output_config"]["format"]["type"] == "json_schema" for c in calls)
    assert sorted(headword_of(c.body) for c in calls[1:]) == ["apple", "bread", "zzqx"]
    assert not fake_anthropic.calls("/v1/messages/batches")

    apkg = tmp_path / "out" / "claude-messages.apkg"
    notes = apkg_notes(apkg)
    assert set(notes) == {"apple", "bread", "zzqx"}
    for word in ("apple", "bread"):
        assert f"messages meaning of {word}" in notes[word]["Meanings"]
        assert notes[word]["Translation"] == f"es-{word}"  # Claude's translation, not Apertium's
        assert notes[word]["PartOfSpeech"] == "noun" and f"I like the {word}." in notes[word]["Examples"]
        assert "one too many" not in notes[word]["Examples"]  # max_examples=2
    assert notes["zzqx"]["Meanings"] == ""

    analysis = manifest(deck, stage_dirs.WORD_ANALYSIS)
    lexicon = analysis["config"]["lexicon"]
    assert lexicon["backend"] == "claude" and lexicon["model"] == MODEL
    assert lexicon["prompt_version"] == prompts.PROMPT_VERSION
    details = analysis["details"]
    usage = details["llm_usage"]
    assert usage["requests"] == 3 and usage["input_tokens"] > 0 and usage["output_tokens"] > 0
    assert usage["cost_usd"] == pytest.approx(expected_cost([usage], batch=False))
    assert details["known_words"] == 2 and details["translated"] == 2 and details["answered_by_batch"] == 0
    doc = json.loads((stage_dir(deck, stage_dirs.WORD_ANALYSIS) / "analysis.json").read_text())
    assert doc["lexicon"] == "claude" and doc["translation_backend"] == "claude"
    assert not stage_dir(deck, stage_dirs.CLAUDE_BATCH_REQUESTS).exists()  # no batch below the threshold
    assert_key_nowhere(deck, apkg, instance=dg.DagsterInstance.get())


def test_claude_lexicon_reuses_words_it_already_asked(fake_anthropic, tmp_path):
    deck = "Claude::Reuse"
    words = tmp_path / "words.txt"
    words.write_text("apple\nbread\n", encoding="utf-8")
    fake_anthropic.handler = messages_handler
    env = claude_env(fake_anthropic)
    assert run_cli("vocab", words, "--deck", deck, env=env).returncode == 0
    assert len(fake_anthropic.calls()) == 2
    words.write_text("apple\nbread\ncheese\n", encoding="utf-8")  # one new word: one request
    result = run_cli("vocab", words, "--deck", deck, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert [headword_of(c.body) for c in fake_anthropic.calls()[2:]] == ["cheese"]
    details = manifest(deck, stage_dirs.WORD_ANALYSIS)["details"]
    assert (details["computed_words"], details["reused_words"], details["llm_usage"]["requests"]) == (1, 2, 1)


# --------------------------------------------------------------------- Messages, the lexicon
@pytest.fixture
def lexicon(fake_anthropic) -> ClaudeLexicon:
    return ClaudeLexicon(claude=ClaudeResource(api_key=FAKE_KEY, base_url=fake_anthropic.base_url, max_retries=2))


@pytest.mark.parametrize("status", [429, 529])
def test_rate_limited_or_overloaded_then_served(fake_anthropic, lexicon, status):
    fake_anthropic.fail(status, retry_after=0.01)
    fake_anthropic.handler = messages_handler
    entry = lexicon.lookup("apple", "en", None, native="es")
    assert entry is not None and entry.senses[0].definition == "messages meaning of apple"
    assert entry.translation == "es-apple" and entry.other_parts_of_speech == ["verb"]
    assert len(fake_anthropic.calls()) == 2 and lexicon.usage().requests == 1


def test_invalid_json_is_asked_again(fake_anthropic, lexicon):
    fake_anthropic.reply("Sure! Here is the word: apple", answer("apple", "fixed"))
    entry = lexicon.lookup("apple", "en")
    assert entry is not None and entry.senses[0].definition == "fixed meaning of apple"
    calls = fake_anthropic.calls()
    assert len(calls) == 2 and lexicon.usage().requests == 2  # the bad reply was paid for too
    retry = calls[1].body["messages"]
    assert [m["role"] for m in retry] == ["user", "assistant", "user"]
    assert "could not be used" in retry[2]["content"]


def test_known_word_without_senses_is_rejected_then_asked_again(fake_anthropic, lexicon):
    empty = json.dumps({"known": True, "lemma": "apple", "part_of_speech": "noun", "senses": [],
                        "other_parts_of_speech": [], "translation": ""})
    fake_anthropic.reply(empty, answer("apple", "fixed"))
    assert lexicon.lookup("apple", "en").senses[0].definition == "fixed meaning of apple"
    assert "at least one sense" in fake_anthropic.calls()[1].body["messages"][2]["content"]


def test_custom_ids_follow_the_note_identity():
    a = custom_id_for("en", "Apple", None)
    assert a == custom_id_for("EN", "apple", None) and re.fullmatch(r"[A-Za-z0-9_-]{1,64}", a)
    assert a != custom_id_for("en", "apple", "noun") and a != custom_id_for("de", "apple", None)


# ------------------------------------------------------------------------ Message Batches
BATCH_WORDS = ["apple", "bread", "cheese", "honey", "grape"]
ERRORED, EXPIRED = "honey", "grape"


def test_batch_flow_prepare_submit_sensor_ingest(fake_anthropic, tmp_path):
    from stageflow_assets.vocabulary.definitions import defs as vocabulary_defs
    from stageflow_assets_tests.swap_resources import with_resources

    deck = "Claude::Batch"
    job = deck_key(deck)
    store = StageStore()
    words = tmp_path / "batch.txt"
    words.write_text("\n".join(BATCH_WORDS) + "\n", encoding="utf-8")
    ids = {w: custom_id_for("en", w, None) for w in BATCH_WORDS}
    fake_anthropic.batch_polls = 1  # the first status call says in_progress
    fake_anthropic.batch_outcomes = {ids[ERRORED]: "errored", ids[EXPIRED]: "expired"}
    fake_anthropic.batch_handler = lambda cid, params: answer(headword_of(params), "batch")
    fake_anthropic.handler = messages_handler
    lexicon = ClaudeLexicon(claude=ClaudeResource(api_key=FAKE_KEY, base_url=fake_anthropic.base_url,
                                                  max_retries=1), batch_threshold=3)
    defs = with_resources(vocabulary_defs, lexicon=lexicon)

    with dg.instance_for_test() as instance:
        register_word_list(store.paths, words, deck, "en", "es")
        instance.add_dynamic_partitions(word_list_partitions.name, [job])

        # prepare + submit
        submitted = defs.resolve_job_def("claude_batch_job").execute_in_process(instance=instance, partition_key=job)
        assert submitted.success
        prepared = manifest(deck, stage_dirs.CLAUDE_BATCH_REQUESTS)
        assert prepared["status"] == "success" and prepared["details"]["to_ask"] == 5
        index = json.loads((stage_dir(deck, stage_dirs.CLAUDE_BATCH_REQUESTS) / "requests.json").read_text())
        assert [(i["headword"], i["custom_id"]) for i in index["items"]] == list(ids.items())
        bodies = [json.loads(line) for line in
                  (stage_dir(deck, stage_dirs.CLAUDE_BATCH_REQUESTS) / "requests.jsonl").read_text().splitlines()]
        assert [b["custom_id"] for b in bodies] == list(ids.values())
        (batch_id,) = fake_anthropic.batches
        batch = fake_anthropic.batches[batch_id]
        assert [r["custom_id"] for r in batch.requests] == list(ids.values())
        assert batch.requests[0]["params"] == bodies[0]["params"]  # what was written is what was sent
        assert manifest(deck, stage_dirs.CLAUDE_BATCH)["details"]["batch_id"] == batch_id
        assert not fake_anthropic.calls()  # nothing through Messages yet

        # submitting again with unchanged requests reuses the stage: no second batch
        again = defs.resolve_job_def("claude_batch_job").execute_in_process(instance=instance, partition_key=job)
        assert again.success and list(fake_anthropic.batches) == [batch_id]

        # the sensor: one status call per open batch per tick
        status_path = f"/v1/messages/batches/{batch_id}"

        def tick(cursor):
            with dg.build_sensor_context(instance=instance, cursor=cursor,
                                         resources={"storage": store, "lexicon": lexicon}) as context:
                return claude_batch_sensor(context)

        first = tick(None)
        assert first.run_requests == [] and len(fake_anthropic.calls(status_path, "GET")) == 1
        second = tick(first.cursor)
        (request,) = second.run_requests
        assert len(fake_anthropic.calls(status_path, "GET")) == 2
        assert request.partition_key == job and request.run_key == f"{job}:{batch_id}"
        assert request.tags[BATCH_TAG] == batch_id
        third = tick(second.cursor)  # requested already: no request, no status call
        assert third.run_requests == [] and len(fake_anthropic.calls(status_path, "GET")) == 2

        # the first ingestion: 3 answers; the errored (api_error) and the expired item go into a
        # follow-up batch with exactly their requests; analysis and the deck wait for it
        job_def = defs.resolve_job_def(claude_batch_sensor.job_name)
        ingest = job_def.execute_in_process(instance=instance, partition_key=request.partition_key,
                                            tags=request.tags)
        assert ingest.success
        skipped = {e.step_key for e in ingest.all_events if e.event_type_value == "STEP_SKIPPED"}
        assert {"word_analysis", "pronunciation_audio", "anki_deck"} <= skipped
        assert not stage_dir(deck, stage_dirs.WORD_ANALYSIS).exists()

        results = manifest(deck, stage_dirs.CLAUDE_BATCH_RESULTS)["details"]
        assert results["batch_id"] == batch_id and results["succeeded"] == 3 and results["round"] == 0
        assert {(f["headword"], f["status"], f["error_type"]) for f in results["failed"]} == {
            (ERRORED, "errored", "api_error"), (EXPIRED, "expired", None)}
        assert sorted(results["retryable"]) == sorted([ERRORED, EXPIRED])
        followup_id = results["followup_batch_id"]
        assert list(fake_anthropic.batches) == [batch_id, followup_id]
        followup = fake_anthropic.batches[followup_id]
        assert sorted(r["custom_id"] for r in followup.requests) == sorted([ids[ERRORED], ids[EXPIRED]])
        assert sorted(results["followup_custom_ids"]) == sorted([ids[ERRORED], ids[EXPIRED]])
        by_id = {r["custom_id"]: r["params"] for r in batch.requests}
        assert all(r["params"] == by_id[r["custom_id"]] for r in followup.requests)  # the same requests
        assert results["messages_fallback"] == []
        assert not fake_anthropic.calls()  # nothing through Messages
        lines0 = [line["result"]["message"]["usage"] for line in batch.results if line["result"]["type"] == "succeeded"]
        assert results["llm_batch_usage"]["requests"] == 3
        observed = instance.fetch_observations(dg.AssetKey("claude_batch_results"), limit=10).records
        assert observed[0].asset_observation.metadata["followup_batch_id"].value == followup_id

        # the sensor polls the follow-up batch (this time its items succeed) and requests another ingestion
        fake_anthropic.batch_outcomes = {}
        followup_path = f"/v1/messages/batches/{followup_id}"
        first_polls = len(fake_anthropic.calls(status_path, "GET"))
        fourth = tick(third.cursor)
        assert fourth.run_requests == [] and len(fake_anthropic.calls(followup_path, "GET")) == 1
        fifth = tick(fourth.cursor)
        (request,) = fifth.run_requests
        assert request.run_key == f"{job}:{followup_id}" and request.tags[BATCH_TAG] == followup_id
        assert len(fake_anthropic.calls(status_path, "GET")) == first_polls  # the first batch: not polled again
        assert tick(fifth.cursor).run_requests == []

        # the second ingestion merges the follow-up's answers: the deck is complete, no Messages call
        ingest = job_def.execute_in_process(instance=instance, partition_key=request.partition_key,
                                            tags=request.tags)
        assert ingest.success
        results = manifest(deck, stage_dirs.CLAUDE_BATCH_RESULTS)
        assert results["config"]["batches"] == [batch_id, followup_id] and not results["reused"]
        results = results["details"]
        assert results["batch_id"] == batch_id and results["round"] == 1 and results["round_batch_id"] == followup_id
        assert results["succeeded"] == 5 and results["failed"] == [] and results["followup_batch_id"] is None
        assert results["succeeded_by_round"] == {"0": 3, "1": 2}
        assert [b["batch_id"] for b in results["batches"]] == [batch_id, followup_id]
        lines1 = [line["result"]["message"]["usage"] for line in followup.results]
        lines = lines0 + lines1
        usage = results["llm_batch_usage"]
        assert usage["requests"] == 5 and usage["input_tokens"] == sum(u["input_tokens"] for u in lines)
        assert usage["cost_usd"] == pytest.approx(expected_cost(lines, batch=True))
        assert usage["cost_usd"] == pytest.approx(expected_cost(lines, batch=False) / 2)
        assert not fake_anthropic.calls()  # no per-word Messages call at all
        assert len(fake_anthropic.batches) == 2

        analysis = manifest(deck, stage_dirs.WORD_ANALYSIS)
        details = analysis["details"]
        assert details["answered_by_batch"] == 5 and details["asked_by_messages"] == 0
        assert details["answered_by_followup_batch"] == 2
        assert details["word_paths"] == {w: "follow-up batch 1" if w in (ERRORED, EXPIRED) else "batch"
                                         for w in BATCH_WORDS}
        assert details["llm_usage"]["requests"] == 0 and details["llm_batch_usage"] == usage
        assert details["known_words"] == 5 and details["batch_id"] == batch_id
        assert any(i["kind"] == "batch_results" for i in analysis["inputs"])

        notes = {n["headword"]: n["fields"] for n in json.loads(
            (stage_dir(deck, stage_dirs.ANKI_DECK) / "notes.json").read_text())["notes"]}
        assert set(notes) == set(BATCH_WORDS)
        for word in BATCH_WORDS:
            assert f"batch meaning of {word}" in notes[word]["Meanings"], (word, notes[word])
            assert notes[word]["Translation"] == f"es-{word}" and notes[word]["Audio"]

        # materialization metadata carries usage and cost
        meta = instance.get_latest_materialization_event(dg.AssetKey("claude_batch_results")).asset_materialization.metadata
        assert meta["llm_batch_usage"].value["cost_usd"] == usage["cost_usd"]
        meta = instance.get_latest_materialization_event(dg.AssetKey("word_analysis")).asset_materialization.metadata
        assert meta["llm_usage"].value["requests"] == 0

        # ingesting again with nothing new reuses the merged results: no new batch, no call
        calls = len(fake_anthropic.requests)
        again = job_def.execute_in_process(instance=instance, partition_key=job)
        assert again.success and manifest(deck, stage_dirs.CLAUDE_BATCH_RESULTS)["reused"]
        assert len(fake_anthropic.batches) == 2 and not fake_anthropic.calls()
        assert len(fake_anthropic.requests) == calls
        assert_key_nowhere(deck, instance=instance)


def test_batch_path_through_the_cli_followup_fails_then_messages(fake_anthropic, tmp_path):
    """The CLI waits for the follow-up batch too; an item that expires again once the rounds are
    spent (here 1), and a non-retryable error (never re-batched), are asked through Messages."""
    deck = "Claude::BatchCLI"
    words = tmp_path / "list.txt"
    words.write_text("apple\nbread\ncheese\nzzqx\nmelon\n", encoding="utf-8")
    bread, melon = custom_id_for("en", "bread", None), custom_id_for("en", "melon", None)
    fake_anthropic.batch_polls = 2
    # bread expires in every batch; melon's request is rejected (not worth a follow-up)
    fake_anthropic.batch_outcomes = {bread: "expired", melon: "invalid_request_error"}
    fake_anthropic.batch_handler = lambda cid, params: answer(headword_of(params), "batch")
    fake_anthropic.handler = messages_handler
    env = claude_env(fake_anthropic, STAGEFLOW_CLAUDE_BATCH_THRESHOLD="3", STAGEFLOW_CLAUDE_BATCH_POLL_S="0.05",
                     STAGEFLOW_CLAUDE_MAX_REBATCH_ROUNDS="1")

    result = run_cli("vocab", words, "--deck", deck, "--out", tmp_path / "out", env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert [r.split()[-1] for r in result.value("run")] == ["batch", "ingest", "ingest"]
    assert "in_progress" in result.stderr  # it polled and said so
    batch_id, followup_id = fake_anthropic.batches
    assert f"follow-up batch {followup_id}: ended" in result.stderr
    assert len(fake_anthropic.calls(f"/v1/messages/batches/{batch_id}", "GET")) >= 3
    assert len(fake_anthropic.calls(f"/v1/messages/batches/{followup_id}", "GET")) >= 3
    assert [r["custom_id"] for r in fake_anthropic.batches[followup_id].requests] == [bread]
    assert sorted(headword_of(c.body) for c in fake_anthropic.calls()) == ["bread", "melon"]

    notes = apkg_notes(tmp_path / "out" / "claude-batchcli.apkg")
    assert "batch meaning of apple" in notes["apple"]["Meanings"]
    assert "messages meaning of bread" in notes["bread"]["Meanings"]
    assert "messages meaning of melon" in notes["melon"]["Meanings"]
    assert notes["zzqx"]["Meanings"] == "" and result.value("unknown") == ["zzqx"]
    results = manifest(deck, stage_dirs.CLAUDE_BATCH_RESULTS)
    assert results["config"]["batches"] == [batch_id, followup_id]
    details = results["details"]
    assert details["succeeded"] == 3 and details["not_a_word"] == ["zzqx"] and details["followup_batch_id"] is None
    assert {(f["headword"], f["status"], f["error_type"], f["round"], f["retryable"]) for f in details["failed"]} == {
        ("bread", "expired", None, 1, True), ("melon", "errored", "invalid_request_error", 0, False)}
    assert sorted(details["messages_fallback"]) == ["bread", "melon"]
    assert "follow-up rounds spent (1)" in details["recovery"]
    assert any("follow-up rounds spent" in w for w in results["warnings"])
    assert details["llm_batch_usage"]["cost_usd"] > 0 and details["llm_batch_usage"]["requests"] == 3
    analysis = manifest(deck, stage_dirs.WORD_ANALYSIS)["details"]
    assert analysis["word_paths"] == {"apple": "batch", "bread": "messages", "cheese": "batch", "zzqx": "batch",
                                      "melon": "messages"}
    assert analysis["asked_by_messages"] == 2 and analysis["llm_usage"]["requests"] == 2
    assert_key_nowhere(deck, tmp_path / "out" / "claude-batchcli.apkg")
