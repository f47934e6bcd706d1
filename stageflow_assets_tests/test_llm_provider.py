"""ClaudeResource with the real anthropic SDK against the loopback fake of the Claude API."""

from __future__ import annotations

import json
import logging
import time
import traceback

import anthropic
import dagster as dg
import pytest
from pydantic import BaseModel

from stageflow_assets.core.errors import BadInputError, ProviderError
from stageflow_assets.providers import llm_pricing
from stageflow_assets.providers.llm import BatchResult, ClaudeResource, Usage, ids_to_rebatch
from stageflow_assets.providers.llm_prompts import PROMPT_VERSION
from stageflow_assets_tests.fakes.anthropic_server import FAKE_KEY, message_json, numbered_cues


class WordInfo(BaseModel):
    headword: str
    pos: str
    definition: str


GOOD = '{"headword": "casa", "pos": "noun", "definition": "house"}'


def claude(fake, **overrides) -> ClaudeResource:
    return ClaudeResource(**{"api_key": FAKE_KEY, "base_url": fake.base_url, "max_retries": 2,
                             "timeout_s": 10, **overrides})


def translator(prefix: str = "es"):
    """A fake Claude that translates `N: text` into `N: <prefix> text`."""
    return lambda body: "\n".join(f"{n}: {prefix} {text}" for n, text in numbered_cues(body))


# --------------------------------------------------------------------------- complete_json
def test_complete_json_happy_path(fake_anthropic):
    fake_anthropic.reply(GOOD)
    parsed, usage = claude(fake_anthropic).complete_json("You are a lexicographer.", "casa", WordInfo)
    assert parsed == WordInfo(headword="casa", pos="noun", definition="house")
    assert usage.requests == 1 and usage.input_tokens > 0 and usage.output_tokens > 0
    (call,) = fake_anthropic.calls()
    assert call.headers["authorization"] == f"Bearer {FAKE_KEY}"
    assert call.headers["anthropic-version"]
    body = call.body
    assert body["model"] == "claude-sonnet-4-6" and body["system"] == "You are a lexicographer."
    assert "temperature" not in body and "top_p" not in body  # removed from SDK 1.x+ Messages
    schema = body["output_config"]["format"]
    assert schema["type"] == "json_schema"
    assert schema["schema"]["additionalProperties"] is False
    assert set(schema["schema"]["required"]) == {"headword", "pos", "definition"}


def test_complete_json_invalid_json_is_fed_back_then_valid(fake_anthropic):
    fake_anthropic.reply('{"headword": "casa", "pos": "noun"', GOOD)
    parsed, usage = claude(fake_anthropic).complete_json("sys", "casa", WordInfo)
    assert parsed.definition == "house"
    assert usage.requests == 2  # the failed attempt was paid for too
    first, second = fake_anthropic.calls()
    assert len(first.body["messages"]) == 1
    roles = [m["role"] for m in second.body["messages"]]
    assert roles == ["user", "assistant", "user"]
    assert second.body["messages"][1]["content"] == '{"headword": "casa", "pos": "noun"'
    assert "Invalid JSON" in second.body["messages"][2]["content"]


def test_complete_json_validation_failure_gives_up_clearly(fake_anthropic):
    fake_anthropic.handler = lambda body: '{"headword": "casa", "pos": 3}'
    with pytest.raises(ProviderError) as err:
        claude(fake_anthropic, max_fix_attempts=1).complete_json("sys", "casa", WordInfo)
    assert "no valid WordInfo after 2 attempts" in err.value.message
    assert "definition" in err.value.message and "pos" in err.value.message
    assert err.value.retryable
    assert err.value.details["usage"]["requests"] == 2
    assert len(fake_anthropic.calls()) == 2
    assert "pos: Input should be a valid string" in fake_anthropic.calls()[1].body["messages"][2]["content"]


def test_truncated_reply_is_not_parsed(fake_anthropic):
    fake_anthropic.reply(message_json(GOOD[:20], "claude-sonnet-4-6", msg_id="m1", stop_reason="max_tokens"),
                         GOOD)
    parsed, usage = claude(fake_anthropic).complete_json("sys", "casa", WordInfo)
    assert parsed.headword == "casa" and usage.requests == 2
    assert "max_tokens" in fake_anthropic.calls()[1].body["messages"][2]["content"]


