"""The HTTP server under every loopback fake: a real server on 127.0.0.1 (a free port) in a
daemon thread, so the providers' own client code (requests, urllib3's retries) runs unchanged.

    server = LoopbackServer(answer)          # answer(Received) -> (status, payload, headers)
    with server:                             # or server.start() ... server.stop()
        requests.post(server.url + "/x", json={...})
    server.log                               # every Received, in order

A payload is bytes (sent as they are) or anything JSON encodes. `script`/`scripted` queue
replies (errors, mostly) that a fake serves before its normal behaviour.
"""

from __future__ import annotations

import json
import sys
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

Reply = tuple[int, Any, dict[str, str]]


@dataclass
class Received:
    method: str
    target: str  # as on the request line: the query string included
    headers: dict[str, str]  # names as the client sent them
    raw: bytes
    body: Any  # the JSON body; None when empty or not JSON

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    @property
    def lower_headers(self) -> dict[str, str]:
        return {k.lower(): v for k, v in self.headers.items()}


class LoopbackServer:
    """`keep_alive`: answer as HTTP/1.1 (connections reused), else HTTP/1.0 (one per request)."""

    def __init__(self, answer: Callable[[Received], Reply], *, keep_alive: bool = False) -> None:
        self.answer = answer
        self.log: list[Received] = []
        self._lock = threading.Lock()
        self._scripted: list[tuple[str | None, Any]] = []
        self._httpd = _QuietServer(("127.0.0.1", 0), _handler(self, keep_alive))
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)
        self._stopped = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def script(self, item: Any, *, times: int = 1, path: str | None = None) -> None:
        """Queue `item` for the next `times` requests (only those whose path starts with `path`)."""
        with self._lock:
            self._scripted += [(path, item)] * times

    def scripted(self, path: str) -> Any:
        """The first queued item for `path`, taken off the queue; None when there is none."""
        with self._lock:
            for n, (prefix, item) in enumerate(self._scripted):
                if prefix is None or path.startswith(prefix):
                    del self._scripted[n]
                    return item
        return None

    def start(self) -> LoopbackServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Idempotent: a test may close the server early to play a service going away."""
        if self._stopped:
            return
        self._stopped = True
        if self._thread.is_alive():  # shutdown() waits forever for a loop that never ran
            self._httpd.shutdown()
            self._thread.join(timeout=5)
        self._httpd.server_close()

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        # a client that stopped waiting (its timeout, a test's point) is no error of the fake's
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def _handler(server: LoopbackServer, keep_alive: bool) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1" if keep_alive else "HTTP/1.0"

        def log_message(self, *args: Any) -> None:  # keep pytest output clean
            pass

        def _serve(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = None
            received = Received(self.command, self.path, dict(self.headers.items()), raw, body)
            server.log.append(received)
            status, payload, headers = server.answer(received)
            extra = {k.lower(): v for k, v in headers.items()}
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", extra.pop("content-type", "application/octet-stream"
                                                      if isinstance(payload, bytes) else "application/json"))
            self.send_header("content-length", str(len(data)))
            for name, value in extra.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = _serve  # noqa: N815 - http.server's naming

    return Handler
