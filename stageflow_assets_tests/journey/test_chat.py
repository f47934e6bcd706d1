"""ChatEndpoint with real `requests` against the loopback chat fake, in both wire formats:
what the server receives, what comes back, and each error as one line a user can act on."""

from __future__ import annotations

import json
import socket

import dagster as dg
import pytest

from stageflow_assets.core.errors import BadInputError, CircuitOpenError, ProviderError
from stageflow_assets.providers.breaker import BreakerConfig, forget_circuits
from stageflow_assets.providers.chat import (
    ChatEndpoint,
    ClaudeChat,
    chat_endpoint_from_env,
    llm_from_env,
)
from stageflow_assets.providers.llm import ClaudeResource
from stageflow_assets_tests.fakes.anthropic_server import FAKE_KEY, message_json
from stageflow_assets_tests.fakes.openai_chat_server import (  # noqa: F401
    FAKE_CHAT_KEY,
    FAKE_MODEL,
    fake_chat,
)


@pytest.fixture(autouse=True)
def _fresh_circuits():
    forget_circuits()
    yield
    forget_circuits()


def endpoint(fake, **overrides) -> ChatEndpoint:
    return ChatEndpoint(**{"url": fake.base_url, "model": FAKE_MODEL, "timeout_s": 10, "backoff_s": 0.01,
                           **overrides})


def one_line(err: pytest.ExceptionInfo) -> str:
    message = err.value.message
    assert "\n" not in message and message == str(err.value)
    return message


def test_openai_flavour_request_and_reply(fake_chat):
    fake_chat.valid_keys = {FAKE_CHAT_KEY}
    text, model, params = endpoint(fake_chat, api_key=FAKE_CHAT_KEY).complete(
        "Translate into Spanish.", "a red house", temperature=0.7, top_p=0.9, seed=42)
    assert text == f"a red house [{FAKE_MODEL} t=0.7 p=0.9 seed=42 sys=Translate into Spanish.]"
    assert model == FAKE_MODEL
    (call,) = fake_chat.calls()
    assert call.path == "/v1/chat/completions" and call.flavor == "openai"
    assert call.headers["authorization"] == f"Bearer {FAKE_CHAT_KEY}"
    assert call.body["messages"] == [{"role": "system", "content": "Translate into Spanish."},
                                     {"role": "user", "content": "a red house"}]
    assert (call.body["temperature"], call.body["top_p"], call.body["seed"]) == (0.7, 0.9, 42)
    assert params["temperature"] == 0.7 and params["seed"] == 42 and params["flavor"] == "openai"
    assert params["usage"]["output_tokens"] > 0
    assert FAKE_CHAT_KEY not in json.dumps(params)


def test_url_ending_in_v1_is_not_doubled(fake_chat):
    endpoint(fake_chat, url=fake_chat.base_url + "/v1/").complete("s", "x", temperature=0.2)
    assert [c.path for c in fake_chat.calls()] == ["/v1/chat/completions"]


def test_ollama_flavour_request_and_reply(fake_chat):
    text, model, params = endpoint(fake_chat, flavor="ollama", max_tokens=77).complete(
        "Rewrite as a poem.", "a red house", temperature=0.8, top_p=None, seed=7)
    assert text == f"a red house [{FAKE_MODEL} t=0.8 p=None seed=7 sys=Rewrite as a]"
    (call,) = fake_chat.calls()
    assert call.path == "/api/chat" and call.body["stream"] is False
    assert call.body["options"] == {"temperature": 0.8, "seed": 7, "num_predict": 77}
    assert "authorization" not in call.headers  # no key configured: none sent
    assert params["flavor"] == "ollama" and "top_p" not in params


def test_reasoning_preamble_is_dropped(fake_chat):
    fake_chat.reply("<think>they want Spanish\nok</think>\n\nuna casa roja")
    text, _, _ = endpoint(fake_chat).complete("s", "a red house", temperature=0.2)
    assert text == "una casa roja"