# --------------------------------------------------------------------------- translate_numbered
def test_translate_numbered_parity_ok(fake_anthropic):
    fake_anthropic.handler = translator()
    lines = ["Hello there.", "How are\nyou?", "", "Fine."]
    out, usage = claude(fake_anthropic).translate_numbered(lines, "en", "es", {})
    assert out == ["es Hello there.", "es How are you?", "", "es Fine."]  # blank cue kept, unsent
    assert usage.requests == 1
    (call,) = fake_anthropic.calls()
    user = call.body["messages"][0]["content"]
    assert "1: Hello there.\n2: How are you?\n3: Fine." in user
    assert "from en to es" in call.body["system"]


def test_translate_numbered_chunks_keep_global_numbers(fake_anthropic):
    fake_anthropic.handler = translator()
    lines = [f"line {i}" for i in range(5)]
    out, usage = claude(fake_anthropic, translate_chunk_lines=2).translate_numbered(lines, "en", "es")
    assert out == [f"es line {i}" for i in range(5)]
    assert usage.requests == 3
    assert [n for n, _ in numbered_cues(fake_anthropic.calls()[2].body)] == [5]


def test_translate_numbered_mismatch_then_retry_ok(fake_anthropic):
    fake_anthropic.reply("1: hola\n3: adiós")  # lost cue 2, once
    fake_anthropic.handler = translator()
    out, usage = claude(fake_anthropic).translate_numbered(["hi", "so", "bye"], "en", "es", {})
    assert out == ["es hi", "es so", "es bye"]
    assert usage.requests == 2
    feedback = fake_anthropic.calls()[1].body["messages"][2]["content"]
    assert "2 numbered lines for 3 cues" in feedback and "missing 2" in feedback


@pytest.mark.parametrize("bad", ["1: uno\n2: dos\n3: tres\n4: cuatro", "1: uno\n2:\n3: tres",
                                 "Here you go:\n1: uno\n2: dos\n3: tres"])
def test_translate_numbered_mismatch_forever_is_a_clear_error(fake_anthropic, bad):
    fake_anthropic.handler = lambda body: bad
    with pytest.raises(ProviderError) as err:
        claude(fake_anthropic, max_fix_attempts=2).translate_numbered(["a", "b", "c"], "en", "es", {})
    assert "en→es of cues 1-3 failed the cue-parity check after 3 attempts" in err.value.message
    assert len(fake_anthropic.calls()) == 3


def test_glossary_terms_are_forced_in_the_prompt(fake_anthropic):
    fake_anthropic.handler = translator()
    glossary = {"Mr. Darcy": "el señor Darcy", "Pemberley": "Pemberley"}
    claude(fake_anthropic).translate_numbered(["Mr. Darcy left Pemberley."], "en", "es", glossary)
    system = fake_anthropic.calls()[0].body["system"]
    assert "Glossary (mandatory)" in system
    assert "- Mr. Darcy → el señor Darcy" in system and "- Pemberley → Pemberley" in system


# --------------------------------------------------------------------------- transport
def test_429_with_retry_after_is_honoured_then_succeeds(fake_anthropic):
    fake_anthropic.fail(429, retry_after=0.3)
    fake_anthropic.reply(GOOD)
    start = time.monotonic()
    parsed, usage = claude(fake_anthropic).complete_json("sys", "casa", WordInfo)
    assert time.monotonic() - start >= 0.3
    assert parsed.headword == "casa" and usage.requests == 1
    first, second = fake_anthropic.calls()
    assert second.headers["x-stainless-retry-count"] == "1"


def test_529_overloaded_then_succeeds(fake_anthropic):
    fake_anthropic.fail(529, times=2, retry_after=0.01)
    fake_anthropic.handler = translator()
    out, _ = claude(fake_anthropic).translate_numbered(["hi"], "en", "es", {})
    assert out == ["es hi"] and len(fake_anthropic.calls()) == 3


def test_backoff_without_retry_after(fake_anthropic):
    fake_anthropic.fail(503)
    fake_anthropic.reply(GOOD)
    start = time.monotonic()
    claude(fake_anthropic, max_retries=1).complete_json("sys", "casa", WordInfo)
    assert time.monotonic() - start >= 0.3  # SDK backoff: 0.5 s × jitter (0.75-1)


