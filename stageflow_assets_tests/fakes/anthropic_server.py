"""A loopback fake of the Claude Messages and Message Batches APIs, for the real `anthropic` SDK.

    def test_x(fake_anthropic):
        fake_anthropic.reply('{"word": "casa"}')                 # canned replies, in order
        fake_anthropic.fail(429, retry_after=0.01)                # then errors, any endpoint
        fake_anthropic.handler = lambda body: "1: hola"           # or compute each reply
        claude = ClaudeResource(api_key=FAKE_KEY, base_url=fake_anthropic.base_url)

Replies to POST /v1/messages come from, in order: the `fail` queue (errors), the `reply` queue,
`handler(body)`, else `"{}"`. A handler returns text, a full Message dict, or `FakeError`.
Batches end after `batch_polls` GETs; `batch_outcomes[custom_id]` ("errored", "expired",
"canceled" or an error type) overrides `succeeded`; succeeded items are answered by
`batch_handler(custom_id, params)` or `handler(params)`. Every request lands in `requests`.
"""

from __future__ import annotations

import json
import re
import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import pytest

from stageflow_assets_tests.fakes.loopback import LoopbackServer, Received, Reply

FAKE_KEY = "fake-claude-key-0123456789abcdef"
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
               403: "permission_error", 404: "not_found_error", 413: "request_too_large",
               429: "rate_limit_error", 500: "api_error", 503: "api_error", 504: "timeout_error",
               529: "overloaded_error"}
BATCH_ERRORS = {"errored": "api_error"}


@dataclass
class FakeError:
    status: int
    error_type: str | None = None
    message: str = "injected by the fake"
    retry_after: float | None = None  # seconds; sent as `retry-after-ms` and `retry-after`
    path: str | None = None  # only requests whose path starts with this


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    raw: bytes
    body: Any = None


@dataclass
class _Batch:
    id: str
    requests: list[dict]
    created_at: datetime
    polls: int = 0
    canceled: bool = False
    results: list[dict] | None = None


def numbered_cues(body: dict) -> list[tuple[int, str]]:
    """(number, text) of every `N: text` line in the latest user message that has any
    (a re-ask after a bad reply has none, so the original cues are found)."""
    for message in reversed(body["messages"]):
        content = message["content"]
        text = content if isinstance(content, str) else "".join(b.get("text", "") for b in content)
        cues = [(int(m.group(1)), m.group(2)) for m in re.finditer(r"(?m)^(\d+): (.*)$", text)]
        if message["role"] == "user" and cues:
            return cues
    return []


def message_json(text: str, model: str, *, msg_id: str, input_tokens: int = 20,
                 output_tokens: int | None = None, stop_reason: str = "end_turn",
                 service_tier: str = "standard") -> dict:
    return {
        "id": msg_id, "type": "message", "role": "assistant", "model": model,
        "content": [{"type": "text", "text": text}], "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": input_tokens,
                  "output_tokens": output_tokens if output_tokens is not None else max(1, len(text) // 4),
                  "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
                  "service_tier": service_tier},
    }


