"""Any chat LLM behind HTTP: OpenAI-compatible `/v1/chat/completions` or Ollama `/api/chat`.

`ChatEndpoint` is configured from `STAGEFLOW_LLM_URL` + `STAGEFLOW_LLM_MODEL` (and optionally
`STAGEFLOW_LLM_API_KEY`, `STAGEFLOW_LLM_FLAVOR`) by `chat_endpoint_from_env`. Flavours:

- `openai` (default): `POST {url}/v1/chat/completions`, or `{url}/chat/completions` when `url`
  already ends in `/v1` (OpenAI, OpenRouter, llama.cpp server, vLLM, Ollama's compatible API).
- `ollama`: `POST {url}/api/chat` with `stream: false` and sampling in `options`.

429, 5xx and transport failures are retried by urllib3 with backoff, jitter and Retry-After
(providers/http.py); what is left counts against the `chat` circuit breaker (providers/breaker.py).
A refusal naming what to fix (401/403, an unknown model, a bad request) is a `BadInputError`.
The API key only goes into the request header; URLs are shown through `redact_url`.

`ChatBackend` is what the journey stages call: this endpoint or Claude (`ClaudeChat`), picked
by `llm_from_env`.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Mapping, Protocol

import dagster as dg
from pydantic import Field

from stageflow_assets.core.errors import BadInputError, ProviderError
from stageflow_assets.core.redact import redact_url, scrub
from stageflow_assets.providers.breaker import BreakerConfig, circuit, guarded

if TYPE_CHECKING:
    import requests

    from stageflow_assets.providers.llm import ClaudeResource

URL_ENV, MODEL_ENV, KEY_ENV, FLAVOR_ENV = (
    "STAGEFLOW_LLM_URL", "STAGEFLOW_LLM_MODEL", "STAGEFLOW_LLM_API_KEY", "STAGEFLOW_LLM_FLAVOR")
WHAT_TO_SET = f"set ANTHROPIC_API_KEY or {URL_ENV} + {MODEL_ENV}"
# reasoning models served through Ollama or llama.cpp may open their reply with their thoughts
_THINKING = re.compile(r"^\s*<think>.*?</think>\s*", re.DOTALL)


class ChatBackend(Protocol):
    """One system + user message in, one plain-text reply out."""

    name: str  # "claude" | "chat"

    def complete(self, system: str, prompt: str, *, temperature: float, top_p: float | None = None,
                 seed: int | None = None) -> tuple[str, str, dict]:
        """(reply text, model, parameters). `parameters` is what was sent (no credentials); a
        `usage` key in it, where present, is what the call cost."""
        ...


def _plain(value: Any) -> Any:
    """A field's value, with an `EnvVar` read (resources used outside a run keep it)."""
    return value.get_value() if isinstance(value, dg.EnvVar) else value


def _one_line(text: Any, limit: int = 300) -> str:
    return scrub(" ".join(str(text).split()))[:limit]


