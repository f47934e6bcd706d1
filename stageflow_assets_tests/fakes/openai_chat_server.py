"""A loopback fake of a chat LLM server speaking both wire formats ChatEndpoint knows:
OpenAI-compatible `POST /v1/chat/completions` and Ollama `POST /api/chat`.

    def test_x(fake_chat):
        fake_chat.fail(429, times=2, retry_after=0.01)      # errors first, in order
        fake_chat.reply("hola")                             # then canned replies
        fake_chat.handler = lambda flavor, body: "..."      # or computed ones
        endpoint = ChatEndpoint(url=fake_chat.base_url, model=FAKE_MODEL)

Unless told otherwise it answers with `echo(body)`: the user's text followed by a visible stamp
of what reached it — `[model t=temperature p=top_p seed=seed sys=<first system words>]` — so a
test sees the request went through. Errors use each flavour's own body: `{"error": {"message",
"type", "code"}}` for OpenAI, `{"error": "..."}` for Ollama. A model outside `models` gets a
404; a key outside `valid_keys` (when set) a 401. Every request lands in `requests`.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

import pytest

from stageflow_assets_tests.fakes.loopback import LoopbackServer, Received, Reply

FAKE_MODEL = "fake-llm-1"
FAKE_CHAT_KEY = "sk-fake-chat-0123456789abcdef"
PATHS = {"/v1/chat/completions": "openai", "/api/chat": "ollama"}
OPENAI_ERRORS = {400: ("invalid_request_error", None), 401: ("invalid_request_error", "invalid_api_key"),
                 403: ("permission_error", None), 404: ("invalid_request_error", "model_not_found"),
                 429: ("rate_limit_error", "rate_limit_exceeded"), 500: ("server_error", None),
                 503: ("server_error", None)}


@dataclass
class ChatError:
    status: int
    message: str = "injected by the fake"
    retry_after: float | None = None


@dataclass
class ChatRecorded:
    flavor: str  # "openai" | "ollama" | "" (another path)
    path: str
    headers: dict[str, str]  # lower-case names
    body: Any


def sampling(flavor: str, body: dict) -> dict[str, Any]:
    """temperature, top_p and seed as the request carried them (Ollama: inside `options`)."""
    source = (body.get("options") or {}) if flavor == "ollama" else body
    return {k: source.get(k) for k in ("temperature", "top_p", "seed")}


def messages_of(body: dict) -> tuple[str, str]:
    """(system text, last user text) of a request."""
    system = " ".join(m["content"] for m in body.get("messages", []) if m.get("role") == "system")
    users = [m["content"] for m in body.get("messages", []) if m.get("role") == "user"]
    return system, users[-1] if users else ""


def echo(flavor: str, body: dict) -> str:
    system, user = messages_of(body)
    s = sampling(flavor, body)
    head = " ".join(system.split()[:3])
    return f"{user} [{body.get('model')} t={s['temperature']} p={s['top_p']} seed={s['seed']} sys={head}]"


@dataclass
class FakeChat:
    models: set[str] | None = field(default_factory=lambda: {FAKE_MODEL})  # None: any model
    valid_keys: set[str] | None = None  # None: no key needed (as a local Ollama)
    handler: Callable[[str, dict], Any] | None = None  # (flavor, body) -> text | ChatError | dict
    requests: list[ChatRecorded] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._replies: deque[Any] = deque()
        self._server = LoopbackServer(self._receive, keep_alive=True)

    @property
    def base_url(self) -> str:
        return self._server.url

    def reply(self, *replies: Any) -> None:
        """Queue answers: text, a ChatError, or a dict sent as the whole 200 body."""
        self._replies.extend(replies)

    def fail(self, status: int, *, times: int = 1, message: str = "injected by the fake",
             retry_after: float | None = None) -> None:
        self._server.script(ChatError(status, message, retry_after), times=times)

    def calls(self, flavor: str | None = None) -> list[ChatRecorded]:
        return [r for r in self.requests if flavor is None or r.flavor == flavor]

    def start(self) -> FakeChat:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    # ------------------------------------------------------------------ behaviour
    def _receive(self, request: Received) -> Reply:
        flavor = PATHS.get(request.path, "")
        headers = request.lower_headers
        self.requests.append(ChatRecorded(flavor, request.path, headers, request.body))
        if not flavor:
            return 404, {"error": f"no route for {request.method} {request.path}"}, {}
        return self._answer(flavor, headers, request.body)

    def _answer(self, flavor: str, headers: dict[str, str], body: Any) -> tuple[int, Any, dict[str, str]]:
        error = self._server.scripted("")
        if error is not None:
            return _error(flavor, error)
        auth = headers.get("authorization", "")
        if self.valid_keys is not None and auth.removeprefix("Bearer ") not in self.valid_keys:
            return _error(flavor, ChatError(401, "invalid or missing API key"))
        if not isinstance(body, dict) or not body.get("messages"):
            return _error(flavor, ChatError(400, "messages: a non-empty list is required"))
        if self.models is not None and body.get("model") not in self.models:
            return _error(flavor, ChatError(404, f"no model named {body.get('model')!r} is served here"))
        with self._lock:
            reply = self._replies.popleft() if self._replies else None
        if reply is None:
            reply = self.handler(flavor, body) if self.handler is not None else echo(flavor, body)
        if isinstance(reply, ChatError):
            return _error(flavor, reply)
        if isinstance(reply, dict):
            return 200, reply, {}
        return 200, _completion(flavor, body, str(reply)), {}


def _completion(flavor: str, body: dict, text: str) -> dict:
    words_in, words_out = len(json.dumps(body["messages"]).split()), len(text.split())
    if flavor == "ollama":
        return {"model": body["model"], "created_at": "2026-01-01T00:00:00Z",
                "message": {"role": "assistant", "content": text}, "done": True, "done_reason": "stop",
                "prompt_eval_count": words_in, "eval_count": words_out}
    return {"id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": words_in, "completion_tokens": words_out,
                      "total_tokens": words_in + words_out}}


def _error(flavor: str, error: ChatError) -> tuple[int, Any, dict[str, str]]:
    headers = {"retry-after": f"{error.retry_after:g}"} if error.retry_after is not None else {}
    if flavor == "ollama":
        return error.status, {"error": error.message}, headers
    etype, code = OPENAI_ERRORS.get(error.status, ("api_error", None))
    return error.status, {"error": {"message": error.message, "type": etype, "param": None, "code": code}}, headers


@pytest.fixture
def fake_chat():
    """A started FakeChat serving FAKE_MODEL, needing no key."""
    fake = FakeChat().start()
    try:
        yield fake
    finally:
        fake.stop()