def _rfc3339(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


@dataclass
class FakeAnthropic:
    valid_keys: set[str] | None = field(default_factory=lambda: {FAKE_KEY})  # None: any key
    handler: Callable[[dict], Any] | None = None
    batch_handler: Callable[[str, dict], Any] | None = None
    batch_polls: int = 1  # GETs that still say in_progress
    batch_outcomes: dict[str, str] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    batches: dict[str, _Batch] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._replies: deque[Any] = deque()
        self._counter = 0
        self._server = LoopbackServer(self._receive, keep_alive=True)

    # ------------------------------------------------------------------ scripting
    @property
    def base_url(self) -> str:
        return self._server.url

    def reply(self, *replies: Any) -> None:
        """Queue replies for POST /v1/messages: text, a Message dict, or a FakeError."""
        self._replies.extend(replies)

    def fail(self, status: int, error_type: str | None = None, *, times: int = 1,
             retry_after: float | None = None, message: str = "injected by the fake",
             path: str | None = None) -> None:
        """Answer the next `times` requests (matching `path`, if given) with this error."""
        self._server.script(FakeError(status, error_type, message, retry_after, path), times=times, path=path)

    def calls(self, path: str = "/v1/messages", method: str = "POST") -> list[Recorded]:
        return [r for r in self.requests if r.path == path and r.method == method]

    def _next_id(self, prefix: str) -> str:
        with self._lock:
            self._counter += 1
            return f"{prefix}_fake{self._counter:04d}"

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> FakeAnthropic:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    # ------------------------------------------------------------------ behaviour
    def _receive(self, request: Received) -> Reply:
        headers = request.lower_headers
        self.requests.append(Recorded(request.method, request.path, headers, request.raw, request.body))
        status, payload, extra = self._dispatch(request.method, request.path, headers, request.body)
        content_type = extra.pop("content-type", "application/json")
        return status, payload, {"content-type": content_type, "request-id": self._next_id("req"), **extra}

    def _dispatch(self, method: str, path: str, headers: dict[str, str], body: Any) -> Reply:
        err = self._server.scripted(path)
        if err is not None:
            return _error(err.status, err.error_type, err.message, err.retry_after)
        auth = headers.get("authorization", "")
        key = auth[7:] if auth.startswith("Bearer ") else headers.get("x-api-key", "")
        if not key or (self.valid_keys is not None and key not in self.valid_keys):
            return _error(401, "authentication_error", "invalid x-api-key")
        if "anthropic-version" not in headers:
            return _error(400, "invalid_request_error", "anthropic-version header is required")
        if method == "POST" and not isinstance(body, dict):
            return _error(400, "invalid_request_error", "body must be a JSON object")
        return self._route(method, path, body)

    def _answer(self, body: dict, *, queue: bool, custom_id: str | None = None,
                service_tier: str = "standard") -> dict | FakeError:
        reply: Any = None
        if queue and self._replies:
            reply = self._replies.popleft()
        elif custom_id is not None and self.batch_handler is not None:
            reply = self.batch_handler(custom_id, body)
        elif self.handler is not None:
            reply = self.handler(body)
        if reply is None:
            reply = "{}"
        if isinstance(reply, (FakeError, dict)):
            return reply
        return message_json(str(reply), body["model"], msg_id=self._next_id("msg"),
                            input_tokens=max(1, len(json.dumps(body["messages"])) // 4),
                            service_tier=service_tier)

    def _batch_results(self, batch: _Batch) -> list[dict]:
        lines = []
        for item in batch.requests:
            cid = item["custom_id"]
            outcome = "canceled" if batch.canceled else self.batch_outcomes.get(cid, "succeeded")
            if outcome == "succeeded":
                answer = self._answer(item["params"], queue=False, custom_id=cid, service_tier="batch")
                if isinstance(answer, FakeError):
                    outcome = answer.error_type or ERROR_TYPES.get(answer.status, "api_error")
                else:
                    lines.append({"custom_id": cid, "result": {"type": "succeeded", "message": answer}})
                    continue
            if outcome in ("expired", "canceled"):
                lines.append({"custom_id": cid, "result": {"type": outcome}})
            else:
                etype = BATCH_ERRORS.get(outcome, outcome)
                lines.append({"custom_id": cid, "result": {"type": "errored", "error": {
                    "type": "error", "error": {"type": etype, "message": f"fake {etype}"}}}})
        return lines

    def _batch_json(self, batch: _Batch) -> dict:
        ended = batch.results is not None
        counts = {"processing": 0 if ended else len(batch.requests), "succeeded": 0, "errored": 0,
                  "canceled": 0, "expired": 0}
        for line in batch.results or []:
            counts[line["result"]["type"]] += 1
        return {
            "id": batch.id, "type": "message_batch",
            "processing_status": "ended" if ended else ("canceling" if batch.canceled else "in_progress"),
            "request_counts": counts, "created_at": _rfc3339(batch.created_at),
            "expires_at": _rfc3339(batch.created_at + timedelta(hours=24)),
            "ended_at": _rfc3339(datetime.now(timezone.utc)) if ended else None,
            "cancel_initiated_at": None, "archived_at": None,
            "results_url": f"{self.base_url}/v1/messages/batches/{batch.id}/results" if ended else None,
        }

    def _route(self, method: str, path: str, body: Any) -> tuple[int, Any, dict[str, str]]:
        if method == "POST" and path == "/v1/messages":
            for key in ("model", "max_tokens", "messages"):
                if key not in body:
                    return _error(400, "invalid_request_error", f"{key}: Field required")
            answer = self._answer(body, queue=True)
            if isinstance(answer, FakeError):
                return _error(answer.status, answer.error_type, answer.message, answer.retry_after)
            return 200, answer, {}
        if method == "POST" and path == "/v1/messages/batches":
            ids = [r.get("custom_id") for r in body.get("requests", [])]
            if not ids or len(set(ids)) != len(ids):
                return _error(400, "invalid_request_error", "requests: custom_id must be unique")
            batch = _Batch(self._next_id("msgbatch"), body["requests"], datetime.now(timezone.utc))
            self.batches[batch.id] = batch
            return 200, self._batch_json(batch), {}
        match = re.fullmatch(r"/v1/messages/batches/([\w-]+)(/results|/cancel)?", path)
        if match is None or match.group(1) not in self.batches:
            return _error(404, "not_found_error", f"{method} {path} not found")
        batch, tail = self.batches[match.group(1)], match.group(2)
        if method == "POST" and tail == "/cancel":
            batch.canceled = True
            return 200, self._batch_json(batch), {}
        if method == "GET" and tail is None:
            batch.polls += 1
            if batch.results is None and (batch.polls > self.batch_polls or batch.canceled):
                batch.results = self._batch_results(batch)
            return 200, self._batch_json(batch), {}
        if method == "GET" and tail == "/results":
            if batch.results is None:
                return _error(400, "invalid_request_error", "batch has not ended")
            jsonl = "".join(json.dumps(line) + "\n" for line in batch.results)
            return 200, jsonl.encode(), {"content-type": "application/binary"}
        return _error(405, "invalid_request_error", f"{method} {path} not allowed")


def _error(status: int, error_type: str | None, message: str,
           retry_after: float | None = None) -> tuple[int, dict, dict[str, str]]:
    headers = {}
    if retry_after is not None:
        headers = {"retry-after-ms": str(int(retry_after * 1000)), "retry-after": f"{retry_after:g}"}
    etype = error_type or ERROR_TYPES.get(status, "api_error")
    return status, {"type": "error", "error": {"type": etype, "message": message}}, headers


@pytest.fixture
def fake_anthropic():
    """A started FakeAnthropic; `FAKE_KEY` is the key it accepts."""
    fake = FakeAnthropic().start()
    try:
        yield fake
    finally:
        fake.stop()