def test_500s_exhausted_is_a_retryable_provider_error(fake_anthropic):
    fake_anthropic.fail(500, times=5, retry_after=0.01)
    with pytest.raises(ProviderError) as err:
        claude(fake_anthropic, max_retries=2).complete_json("sys", "casa", WordInfo)
    assert "Claude API error 500 (api_error) on messages.create after 2 retries" in err.value.message
    assert err.value.retryable and err.value.details["request_id"].startswith("req_")
    assert len(fake_anthropic.calls()) == 3


def test_529_exhausted_says_overloaded(fake_anthropic):
    fake_anthropic.fail(529, times=3, retry_after=0.01)
    with pytest.raises(ProviderError, match=r"overloaded \(529\).*after 2 retries"):
        claude(fake_anthropic).complete_json("sys", "casa", WordInfo)


def test_401_fails_at_once_naming_the_key(fake_anthropic):
    with pytest.raises(BadInputError) as err:
        claude(fake_anthropic, api_key="wrong-claude-key", max_retries=5).complete_json("s", "p", WordInfo)
    assert err.value.message.startswith("ANTHROPIC_API_KEY rejected (401")
    assert not err.value.retryable
    assert len(fake_anthropic.calls()) == 1


@pytest.mark.parametrize("status,needle", [(400, "rejected messages.create (400 invalid_request_error)"),
                                           (403, "lacks permission"), (404, "check ClaudeResource.model")])
