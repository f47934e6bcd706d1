"""The HTTP providers' retries come from urllib3 (providers/http.py): each provider against its
loopback fake gets through two 5xx answers in exactly three requests, and answers an endless 5xx
with `max_retries + 1` requests and its own one-line error; the waits between are urllib3's."""

from __future__ import annotations

import re
import time
from types import SimpleNamespace

import pytest
import urllib3.util.retry

from stageflow_assets.core.errors import ProviderError
from stageflow_assets.journey.offline_media import OutputConfig
from stageflow_assets.providers import http
from stageflow_assets.providers.ankiconnect import AnkiConnect
from stageflow_assets.providers.breaker import forget_circuits
from stageflow_assets.providers.chat import ChatEndpoint
from stageflow_assets.providers.comfyui import ComfyUIResource
from stageflow_assets.providers.images import OpenAIImages
from stageflow_assets_tests.fakes.comfyui_server import FakeComfyUI
from stageflow_assets_tests.fakes.loopback import LoopbackServer
from stageflow_assets_tests.fakes.openai_chat_server import FAKE_MODEL, FakeChat
from stageflow_assets_tests.vocabulary.fakes import FakeAnki, FakeServer, openai_images, tiny_png

RETRIES, BACKOFF_S = 2, 0.01
FOREVER = 10**6


class Anki:
    def __init__(self, tmp_path) -> None:
        self.fake = FakeAnki()
        self.server = FakeServer(self.fake).start()
        self.error = (f"AnkiConnect at {self.server.url} did not answer version after 3 tries (HTTP 503): "
                      "is Anki running with AnkiConnect?")

    def fail(self, times: int) -> None:
        self.fake.fail_next = times

    def call(self):
        return AnkiConnect(url=self.server.url, max_retries=RETRIES, backoff_s=BACKOFF_S).invoke("version")

    def sent(self) -> int:
        return len(self.server.requests)

    def stop(self) -> None:
        self.server.stop()


class Images:
    def __init__(self, tmp_path) -> None:
        self.failing, images = 0, openai_images(tiny_png())
        self.server = FakeServer(self._answer(images)).start()
        self.error = f"image API at {self.server.url}/v1 failed after 3 tries (HTTP 503: overloaded)"

    def _answer(self, images):
        def answer(path: str, body: dict, headers: dict):
            if self.failing:
                self.failing -= 1
                return 503, {"error": {"message": "overloaded", "type": "server_error"}}
            return images(path, body, headers)
        return answer

    def fail(self, times: int) -> None:
        self.failing = times

    def call(self):
        return OpenAIImages(base_url=self.server.url + "/v1", api_key="sk-test-secret", max_retries=RETRIES,
                            backoff_s=BACKOFF_S).generate("a cat")

    def sent(self) -> int:
        return len(self.server.requests)

    def stop(self) -> None:
        self.server.stop()


class Chat:
    def __init__(self, tmp_path) -> None:
        self.fake = FakeChat().start()
        self.error = (f"chat endpoint {self.fake.base_url}/v1/chat/completions ({FAKE_MODEL}) failed after 3 tries "
                      "(HTTP 503: injected by the fake)")

    def fail(self, times: int) -> None:
        self.fake.fail(503, times=times)

    def call(self):
        endpoint = ChatEndpoint(url=self.fake.base_url, model=FAKE_MODEL, max_retries=RETRIES, backoff_s=BACKOFF_S)
        return endpoint.complete("s", "x", temperature=0.2)

    def sent(self) -> int:
        return len(self.fake.calls())

    def stop(self) -> None:
        self.fake.stop()


class Comfy:
    def __init__(self, tmp_path) -> None:
        self.fake, self.dst = FakeComfyUI(delay_s=0).start(), tmp_path
        self.error = (f"ComfyUI at {self.fake.url} failed on POST /prompt after 3 tries "
                      "(HTTP 500: 500 Internal Server Error): see ComfyUI's log")

    def fail(self, times: int) -> None:
        self.fake.fail_next = times  # this fake's 5xx is a 500

    def call(self):
        comfy = ComfyUIResource(url=self.fake.url, max_retries=RETRIES, backoff_s=BACKOFF_S, poll_interval_s=0.02)
        return comfy.generate(OutputConfig.parse("image:64x64,comfyui"), "a fox", 1, self.dst, "fox")

    def sent(self) -> int:
        return self.fake.count("POST", "/prompt")

    def stop(self) -> None:
        self.fake.stop()


@pytest.fixture(params=[Anki, Images, Chat, Comfy], ids=["ankiconnect", "images", "chat", "comfyui"])
def provider(request, tmp_path):
    forget_circuits()
    made = request.param(tmp_path)
    yield made
    made.stop()
    forget_circuits()