class ChatEndpoint(dg.ConfigurableResource):
    """A chat-completions endpoint (see the module docstring). Wire the key with
    `api_key=dg.EnvVar("STAGEFLOW_LLM_API_KEY")`."""

    name: ClassVar[str] = "chat"

    url: str = Field(repr=False,  # it may carry user:password@; shown through redact_url only
                     description=f"server root, e.g. http://127.0.0.1:11434 ({URL_ENV})")
    model: str = Field(description=f"model name the server knows ({MODEL_ENV})")
    api_key: str | None = Field(default=None, repr=False,
                                description=f"bearer token ({KEY_ENV}); never logged or recorded")
    flavor: Literal["openai", "ollama"] = Field(
        default="openai", description=f"wire format: openai /v1/chat/completions or ollama /api/chat ({FLAVOR_ENV})")
    max_tokens: int = 1024
    timeout_s: float = 120.0
    connect_timeout_s: float = 10.0
    max_retries: int = Field(default=2, ge=0, description="retries after 429, 5xx and transport errors")
    backoff_s: float = 1.0
    breaker: BreakerConfig = Field(default_factory=BreakerConfig,
                                   description="circuit breaker (STAGEFLOW_BREAKER_*)")

    def endpoint(self) -> str:
        """The URL requests go to."""
        root = _plain(self.url).rstrip("/")
        if self.flavor == "ollama":
            return f"{root}/api/chat"
        return f"{root}/chat/completions" if root.endswith("/v1") else f"{root}/v1/chat/completions"

    def parameters(self) -> dict[str, Any]:
        """What changes the output, for fingerprints and records (no credentials)."""
        return {"backend": "chat", "flavor": self.flavor, "url": redact_url(self.endpoint()),
                "model": self.model, "max_tokens": self.max_tokens}

    def breaker_state(self) -> dict[str, Any]:
        return circuit("chat", _plain(self.url), self.breaker).state()

    def complete(self, system: str, prompt: str, *, temperature: float, top_p: float | None = None,
                 seed: int | None = None) -> tuple[str, str, dict]:
        """One reply to `prompt` under `system` (the `ChatBackend` call)."""
        messages = [{"role": "system", "content": system}, {"role": "user", "content": prompt}]
        sampling = {k: v for k, v in (("temperature", temperature), ("top_p", top_p), ("seed", seed))
                    if v is not None}
        if self.flavor == "ollama":
            body = {"model": self.model, "messages": messages, "stream": False,
                    "options": {**sampling, "num_predict": self.max_tokens}}
        else:
            body = {"model": self.model, "messages": messages, "max_tokens": self.max_tokens, **sampling}
        with guarded("chat", _plain(self.url), self.breaker):
            response = self._post(body)
        if response.status_code != 200:
            self._refused(response)
        text, model, usage = self._read(response)
        return text, model, {**self.parameters(), **sampling, "system": system, "usage": usage}

    # ------------------------------------------------------------------ transport
    def _post(self, body: dict) -> "requests.Response":
        """The first answer that is neither a 429 nor a 5xx, urllib3 retrying those (after
        Retry-After, when sent) and transport failures; ProviderError when none came."""
        from stageflow_assets.providers.http import BUSY, post_retrying

        key = (_plain(self.api_key) or "").strip()
        # as `auth`, so that a user:password in the URL (basic auth, used when no key is set)
        # cannot replace the bearer token
        auth = _bearer(key) if key else None
        url = self.endpoint()
        response, last = post_retrying(url, self.max_retries, self.backoff_s, BUSY,
                                       lambda r: f"HTTP {r.status_code}: {_message(r)}", json=body, auth=auth,
                                       timeout=(self.connect_timeout_s, self.timeout_s))
        if response is not None:
            return response
        hint = "; retry later or lower concurrency" if last.startswith("HTTP 429") else ""
        raise ProviderError(
            f"chat endpoint {redact_url(url)} ({self.model}) failed after {self.max_retries + 1} tries "
            f"({last}){hint}", url=redact_url(url), model=self.model)

    def _refused(self, response: "requests.Response") -> None:
        """A 4xx answer as a one-line error saying what to fix."""
        status, message, url = response.status_code, _message(response), redact_url(self.endpoint())
        details = {"status": status, "url": url, "model": self.model}
        if status in (401, 403):
            raise BadInputError(f"chat endpoint {url} refused the API key ({status}): {message}; "
                                f"set {KEY_ENV}", **details)
        if status == 404:
            raise BadInputError(f"chat endpoint {url}: model {self.model!r} not found (404): {message}; "
                                f"check {MODEL_ENV} and {URL_ENV} (flavor {self.flavor})", **details)
        raise BadInputError(f"chat endpoint {url} rejected the request ({status}): {message}", **details)

    def _read(self, response: "requests.Response") -> tuple[str, str, dict[str, int]]:
        """(text, model, token counts) from a 200 answer of either flavour."""
        try:
            data = response.json()
            if self.flavor == "ollama":
                text, cut = data["message"]["content"], data.get("done_reason") == "length"
                usage = {"input_tokens": data.get("prompt_eval_count"), "output_tokens": data.get("eval_count")}
            else:
                choice = data["choices"][0]
                text, cut = choice["message"]["content"], choice.get("finish_reason") == "length"
                counts = data.get("usage") or {}
                usage = {"input_tokens": counts.get("prompt_tokens"), "output_tokens": counts.get("completion_tokens")}
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise ProviderError(f"chat endpoint {redact_url(self.endpoint())} answered 200 without a "
                                f"{self.flavor} chat reply ({type(exc).__name__}: {_one_line(exc, 80)})") from exc
        text = _THINKING.sub("", text or "").strip()
        if cut:
            raise ProviderError(f"chat reply from {self.model} was cut off at max_tokens={self.max_tokens}: "
                                "raise ChatEndpoint.max_tokens", model=self.model)
        if not text:
            raise ProviderError(f"chat endpoint returned an empty reply ({self.model})", model=self.model)
        return text, str(data.get("model") or self.model), {k: v for k, v in usage.items() if v is not None}


