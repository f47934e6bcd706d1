"""Stage 1's translation and stage 2's interception with real backends: Apertium offline, Claude
through the real `anthropic` SDK against the loopback Claude fake, and a chat endpoint (OpenAI and
Ollama wire formats) against the loopback chat fake."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest

from stageflow_assets.core.errors import BadInputError
from stageflow_assets.journey.interception import (
    MAX_HOPS,
    PERSPECTIVES,
    Hop,
    Translators,
    intercept,
    interception_names,
    stille_post,
    stille_post_chain,
    translate_prompt,
)
from stageflow_assets.journey.perspectives import continent_of
from stageflow_assets.providers.breaker import forget_circuits
from stageflow_assets.providers.chat import ChatEndpoint, ClaudeChat
from stageflow_assets.providers.llm import ClaudeResource
from stageflow_assets.providers.translate import ApertiumTranslator
from stageflow_assets_tests.fakes.anthropic_server import FAKE_KEY
from stageflow_assets_tests.fakes.openai_chat_server import FAKE_MODEL, fake_chat  # noqa: F401

SENTENCE = "The old fisherman sells fresh fish at the market every morning."
WHAT_TO_SET = "set ANTHROPIC_API_KEY or STAGEFLOW_LLM_URL + STAGEFLOW_LLM_MODEL"
# what `apertium -l` lists on this machine, as ISO 639-1 pairs (more may be installed later)
EXPECTED_PAIRS = {("ca", "en"), ("en", "ca"), ("ca", "es"), ("es", "ca"), ("en", "es"), ("es", "en"),
                  ("en", "eo"), ("eo", "en"), ("es", "fr"), ("fr", "es"), ("es", "gl"), ("gl", "es"),
                  ("es", "pt"), ("pt", "es"), ("ro", "es"), ("es", "it"), ("it", "es")}
APERTIUM = ApertiumTranslator()


@pytest.fixture(autouse=True)
def _fresh_circuits():
    forget_circuits()
    yield
    forget_circuits()


def offline() -> Translators:
    return Translators(ApertiumTranslator())


def claude(fake, **overrides) -> ClaudeChat:
    return ClaudeChat(ClaudeResource(**{"api_key": FAKE_KEY, "base_url": fake.base_url, "max_retries": 0,
                                        "timeout_s": 10, **overrides}))


def chat(fake, **overrides) -> ChatEndpoint:
    return ChatEndpoint(**{"url": fake.base_url, "model": FAKE_MODEL, "timeout_s": 10, "backoff_s": 0.01,
                           "max_retries": 0, **overrides})


def error_line(err: pytest.ExceptionInfo) -> str:
    assert "\n" not in err.value.message and str(err.value) == err.value.message
    return err.value.message


def languages(hops: list[Hop]) -> list[str]:
    return [hops[0].source, *(h.target for h in hops)]


# --------------------------------------------------------------------------- stage 1
def test_german_offline_is_one_line_naming_the_pair():
    with pytest.raises(BadInputError) as err:
        translate_prompt("Ein rotes Haus am Meer.", "de", "en", offline())
    assert error_line(err) == f"no translation backend for de→en: {WHAT_TO_SET}"
    assert not err.value.retryable


def test_same_language_passes_through_without_any_backend():
    # an Apertium that does not exist: touching it at all would fail
    translators = Translators(ApertiumTranslator(apertium="/nonexistent/apertium"))
    hop = translate_prompt("A red house by the sea.", "en", "en", translators)
    assert hop == Hop(0, "en", "en", "A red house by the sea.", "none", None, {}, 0.0)


def test_spanish_through_apertium():
    hop = translate_prompt("El perro come una manzana roja.", "es", "en", offline())
    assert (hop.index, hop.backend, hop.model, hop.parameters) == (0, "apertium", "spa-eng", {"mode": "spa-eng"})
    assert hop.text == "The dog eats a red apple."
    assert hop.duration_s > 0 and hop.metadata == {"unknown_words": []}


def test_unknown_language_code_is_named():
    with pytest.raises(BadInputError) as err:
        translate_prompt("x", "xx", "en", offline())
    assert error_line(err).startswith("unknown language code 'xx'")


def test_german_through_claude_records_what_was_sent(fake_anthropic):
    fake_anthropic.handler = lambda body: "A red house by the sea."
    hop = translate_prompt("Ein rotes Haus am Meer.", "de", "en", Translators(APERTIUM, claude(fake_anthropic)))
    assert (hop.backend, hop.model, hop.text) == ("claude", "claude-sonnet-4-6", "A red house by the sea.")
    (call,) = fake_anthropic.calls()
    assert "from German (de) into English (en)" in call.body["system"]
    assert call.body["messages"] == [{"role": "user", "content": "Ein rotes Haus am Meer."}]
    assert "temperature" not in call.body  # the Claude API takes none: recorded as requested only
    assert hop.parameters["temperature_requested"] == 0.2 and hop.parameters["system"] == call.body["system"]
    assert hop.metadata["usage"]["requests"] == 1
    assert FAKE_KEY not in json.dumps(asdict(hop))


def test_claude_error_is_one_line(fake_anthropic):
    fake_anthropic.fail(401)
    with pytest.raises(BadInputError) as err:
        translate_prompt("Ein Haus.", "de", "en", Translators(APERTIUM, claude(fake_anthropic)))
    assert error_line(err).startswith("ANTHROPIC_API_KEY rejected (401")


# --------------------------------------------------------------------------- Stille Post offline
def test_installed_pairs_are_discovered():
    assert offline().apertium_pairs() >= EXPECTED_PAIRS


def test_offline_stille_post_six_real_hops():
    translators = offline()
    hops = stille_post(SENTENCE, "en", translators, iterations=6, seed=1)
    assert [h.index for h in hops] == [1, 2, 3, 4, 5, 6]
    chain = languages(hops)
    assert chain[0] == chain[-1] == "en" and hops[0].metadata["chain"] == chain
    assert all(a.target == b.source for a, b in zip(hops, hops[1:]))
    before = [SENTENCE, *(h.text for h in hops[:-1])]
    for hop, text_in in zip(hops, before):
        assert hop.source != hop.target and (hop.source, hop.target) in translators.apertium_pairs()
        assert hop.backend == "apertium" and hop.model == APERTIUM.mode_for(hop.source, hop.target)
        assert hop.parameters == {"mode": hop.model} and hop.duration_s > 0
        assert hop.text.strip() and hop.text != text_in  # a translation, never a copy
    assert "fisherman" in hops[-1].text  # back in English

    again = stille_post(SENTENCE, "en", translators, iterations=6, seed=1)
    assert [(h.source, h.target, h.text) for h in again] == [(h.source, h.target, h.text) for h in hops]
    other = next(s for s in range(2, 50) if stille_post_chain("en", translators, iterations=6, seed=s) != chain)
    assert languages(stille_post(SENTENCE, "en", translators, iterations=6, seed=other)) != chain


def test_offline_chains_end_home_for_every_length():
    translators = offline()
    for n in range(2, MAX_HOPS + 1):
        chain = stille_post_chain("es", translators, iterations=n, seed=n)
        assert len(chain) == n + 1 and chain[0] == chain[-1] == "es"
        assert all((a, b) in translators.apertium_pairs() for a, b in zip(chain, chain[1:]))
    assert len(stille_post_chain("en", translators, seed=3)) == MAX_HOPS + 1  # the default: 8 hops


def test_offline_walk_impossible_says_so():
    with pytest.raises(BadInputError) as err:
        stille_post(SENTENCE, "ro", offline(), iterations=4)  # Romanian only leaves (ro→es)
    assert error_line(err) == ("no chain of exactly 4 Apertium hops leads from ro back to ro over the "
                               f"installed pairs: {WHAT_TO_SET}, or give --via")


def test_via_chain():
    hops = intercept(SENTENCE, "stille-post", "en", offline(), via=["es", "ca"])
    assert languages(hops) == ["en", "es", "ca", "en"]
    assert [h.model for h in hops] == ["eng-spa", "spa-cat", "cat-eng"]
    assert all(h.metadata["chosen_by"] == "via" for h in hops)


def test_via_hop_nobody_serves_fails_before_translating(monkeypatch):
    translators = offline()
    monkeypatch.setattr(translators, "translate", lambda *a, **k: pytest.fail("translated before checking"))
    with pytest.raises(BadInputError) as err:
        stille_post(SENTENCE, "en", translators, via=["es", "pt"])  # pt→en: no pair
    assert error_line(err) == f"no translation backend for pt→en: {WHAT_TO_SET}"


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"via": ["es", "ca"], "iterations": 5},
     "--via es,ca makes 3 hops (en→es→ca→en), not iterations=5: drop iterations or give 4 languages"),
    ({"via": ["en", "es"]}, "--via: en→en is no translation: neighbouring languages must differ"),
    ({"via": ["es", "xx"]}, "unknown language code 'xx'"),
    ({"via": ["es", "ca", "es", "ca", "es", "ca", "es", "ca"]}, "--via gives 8 languages: at most 7 (8 hops)"),
    ({"iterations": 9}, "iterations=9: Stille Post makes 1 to 8 hops"),
    ({"iterations": 0}, "iterations=0: Stille Post makes 1 to 8 hops"),
    ({"iterations": 1}, "iterations=1: a single hop cannot leave en and come back; use 2 to 8"),
])
def test_chain_mistakes_are_explained(kwargs, message):
    with pytest.raises(BadInputError) as err:
        stille_post(SENTENCE, "en", offline(), **kwargs)
    assert error_line(err).startswith(message)


# --------------------------------------------------------------------------- Stille Post with an LLM
def test_llm_chain_crosses_continents_and_samples_as_asked(fake_chat):
    translators = Translators(APERTIUM, chat(fake_chat))
    hops = stille_post(SENTENCE, "en", translators, seed=5)
    chain = languages(hops)
    assert len(hops) == MAX_HOPS and chain[0] == chain[-1] == "en" and len(set(chain[1:-1])) == MAX_HOPS - 1
    assert all(continent_of(a) != continent_of(b) for a, b in zip(chain, chain[1:]))
    assert all(continent_of(code) for code in chain[1:-1])
    assert stille_post_chain("en", translators, seed=5) == chain
    assert stille_post_chain("en", translators, seed=6) != chain
    for hop, text_in in zip(hops, [SENTENCE, *(h.text for h in hops[:-1])]):
        served_offline = APERTIUM.mode_for(hop.source, hop.target) is not None
        assert hop.backend == ("apertium" if served_offline else "chat")  # Apertium preferred
        if hop.backend == "chat":
            assert hop.text == f"{text_in} [{FAKE_MODEL} t=0.7 p=0.9 seed=5 sys=You are a]"
            assert (hop.parameters["temperature"], hop.parameters["top_p"], hop.parameters["seed"]) == (0.7, 0.9, 5)
    sent = fake_chat.calls("openai")
    assert len(sent) == sum(h.backend == "chat" for h in hops) > 0
    assert all((c.body["temperature"], c.body["top_p"], c.body["seed"]) == (0.7, 0.9, 5) for c in sent)


def test_prefer_decides_when_both_can(fake_chat):
    llm = chat(fake_chat)
    assert Translators(APERTIUM, llm).translate("a red house", "en", "es").backend == "apertium"
    hop = Translators(APERTIUM, llm, prefer="llm").translate("a red house", "en", "es")
    assert hop.backend == "chat" and "into Spanish (es)" in fake_chat.calls()[0].body["messages"][0]["content"]
    with pytest.raises(BadInputError, match="prefer='deepl': use apertium or llm"):
        Translators(APERTIUM, llm, prefer="deepl")


def test_via_through_claude_and_apertium(fake_anthropic):
    fake_anthropic.handler = lambda body: "una casa roja junto al mar"  # its ja→es answer
    hops = stille_post("una casa", "es", Translators(APERTIUM, claude(fake_anthropic)), via=["ja"], seed=2)
    assert [(h.source, h.target, h.backend) for h in hops] == [("es", "ja", "claude"), ("ja", "es", "claude")]
    assert [c.body["messages"][0]["content"] for c in fake_anthropic.calls()] == ["una casa", hops[0].text]


def test_chat_error_mid_chain_is_one_line(fake_chat):
    with pytest.raises(BadInputError) as err:
        stille_post(SENTENCE, "en", Translators(APERTIUM, chat(fake_chat, model="gone")), via=["ja"])
    assert "model 'gone' not found (404)" in error_line(err)


# --------------------------------------------------------------------------- perspectives
def test_at_least_five_perspectives_of_our_own():
    assert len(PERSPECTIVES) >= 5 and "stille-post" not in PERSPECTIVES
    for name, perspective in PERSPECTIVES.items():
        assert perspective.name == name and perspective.title and len(perspective.instruction) > 60


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(BadInputError) as err:
        intercept(SENTENCE, "cubism", "en", offline())
    assert error_line(err) == f"unknown interception 'cubism': use one of {', '.join(interception_names())}"
    assert interception_names()[0] == "stille-post" and set(PERSPECTIVES) <= set(interception_names())


def test_perspective_without_llm_says_what_to_set():
    with pytest.raises(BadInputError) as err:
        intercept(SENTENCE, "bauhaus", "en", offline())
    assert error_line(err) == f"perspective 'bauhaus' needs an LLM: {WHAT_TO_SET} (offline, only stille-post runs)"


@pytest.mark.parametrize("name", sorted(PERSPECTIVES))
def test_perspective_through_claude(fake_anthropic, name):
    fake_anthropic.handler = lambda body: f"rewritten: {body['messages'][0]['content']}"
    (hop,) = intercept(SENTENCE, name, "en", Translators(APERTIUM, claude(fake_anthropic)), seed=3)
    (call,) = fake_anthropic.calls()
    assert PERSPECTIVES[name].instruction in call.body["system"] and "English (en)" in call.body["system"]
    assert call.body["messages"] == [{"role": "user", "content": SENTENCE}]
    assert (hop.index, hop.source, hop.target, hop.backend) == (1, "en", "en", "claude")
    assert hop.text == f"rewritten: {SENTENCE}"
    assert hop.parameters["perspective"] == name and hop.parameters["seed_requested"] == 3
    assert hop.metadata["title"] == PERSPECTIVES[name].title


@pytest.mark.parametrize("flavor", ["openai", "ollama"])
def test_perspective_through_chat_endpoint(fake_chat, flavor):
    (hop,) = intercept(SENTENCE, "child", "es", Translators(APERTIUM, chat(fake_chat, flavor=flavor)), seed=9)
    assert hop.backend == "chat" and hop.model == FAKE_MODEL and (hop.source, hop.target) == ("es", "es")
    assert hop.text == f"{SENTENCE} [{FAKE_MODEL} t=0.8 p=0.9 seed=9 sys=You rewrite short]"
    (call,) = fake_chat.calls(flavor)
    system = call.body["messages"][0]["content"]
    assert PERSPECTIVES["child"].instruction in system and "Spanish (es)" in system
    assert hop.parameters["flavor"] == flavor and hop.metadata["usage"]["input_tokens"] > 0


def test_via_is_refused_for_a_perspective(fake_chat):
    with pytest.raises(BadInputError, match="--via applies to stille-post only"):
        intercept(SENTENCE, "poem", "en", Translators(APERTIUM, chat(fake_chat)), via=["es"])


# --------------------------------------------------------------------------- credentials
def test_credentials_never_in_a_hop(fake_chat, fake_anthropic):
    host = fake_chat.base_url.removeprefix("http://")
    endpoint = chat(fake_chat, url=f"http://user:pw-in-url@{host}", api_key="sk-chat-secret")
    hops = [*stille_post("una casa", "es", Translators(APERTIUM, endpoint), via=["ja"]),
            *intercept(SENTENCE, "opposite", "en", Translators(APERTIUM, endpoint)),
            *intercept(SENTENCE, "technical", "en", Translators(APERTIUM, claude(fake_anthropic)))]
    dumped = json.dumps([asdict(h) for h in hops])
    for secret in ("pw-in-url", "sk-chat-secret", FAKE_KEY):
        assert secret not in dumped
    assert fake_chat.calls()[0].headers["authorization"] == "Bearer sk-chat-secret"  # it was used


class LeakyBackend:
    """A ChatBackend that puts secrets into what it reports: they must not reach the hop."""

    name = "chat"

    def complete(self, system, prompt, *, temperature, top_p=None, seed=None):
        return "hola", "leaky", {"api_key": "k-1", "Authorization": "Bearer k-2",
                                 "url": "https://bob:k-3@llm.example/v1", "temperature": temperature}


def test_backend_secrets_are_dropped_from_parameters():
    hop = Translators(APERTIUM, LeakyBackend()).translate("hello", "en", "ja")
    assert hop.parameters["url"] == "https://bob:***@llm.example/v1" and hop.parameters["temperature"] == 0.2
    assert not {"api_key", "Authorization"} & set(hop.parameters)