@pytest.mark.parametrize("flavor", ["openai", "ollama"])
def test_wrong_key_is_bad_input_naming_the_variable(fake_chat, flavor):
    fake_chat.valid_keys = {FAKE_CHAT_KEY}
    with pytest.raises(BadInputError) as err:
        endpoint(fake_chat, flavor=flavor, api_key="sk-wrong-secret-value").complete("s", "x", temperature=0.2)
    message = one_line(err)
    assert "(401)" in message and "STAGEFLOW_LLM_API_KEY" in message and "invalid or missing API key" in message
    assert "sk-wrong-secret-value" not in message and not err.value.retryable
    assert len(fake_chat.calls()) == 1  # not retried


@pytest.mark.parametrize("flavor", ["openai", "ollama"])
def test_unknown_model_is_bad_input_naming_the_model(fake_chat, flavor):
    with pytest.raises(BadInputError) as err:
        endpoint(fake_chat, flavor=flavor, model="no-such-model").complete("s", "x", temperature=0.2)
    message = one_line(err)
    assert "'no-such-model' not found (404)" in message and "STAGEFLOW_LLM_MODEL" in message
    assert "no model named 'no-such-model' is served here" in message  # the server's own words


def test_server_errors_are_retried_then_one_retryable_line(fake_chat):
    fake_chat.fail(500, times=3, message="upstream exploded\nwith a traceback")
    with pytest.raises(ProviderError) as err:
        endpoint(fake_chat, max_retries=2).complete("s", "x", temperature=0.2)
    message = one_line(err)
    assert "failed after 3 tries (HTTP 500: upstream exploded with a traceback)" in message
    assert err.value.retryable and len(fake_chat.calls()) == 3


def test_rate_limit_then_success(fake_chat):
    fake_chat.fail(429, times=2, retry_after=0.01, message="slow down")
    text, _, _ = endpoint(fake_chat, flavor="ollama", max_retries=2).complete("s", "x", temperature=0.2)
    assert text.startswith("x [") and len(fake_chat.calls()) == 3


def test_rate_limit_exhausted_says_retry_later(fake_chat):
    fake_chat.fail(429, times=2, retry_after=0.01, message="slow down")
    with pytest.raises(ProviderError) as err:
        endpoint(fake_chat, max_retries=1).complete("s", "x", temperature=0.2)
    assert "HTTP 429: slow down" in one_line(err) and "retry later" in err.value.message


def test_unreachable_server_is_provider_error():
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    chat = ChatEndpoint(url=f"http://127.0.0.1:{port}", model="m", max_retries=1, backoff_s=0.01)
    with pytest.raises(ProviderError) as err:
        chat.complete("s", "x", temperature=0.2)
    assert "ConnectionError" in one_line(err) and f"127.0.0.1:{port}" in err.value.message


def test_reply_without_choices_is_provider_error(fake_chat):
    fake_chat.reply({"object": "chat.completion", "choices": []})
    with pytest.raises(ProviderError) as err:
        endpoint(fake_chat).complete("s", "x", temperature=0.2)
    assert "answered 200 without a openai chat reply" in one_line(err)


def test_cut_off_reply_is_provider_error(fake_chat):
    fake_chat.reply({"model": FAKE_MODEL, "message": {"role": "assistant", "content": "una ca"},
                     "done": True, "done_reason": "length"})
    with pytest.raises(ProviderError) as err:
        endpoint(fake_chat, flavor="ollama", max_tokens=3).complete("s", "x", temperature=0.2)
    assert "cut off at max_tokens=3" in one_line(err)


def test_breaker_opens_after_repeated_failures(fake_chat):
    chat = endpoint(fake_chat, max_retries=0, breaker=BreakerConfig(fail_max=2, reset_s=60))
    fake_chat.fail(503, times=2)
    for _ in range(2):
        with pytest.raises(ProviderError):
            chat.complete("s", "x", temperature=0.2)
    with pytest.raises(CircuitOpenError) as err:
        chat.complete("s", "x", temperature=0.2)
    assert err.value.message.startswith("chat: circuit open after 2 consecutive failures")
    assert len(fake_chat.calls()) == 2  # the third call never left


def test_refusals_do_not_open_the_circuit(fake_chat):
    chat = endpoint(fake_chat, model="missing", breaker=BreakerConfig(fail_max=1, reset_s=60))
    for _ in range(2):
        with pytest.raises(BadInputError):
            chat.complete("s", "x", temperature=0.2)
    assert chat.breaker_state()["state"] == "closed"