def _bearer(key: str) -> Any:
    def apply(request: Any) -> Any:
        request.headers["Authorization"] = f"Bearer {key}"
        return request
    return apply


def _message(response: "requests.Response") -> str:
    """The error text of either flavour: {"error": {"message": …}} or {"error": "…"}."""
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return _one_line(response.text or response.reason or "")
    if isinstance(error, dict):
        error = error.get("message") or error.get("type") or error
    return _one_line(error if error is not None else response.text)


class ClaudeChat:
    """`ClaudeResource` as a `ChatBackend`.

    The Claude API (version 2026-10-21, SDK 2.x) rejects `temperature` and `top_p`: they are not
    sent, Claude samples with its own defaults, and the record says so (`*_requested`, `sampling`).
    """

    name = "claude"

    def __init__(self, claude: "ClaudeResource") -> None:
        self.claude = claude

    def complete(self, system: str, prompt: str, *, temperature: float, top_p: float | None = None,
                 seed: int | None = None) -> tuple[str, str, dict]:
        text, usage = self.claude.complete_text(system, prompt)
        requested = {f"{k}_requested": v for k, v in
                     (("temperature", temperature), ("top_p", top_p), ("seed", seed)) if v is not None}
        return text, self.claude.model, {
            "backend": "claude", "model": self.claude.model, "max_tokens": self.claude.max_tokens,
            **requested, "sampling": "model default (the Claude API takes no temperature, top_p or seed)",
            "system": system, "usage": usage.model_dump(),
        }


def chat_endpoint_from_env(environ: Mapping[str, str] | None = None,
                           breaker: BreakerConfig | None = None) -> ChatEndpoint | None:
    """The endpoint `STAGEFLOW_LLM_*` describe, or None when URL or model is unset. The key stays
    an `EnvVar` (the UI shows its name only)."""
    environ = os.environ if environ is None else environ
    url, model = (environ.get(URL_ENV) or "").strip(), (environ.get(MODEL_ENV) or "").strip()
    if not url or not model:
        return None
    flavor = (environ.get(FLAVOR_ENV) or "openai").strip().lower()
    if flavor not in ("openai", "ollama"):
        raise BadInputError(f"{FLAVOR_ENV}={flavor!r}: use openai or ollama")
    return ChatEndpoint(url=url, model=model, flavor=flavor,
                        api_key=dg.EnvVar(KEY_ENV) if (environ.get(KEY_ENV) or "").strip() else None,
                        **({"breaker": breaker} if breaker is not None else {}))


def llm_from_env(claude: "ClaudeResource | None", chat: ChatEndpoint | None) -> ChatBackend | None:
    """Claude when it has an API key, else the chat endpoint when it has a URL and a model, else
    None (offline: Apertium only)."""
    if claude is not None and (_plain(claude.api_key) or "").strip():
        return ClaudeChat(claude)
    if chat is not None and (_plain(chat.url) or "").strip() and (chat.model or "").strip():
        return chat
    return None
