"""Where stageflow's events go (`STAGEFLOW_EVENT_SINK`): a JSON-lines file, HTTP, a Redis stream.

Each sink takes a batch of events and delivers all of it or raises; only the sink's delivery
thread calls it (`core.event_sink`), never a run's own thread.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from stageflow_assets.core.redact import redact_url  # noqa: F401 - part of this module's API

SINK_ENV = "STAGEFLOW_EVENT_SINK"
HTTP_TIMEOUT_S = (1.0, 2.0)  # connect, read: a stalled endpoint costs the delivery thread 3 s at most
REDIS_TIMEOUT_S = (1.0, 2.0)
DEFAULT_STREAM = "stageflow:events"
STREAM_MAXLEN = 100_000  # approximate trimming (XADD MAXLEN ~): Redis trims whole nodes, cheaply


class SinkConfigError(ValueError):
    """`STAGEFLOW_EVENT_SINK` names no sink stageflow knows."""


class EventSink(Protocol):
    def send(self, events: list[dict[str, Any]]) -> None: ...

    def close(self) -> None: ...


def _dumps(event: dict[str, Any]) -> str:
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False, default=str)


class FileSink:
    """Appends one JSON line per event. One `write` per batch on an O_APPEND descriptor: on a
    local file system whole batches from several processes never interleave."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def send(self, events: list[dict[str, Any]]) -> None:
        data = "".join(_dumps(e) + "\n" for e in events).encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            view = memoryview(data)
            while view:  # a regular file takes it whole; a full disk raises
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)

    def close(self) -> None:
        pass


class HttpSink:
    """POSTs each batch as one JSON array (`Content-Type: application/json`), up to the batch
    size of the delivery thread; `user:password@` in the URL becomes basic auth."""

    def __init__(self, url: str) -> None:
        import requests

        self.url = url
        self.session = requests.Session()

    def send(self, events: list[dict[str, Any]]) -> None:
        body = ("[" + ",".join(_dumps(e) for e in events) + "]").encode()
        response = self.session.post(self.url, data=body, timeout=HTTP_TIMEOUT_S,
                                     headers={"Content-Type": "application/json"})
        response.raise_for_status()

    def close(self) -> None:
        self.session.close()


class RedisSink:
    """XADD per event (field `event` = the JSON) to a stream trimmed to ~`maxlen` entries,
    one pipelined round trip per batch."""

    def __init__(self, url: str) -> None:
        import redis

        parts = urlsplit(url)
        params = dict(parse_qsl(parts.query))
        self.stream = params.pop("stream", DEFAULT_STREAM)
        self.maxlen = int(params.pop("maxlen", STREAM_MAXLEN))
        # redis-py rejects query parameters it does not know, so ours are taken out first
        plain = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(params), parts.fragment))
        self.client = redis.Redis.from_url(plain, socket_connect_timeout=REDIS_TIMEOUT_S[0],
                                           socket_timeout=REDIS_TIMEOUT_S[1])

    def send(self, events: list[dict[str, Any]]) -> None:
        pipe = self.client.pipeline(transaction=False)
        for event in events:
            pipe.xadd(self.stream, {"event": _dumps(event)}, maxlen=self.maxlen, approximate=True)
        pipe.execute()

    def close(self) -> None:
        self.client.close()


def check_sink_url(url: str) -> str:
    """The scheme of a usable sink URL, or SinkConfigError (one line, the URL redacted)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "file" and parts.path.startswith("/") and parts.netloc in ("", "localhost"):
        return scheme
    if scheme in ("http", "https") and parts.hostname:
        return scheme
    if scheme in ("redis", "rediss", "unix"):
        return scheme
    raise SinkConfigError(f"{SINK_ENV}={redact_url(url)!r}: give file:///abs/path.jsonl, http(s)://host/path "
                          "or redis://host:port/N?stream=NAME")


def make_sink(url: str) -> EventSink:
    scheme = check_sink_url(url)
    if scheme == "file":
        return FileSink(Path(unquote(urlsplit(url).path)))
    if scheme in ("http", "https"):
        return HttpSink(url)
    return RedisSink(url)