@pytest.fixture
def waits(monkeypatch) -> list[float]:
    """The backoffs urllib3's Retry asks for, recorded instead of slept."""
    asked: list[float] = []
    monkeypatch.setattr(http._Retry, "sleep", lambda self, response=None: asked.append(self.get_backoff_time()))
    return asked


def test_two_5xx_answers_are_retried_by_the_session(provider, waits):
    provider.fail(2)
    provider.call()
    assert provider.sent() == 3
    # the first retry waits backoff_s, the second twice that, each plus up to half backoff_s of jitter
    assert len(waits) == 2
    assert BACKOFF_S <= waits[0] <= 1.5 * BACKOFF_S and 2 * BACKOFF_S <= waits[1] <= 2.5 * BACKOFF_S


def test_an_endless_5xx_is_max_retries_plus_one_requests_and_one_line(provider, waits):
    provider.fail(FOREVER)
    with pytest.raises(ProviderError) as caught:
        provider.call()
    assert str(caught.value) == provider.error
    assert provider.sent() == RETRIES + 1 and len(waits) == RETRIES


def test_the_session_is_urllib3_retrying_only_the_given_statuses():
    retry = http.retrying_session(3, 0.5, http.BUSY).get_adapter("http://127.0.0.1/").max_retries
    assert isinstance(retry, http.Retry)
    assert (retry.total, retry.connect, retry.read, retry.status) == (3, 3, 3, 3)
    assert (retry.allowed_methods, retry.raise_on_status, retry.respect_retry_after_header) == (None, False, True)
    assert retry.status_forcelist == http.BUSY and retry.backoff_factor == 0.5
    assert retry.is_retry("POST", 429) and retry.is_retry("POST", 502) and not retry.is_retry("POST", 400)
    # urllib3 alone would also retry a 413 that says Retry-After
    assert not retry.is_retry("POST", 413, has_retry_after=True)
    no_resend = http.retrying_session(3, 0.5, resend_after_read_error=False).get_adapter("https://x/").max_retries
    assert no_resend.read is False and no_resend.status_forcelist == http.SERVER_ERRORS


@pytest.mark.parametrize(("header", "seconds"), [("2", 2.0), ("0.25", 0.25), ("3600", http.RETRY_AFTER_MAX_S),
                                                 ("soon", 0.0), ("nan", 0.0), ("-4", 0.0)])
def test_retry_after_in_seconds_decimals_capped_and_unreadable_as_none(header, seconds):
    retry = http.retrying_session(1, 0.1).get_adapter("http://x/").max_retries
    assert retry.parse_retry_after(header) == seconds


def test_a_retry_after_answer_is_waited_for(monkeypatch):
    slept: list[float] = []
    monkeypatch.setattr(urllib3.util.retry, "time", SimpleNamespace(sleep=slept.append, time=time.time))
    fake = FakeChat().start()
    try:
        fake.fail(429, times=1, retry_after=0.05)
        ChatEndpoint(url=fake.base_url, model=FAKE_MODEL, max_retries=1, backoff_s=5).complete("s", "x", temperature=0)
    finally:
        fake.stop()
    assert slept == [0.05]  # what the server asked for, not the 5 s backoff


def test_a_post_that_timed_out_is_not_sent_again_but_a_get_is():
    def slow(request):
        time.sleep(0.4)
        return 200, {}, {}

    with LoopbackServer(slow) as server:
        comfy = ComfyUIResource(url=server.url, max_retries=2, backoff_s=0.01, request_timeout_s=0.1)
        with pytest.raises(ProviderError) as caught:
            comfy._request("POST", "/prompt", json={})
        assert str(caught.value) == (f"ComfyUI at {server.url} failed on POST /prompt after sending it once "
                                     "(no answer within 0.1s): see ComfyUI's log")
        assert len(server.log) == 1
        with pytest.raises(ProviderError, match=re.escape("failed on GET /history/x after 3 tries (no answer")):
            comfy._request("GET", "/history/x")
        assert len(server.log) == 1 + 3


def test_spent_read_retries_are_named_read_timeout():
    def slow(request):
        time.sleep(0.4)
        return 200, {}, {}

    with LoopbackServer(slow) as server:
        chat = ChatEndpoint(url=server.url, model="m", max_retries=1, backoff_s=0.01, timeout_s=0.1)
        with pytest.raises(ProviderError, match=r"failed after 2 tries \(ReadTimeout\)$"):
            chat.complete("s", "x", temperature=0)
        assert len(server.log) == 2