def test_credentials_stay_out_of_parameters_and_errors(fake_chat):
    host = fake_chat.base_url.removeprefix("http://")
    chat = endpoint(fake_chat, url=f"http://user:pw-secret-123@{host}", api_key="sk-never-shown")
    _, _, params = chat.complete("s", "x", temperature=0.2)
    dumped = json.dumps(params) + repr(chat)
    assert "pw-secret-123" not in dumped and "sk-never-shown" not in dumped
    assert params["url"] == f"http://user:***@{host}/v1/chat/completions"
    with pytest.raises(BadInputError) as err:
        endpoint(fake_chat, url=f"http://user:pw-secret-123@{host}", model="missing").complete(
            "s", "x", temperature=0.2)
    assert f"http://user:***@{host}/v1/chat/completions" in one_line(err)
    assert "pw-secret-123" not in err.value.message + json.dumps(err.value.details)


def test_from_env_and_llm_choice(monkeypatch):
    assert chat_endpoint_from_env({}) is None
    assert chat_endpoint_from_env({"STAGEFLOW_LLM_URL": "http://x:11434"}) is None
    chat = chat_endpoint_from_env({"STAGEFLOW_LLM_URL": "http://x:11434", "STAGEFLOW_LLM_MODEL": "llama3.2",
                                   "STAGEFLOW_LLM_FLAVOR": "ollama", "STAGEFLOW_LLM_API_KEY": "sk-k"})
    assert (chat.flavor, chat.model, chat.endpoint()) == ("ollama", "llama3.2", "http://x:11434/api/chat")
    assert isinstance(chat.api_key, dg.EnvVar)  # read at call time, never stored as text
    with pytest.raises(BadInputError, match="STAGEFLOW_LLM_FLAVOR='grpc': use openai or ollama"):
        chat_endpoint_from_env({"STAGEFLOW_LLM_URL": "u", "STAGEFLOW_LLM_MODEL": "m", "STAGEFLOW_LLM_FLAVOR": "grpc"})

    claude = ClaudeResource(api_key=FAKE_KEY)
    assert isinstance(llm_from_env(claude, chat), ClaudeChat)
    assert llm_from_env(ClaudeResource(api_key=" "), chat) is chat
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    assert llm_from_env(ClaudeResource(api_key=dg.EnvVar("ANTHROPIC_API_KEY")), None) is None
    assert llm_from_env(None, None) is None


def test_key_from_an_env_var_in_a_run(fake_chat, monkeypatch):
    monkeypatch.setenv("STAGEFLOW_LLM_API_KEY", FAKE_CHAT_KEY)
    fake_chat.valid_keys = {FAKE_CHAT_KEY}

    @dg.asset
    def reply(chat: ChatEndpoint) -> str:
        return chat.complete("s", "hello", temperature=0.2)[0]

    resource = ChatEndpoint(url=fake_chat.base_url, model=FAKE_MODEL, api_key=dg.EnvVar("STAGEFLOW_LLM_API_KEY"))
    result = dg.materialize([reply], resources={"chat": resource})
    assert result.success and result.output_for_node("reply").startswith("hello [")
    assert fake_chat.calls()[0].headers["authorization"] == f"Bearer {FAKE_CHAT_KEY}"


@pytest.mark.parametrize(("stop_reason", "text", "words"), [
    ("max_tokens", "una ca", "was cut off at max_tokens=4096"),
    ("refusal", "", "was a refusal"),
    ("end_turn", "  ", "was empty"),
])
def test_claude_plain_text_reply_problems(fake_anthropic, stop_reason, text, words):
    fake_anthropic.reply(message_json(text, "claude-sonnet-4-6", msg_id="msg_x", stop_reason=stop_reason))
    llm = ClaudeChat(ClaudeResource(api_key=FAKE_KEY, base_url=fake_anthropic.base_url, max_retries=0))
    with pytest.raises(ProviderError) as err:
        llm.complete("s", "x", temperature=0.7, top_p=0.9)
    assert one_line(err) == f"Claude's reply {words}" + (" (raise ClaudeResource.max_tokens)" if stop_reason == "max_tokens" else "")