def test_client_errors_are_not_retried(fake_anthropic, status, needle):
    fake_anthropic.fail(status, times=3)
    with pytest.raises(BadInputError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        claude(fake_anthropic, max_retries=5).complete_json("s", "p", WordInfo)
    assert len(fake_anthropic.calls()) == 1


def test_missing_key_is_a_clear_error():
    with pytest.raises(BadInputError, match="ANTHROPIC_API_KEY is not set"):
        ClaudeResource(api_key="").complete_json("s", "p", WordInfo)


def test_timeout_comes_from_the_resource(fake_anthropic):
    fake_anthropic.handler = lambda body: time.sleep(1.0) or GOOD
    start = time.monotonic()
    with pytest.raises(ProviderError, match=r"timed out after 0.3s \(0 retries\); raise ClaudeResource"):
        claude(fake_anthropic, timeout_s=0.3, max_retries=0).complete_json("s", "p", WordInfo)
    assert time.monotonic() - start < 0.9


def test_unreachable_server_is_a_provider_error():
    with pytest.raises(ProviderError, match="cannot reach the Claude API"):
        ClaudeResource(api_key=FAKE_KEY, base_url="http://127.0.0.1:9", max_retries=0,
                       timeout_s=2).complete_json("s", "p", WordInfo)


# --------------------------------------------------------------------------- batches
def _word_requests(words):
    return [(f"w-{w}", "You are a lexicographer.", f"Describe {w}.", WordInfo) for w in words]


def test_prepare_batch_is_deterministic_and_checks_ids(fake_anthropic):
    resource = claude(fake_anthropic)
    requests = _word_requests(["casa", "perro"])
    assert resource.prepare_batch(requests) == resource.prepare_batch(requests)
    item = resource.prepare_batch(requests)[0]
    assert item["custom_id"] == "w-casa"
    assert item["params"]["output_config"]["format"]["schema"]["additionalProperties"] is False
    with pytest.raises(BadInputError, match="repeated"):
        resource.prepare_batch(requests + requests[:1])
    with pytest.raises(BadInputError, match="invalid"):
        resource.prepare_batch([("w casa!", "s", "p", WordInfo)])
    assert fake_anthropic.requests == []  # nothing sent


def test_batch_lifecycle_and_rebatch(fake_anthropic):
    fake_anthropic.batch_polls = 2
    fake_anthropic.batch_outcomes = {"w-b": "overloaded_error", "w-c": "expired",
                                     "w-d": "invalid_request_error"}
    fake_anthropic.batch_handler = lambda cid, params: (
        '{"headword": "e"}' if cid == "w-e" else GOOD.replace("casa", cid))
    resource = claude(fake_anthropic)

    batch_id = resource.submit_batch(_word_requests("abcde"))
    (create,) = fake_anthropic.calls("/v1/messages/batches")
    assert [r["custom_id"] for r in create.body["requests"]] == ["w-a", "w-b", "w-c", "w-d", "w-e"]
    assert resource.batch_status(batch_id) == ("in_progress", {
        "canceled": 0, "errored": 0, "expired": 0, "processing": 5, "succeeded": 0})
    with pytest.raises(ProviderError, match="is in_progress, not ended"):
        resource.batch_results(batch_id, WordInfo)
    status, counts = resource.batch_status(batch_id)
    assert status == "ended" and counts == {"canceled": 0, "errored": 2, "expired": 1,
                                            "processing": 0, "succeeded": 2}

    results = resource.batch_results(batch_id, WordInfo)
    assert set(results) == {"w-a", "w-b", "w-c", "w-d", "w-e"}
    assert results["w-a"].status == "succeeded" and results["w-a"].parsed.headword == "w-a"
    assert results["w-a"].usage.requests == 1
    assert (results["w-b"].status, results["w-b"].error_type) == ("errored", "overloaded_error")
    assert results["w-c"].status == "expired"
    assert results["w-d"].error_type == "invalid_request_error"  # needs a fix, not a retry
    assert results["w-e"].error_type == "invalid_output" and "definition" in results["w-e"].error_message
    assert results["w-e"].usage.requests == 1  # paid for even though unusable
    assert ids_to_rebatch(results) == ["w-b", "w-c", "w-e"]

    again = resource.submit_batch([r for r in _word_requests("abcde") if r[0] in ids_to_rebatch(results)])
    assert again != batch_id
    assert len(fake_anthropic.calls("/v1/messages/batches")[1].body["requests"]) == 3


def test_batch_results_with_a_schema_per_item(fake_anthropic):
    class Other(BaseModel):
        value: int

    fake_anthropic.batch_polls = 0
    fake_anthropic.batch_handler = lambda cid, params: GOOD if cid == "w-a" else '{"value": 7}'
    resource = claude(fake_anthropic)
    batch_id = resource.submit_batch([("w-a", "s", "p", WordInfo), ("n-1", "s", "p", Other)])
    results = resource.batch_results(batch_id, {"w-a": WordInfo, "n-1": Other})
    assert results["n-1"].parsed == Other(value=7) and results["w-a"].parsed.pos == "noun"


def test_unknown_batch_is_a_clear_error(fake_anthropic):
    with pytest.raises(BadInputError, match="404"):
        claude(fake_anthropic).batch_status("msgbatch_nope")


def test_rebatch_can_include_canceled():
    results = [BatchResult(custom_id="x", status="canceled"),
               BatchResult(custom_id="y", status="errored", error_type="rate_limit_error")]
    assert ids_to_rebatch(results) == ["y"]
    assert ids_to_rebatch(results, include_canceled=True) == ["x", "y"]


# --------------------------------------------------------------------------- usage and cost
def test_usage_and_cost_normal_vs_batch_rate(fake_anthropic):
    fake_anthropic.reply(message_json(GOOD, "claude-sonnet-4-6", msg_id="m1", input_tokens=1000,
                                      output_tokens=2000))
    resource = claude(fake_anthropic)
    _, usage = resource.complete_json("s", "p", WordInfo)
    assert (usage.input_tokens, usage.output_tokens) == (1000, 2000)
    assert usage.cost_usd == pytest.approx((1000 * 3 + 2000 * 15) / 1e6)  # $3 / $15 per MTok

    fake_anthropic.batch_polls = 0
    fake_anthropic.batch_handler = lambda cid, params: message_json(
        GOOD, params["model"], msg_id=cid, input_tokens=1000, output_tokens=2000, service_tier="batch")
    batch_id = resource.submit_batch(_word_requests(["a", "b"]))
    results = resource.batch_results(batch_id, WordInfo)
    batch_usage = Usage.total(r.usage for r in results.values())
    assert batch_usage.requests == 2
    assert batch_usage.cost_usd == pytest.approx(2 * usage.cost_usd * llm_pricing.BATCH_RATE)
    assert (usage + batch_usage).input_tokens == 3000


def test_cost_with_cache_tokens_override_and_unknown_model(fake_anthropic):
    reply = message_json(GOOD, "m", msg_id="m1", input_tokens=100, output_tokens=10)
    reply["usage"].update(cache_creation_input_tokens=1000, cache_read_input_tokens=10_000,
                          cache_creation={"ephemeral_5m_input_tokens": 600, "ephemeral_1h_input_tokens": 400})
    fake_anthropic.reply(reply, reply)
    _, usage = claude(fake_anthropic, input_usd_per_mtok=1.0, output_usd_per_mtok=10.0).complete_json(
        "s", "p", WordInfo)
    assert (usage.cache_creation_input_tokens, usage.cache_read_input_tokens) == (1000, 10_000)
    assert usage.cost_usd == pytest.approx((100 + 10 * 10 + 600 * 1.25 + 400 * 2 + 10_000 * 0.1) / 1e6)
    _, unknown = claude(fake_anthropic, model="claude-unpriced-9").complete_json("s", "p", WordInfo)
    assert unknown.cost_usd is None and (usage + unknown).cost_usd is None


def test_price_table_resolves_dated_ids():
    assert llm_pricing.price_for("claude-haiku-4-5-20251001") == llm_pricing.PRICES["claude-haiku-4-5"]
    assert llm_pricing.price_for("claude-unknown") is None


# --------------------------------------------------------------------------- secrets and wiring
def test_api_key_never_leaks(fake_anthropic, caplog):
    caplog.set_level(logging.DEBUG)
    resource = claude(fake_anthropic, max_fix_attempts=1)
    fake_anthropic.fail(429, retry_after=0.01)
    fake_anthropic.reply("not json", GOOD)
    _, usage = resource.complete_json("s", "p", WordInfo)
    errors: list[BaseException] = []
    for status, times in ((500, 3), (401, 1)):
        fake_anthropic.fail(status, times=times, retry_after=0.01)
        with pytest.raises((ProviderError, BadInputError)) as err:
            resource.complete_json("s", "p", WordInfo)
        errors.append(err.value)
    with pytest.raises(BadInputError) as err:
        claude(fake_anthropic, api_key=FAKE_KEY + "x").complete_json("s", "p", WordInfo)
    errors.append(err.value)

    exposed = [json.dumps(resource.parameters()), json.dumps(resource.versions()), usage.model_dump_json(),
               repr(resource), str(resource), caplog.text]
    exposed += ["".join(traceback.format_exception(e)) + repr(e.details) for e in errors]
    assert resource.parameters() == {"backend": "claude", "model": "claude-sonnet-4-6", "max_tokens": 4096,
                                     "prompt_version": PROMPT_VERSION}
    assert "retrying request" in caplog.text.lower()  # the logs were captured
    for text in exposed:
        assert FAKE_KEY not in text
    for call in fake_anthropic.requests:  # only ever in the Authorization header
        assert FAKE_KEY not in call.raw.decode()
        assert [k for k, v in call.headers.items() if FAKE_KEY in v] in ([], ["authorization"])


def test_resource_wired_with_envvar_in_a_dagster_run(fake_anthropic, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", FAKE_KEY)
    fake_anthropic.handler = translator()

    @dg.asset
    def translated(context, claude: ClaudeResource) -> list[str]:
        lines, usage = claude.translate_numbered(["Hello."], "en", "es", {"Hello": "Hola"})
        context.add_output_metadata({**claude.parameters(), "cost_usd": usage.cost_usd})
        return lines

    resource = ClaudeResource(api_key=dg.EnvVar("ANTHROPIC_API_KEY"), base_url=fake_anthropic.base_url)
    result = dg.materialize([translated], resources={"claude": resource})
    assert result.success and result.output_for_node("translated") == ["es Hello."]
    events = json.dumps([str(e) for e in result.all_events])
    assert FAKE_KEY not in events
    assert fake_anthropic.calls()[0].headers["authorization"] == f"Bearer {FAKE_KEY}"


def test_sdk_version_is_2x(fake_anthropic):
    assert claude(fake_anthropic).versions()["anthropic"].split(".")[0] == "2"
    assert anthropic.__version__ == claude(fake_anthropic).versions()["anthropic"]
