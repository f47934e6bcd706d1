"""The circuit breaker on network providers: Claude through the real SDK against the loopback fake
answering 529, AnkiConnect and the images API against a loopback 503, state in this process or
shared through Redis by two processes, and what an open circuit does to a Dagster step."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg
import pytest
from pydantic import BaseModel

from stageflow_assets.core.errors import BadInputError, ProviderError
from stageflow_assets.core.io_manager import StageManifestIOManager
from stageflow_assets.core.paths import StageSpec
from stageflow_assets.core.stage import StageWriter, run_stage
from stageflow_assets.core.stage_store import StageStore
from stageflow_assets.providers.ankiconnect import AnkiConnect
from stageflow_assets.providers.breaker import (
    BreakerConfig,
    CircuitOpenError,
    breaker_config_from_env,
    endpoint_of,
    forget_circuits,
    redact_url,
)
from stageflow_assets.providers.images import OpenAIImages
from stageflow_assets.providers.llm import ClaudeResource
from stageflow_assets_tests.fakes.anthropic_server import FAKE_KEY
from stageflow_assets_tests.vocabulary.fakes import FakeServer

REPO = Path(__file__).resolve().parents[1]
REDIS_URL = "redis://127.0.0.1:6379/0"
GOOD = '{"headword": "casa", "pos": "noun", "definition": "house"}'
STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"


class WordInfo(BaseModel):
    headword: str
    pos: str
    definition: str


@pytest.fixture(autouse=True)
def _fresh_circuits():
    """In-process circuits live for the process: every test starts and ends without any."""
    forget_circuits()
    yield
    forget_circuits()


@pytest.fixture
def redis_breaker():
    """(Redis URL, a key namespace of this test's own); its keys are deleted afterwards."""
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis on 127.0.0.1:6379 is unreachable ({type(exc).__name__}): shared state untested")
    namespace = f"stageflow-test-{uuid.uuid4().hex[:12]}"
    yield REDIS_URL, namespace, client
    keys = list(client.scan_iter(f"{namespace}:*"))
    if keys:
        client.delete(*keys)
    client.close()


def claude(fake, **breaker) -> ClaudeResource:
    # max_retries=0: one 529 is one failed call (the SDK's own retries are tested elsewhere)
    return ClaudeResource(api_key=FAKE_KEY, base_url=fake.base_url, max_retries=0, timeout_s=10,
                          breaker=BreakerConfig(**breaker))


def ask(resource: ClaudeResource) -> WordInfo:
    return resource.complete_json("You are a lexicographer.", "casa", WordInfo)[0]


def trip(resource: ClaudeResource, fake, times: int) -> None:
    """`times` calls answered 529 (overloaded), each failing on its own."""
    fake.fail(529, "overloaded_error", times=times)
    for _ in range(times):
        with pytest.raises(ProviderError, match="overloaded"):
            ask(resource)


def wait_past(state: dict) -> None:
    """Sleep until the cool-down in `state` is over (plus a little)."""
    until = datetime.fromisoformat(state["opened_until"])
    time.sleep(max(0.0, (until - datetime.now(timezone.utc)).total_seconds()) + 0.3)


# --------------------------------------------------------------------------- Claude, in-process
def test_opens_after_n_consecutive_529s_then_fails_fast(fake_anthropic):
    resource = claude(fake_anthropic, fail_max=3, reset_s=60)
    trip(resource, fake_anthropic, 2)
    assert resource.breaker_state()["state"] == "closed"  # two failures: still calling
    trip(resource, fake_anthropic, 1)
    assert len(fake_anthropic.calls()) == 3

    before = datetime.now(timezone.utc)
    with pytest.raises(CircuitOpenError) as err:
        ask(resource)
    assert len(fake_anthropic.calls()) == 3  # failed fast: the fake saw no request
    message = err.value.message
    assert "\n" not in message
    assert message.startswith("claude: circuit open after 3 consecutive failures, until ")
    assert "STAGEFLOW_BREAKER_RESET_S=60" in message
    assert re.search(STAMP, message)
    state = err.value.details["breaker"]
    assert state["state"] == "open" and state["consecutive_failures"] == 3 and state["fail_max"] == 3
    assert state["provider"] == "claude" and state["endpoint"] == endpoint_of(fake_anthropic.base_url)
    assert state["shared_through"] == "this process"
    left = (datetime.fromisoformat(state["opened_until"]) - before).total_seconds()
    assert 30 < left <= 61
    assert not err.value.retryable  # a retry a second later would meet the same open circuit
    assert FAKE_KEY not in json.dumps(state)


def test_half_opens_after_the_cool_down_and_one_success_closes(fake_anthropic):
    resource = claude(fake_anthropic, fail_max=2, reset_s=1.5)
    trip(resource, fake_anthropic, 2)
    state = resource.breaker_state()
    assert state["state"] == "open"
    wait_past(state)
    fake_anthropic.reply(GOOD)
    assert ask(resource).definition == "house"  # the trial call went through
    after = resource.breaker_state()
    assert after["state"] == "closed" and after["consecutive_failures"] == 0
    assert after["opened_until"] is None
    fake_anthropic.reply(GOOD)
    ask(resource)
    assert len(fake_anthropic.calls()) == 4


def test_a_failure_in_half_open_reopens(fake_anthropic):
    resource = claude(fake_anthropic, fail_max=2, reset_s=2)
    trip(resource, fake_anthropic, 2)
    first = resource.breaker_state()
    wait_past(first)
    trip(resource, fake_anthropic, 1)  # the trial call: its own error, then open again
    again = resource.breaker_state()
    assert again["state"] == "open" and again["opened_until"] > first["opened_until"]
    with pytest.raises(CircuitOpenError, match="^claude: circuit open after 3 consecutive failures"):
        ask(resource)
    assert len(fake_anthropic.calls()) == 3


def test_client_errors_and_rejected_replies_do_not_count(fake_anthropic):
    resource = claude(fake_anthropic, fail_max=2, reset_s=60)
    fake_anthropic.fail(400, times=3)
    for _ in range(3):
        with pytest.raises(BadInputError, match="400"):
            ask(resource)
    fake_anthropic.fail(401, times=1)
    with pytest.raises(BadInputError, match="401"):
        ask(resource)
    assert resource.breaker_state()["state"] == "closed"
    # a 400 is the service answering: it breaks a run of failures
    trip(resource, fake_anthropic, 1)
    fake_anthropic.fail(400)
    with pytest.raises(BadInputError):
        ask(resource)
    trip(resource, fake_anthropic, 1)
    assert resource.breaker_state()["consecutive_failures"] == 1
    # invalid JSON re-asked until the provider gives up: every call was answered
    fake_anthropic.handler = lambda body: "not json"
    with pytest.raises(ProviderError, match="no valid WordInfo"):
        resource.complete_json("sys", "casa", WordInfo)
    state = resource.breaker_state()
    assert state["state"] == "closed" and state["consecutive_failures"] == 0


def test_breaker_errors_of_other_providers_and_endpoints_are_their_own(fake_anthropic):
    """One circuit per provider and endpoint: a second Claude endpoint is not affected."""
    resource = claude(fake_anthropic, fail_max=1, reset_s=60)
    trip(resource, fake_anthropic, 1)
    other = ClaudeResource(api_key=FAKE_KEY, base_url="http://127.0.0.1:9", max_retries=0,
                           timeout_s=2, connect_timeout_s=1, breaker=BreakerConfig(fail_max=1, reset_s=60))
    assert other.breaker_state()["state"] == "closed"
    with pytest.raises(ProviderError, match="cannot reach"):  # connection refused counts ...
        ask(other)
    with pytest.raises(CircuitOpenError):  # ... and opened that endpoint's circuit
        ask(other)


# --------------------------------------------------------------------------- Claude, through Redis
CHILD = """
import json, sys
from pydantic import BaseModel
from stageflow_assets.core.errors import StageError
from stageflow_assets.providers.breaker import BreakerConfig, CircuitOpenError
from stageflow_assets.providers.llm import ClaudeResource

class WordInfo(BaseModel):
    headword: str
    pos: str
    definition: str

base_url, key, breaker = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
claude = ClaudeResource(api_key=key, base_url=base_url, max_retries=0, timeout_s=10,
                        breaker=BreakerConfig(**breaker))
try:
    claude.complete_json("sys", "casa", WordInfo)
    print(json.dumps({"outcome": "answered"}))
except CircuitOpenError as exc:
    print(json.dumps({"outcome": "open", "message": exc.message, "state": exc.details["breaker"]}))
except StageError as exc:
    print(json.dumps({"outcome": type(exc).__name__, "message": exc.message}))
"""


def other_process(fake, breaker: dict) -> dict:
    """One Claude call from a second Python process with the same breaker settings."""
    proc = subprocess.run([sys.executable, "-c", CHILD, fake.base_url, FAKE_KEY, json.dumps(breaker)],
                          capture_output=True, text=True, timeout=180, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_two_processes_share_the_circuit_through_redis(fake_anthropic, redis_breaker):
    url, namespace, client = redis_breaker
    settings = {"redis_url": url, "namespace": namespace, "fail_max": 2, "reset_s": 60}
    resource = claude(fake_anthropic, **settings)
    trip(resource, fake_anthropic, 1)  # failure 1 here ...
    fake_anthropic.fail(529, "overloaded_error")
    child = other_process(fake_anthropic, settings)  # ... failure 2 in another process: open
    assert child["outcome"] == "ProviderError" and "overloaded" in child["message"]
    assert len(fake_anthropic.calls()) == 2

    with pytest.raises(CircuitOpenError, match="^claude: circuit open after 2 consecutive failures"):
        ask(resource)  # this process sees the circuit the other one opened
    second = other_process(fake_anthropic, settings)  # and a third process fails fast too
    assert second["outcome"] == "open"
    assert second["message"].startswith("claude: circuit open after 2 consecutive failures, until ")
    assert second["state"]["shared_through"] == url
    assert len(fake_anthropic.calls()) == 2  # neither open call reached the fake

    # pybreaker's keys: <namespace>:pybreaker:<field>, our namespace naming provider and endpoint
    prefix = f"{namespace}:claude:{endpoint_of(fake_anthropic.base_url)}:pybreaker"
    assert client.get(f"{prefix}:state") == b"open"
    assert int(client.get(f"{prefix}:fail_counter")) == 2


def test_redis_circuit_half_opens_and_closes_for_every_process(fake_anthropic, redis_breaker):
    url, namespace, client = redis_breaker
    settings = {"redis_url": url, "namespace": namespace, "fail_max": 1, "reset_s": 2}
    resource = claude(fake_anthropic, **settings)
    trip(resource, fake_anthropic, 1)
    state = resource.breaker_state()
    assert state["state"] == "open"
    wait_past(state)
    fake_anthropic.reply(GOOD, GOOD)
    assert ask(resource).definition == "house"  # the trial call closes it ...
    prefix = f"{namespace}:claude:{endpoint_of(fake_anthropic.base_url)}:pybreaker"
    assert client.get(f"{prefix}:state") == b"closed"
    assert other_process(fake_anthropic, settings) == {"outcome": "answered"}  # ... for others too


def test_redis_down_falls_back_to_this_process(fake_anthropic):
    resource = claude(fake_anthropic, redis_url="redis://user:secret@127.0.0.1:9/0", fail_max=1, reset_s=60)
    state = resource.breaker_state()
    assert state["shared_through"] == "this process" and "secret" not in json.dumps(state)
    trip(resource, fake_anthropic, 1)
    with pytest.raises(CircuitOpenError):
        ask(resource)


# --------------------------------------------------------------------------- Dagster steps
breaker_jobs = dg.DynamicPartitionsDefinition(name="breaker_jobs")
SPEC = StageSpec("toy", "01_meaning")


@dg.asset(partitions_def=breaker_jobs, metadata=SPEC.metadata)
def meaning(context, claude: ClaudeResource, storage: StageStore):
    """A stage that asks Claude, through the stage runtime like every stageflow asset."""
    def work(out: StageWriter) -> None:
        out.details["definition"] = ask(claude).definition

    return run_stage(context, storage.paths, SPEC, inputs=[], config={}, work=work)


def materialize_meaning(resource: ClaudeResource, tmp_path) -> dg.ExecuteInProcessResult:
    store = StageStore(home=str(tmp_path))
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(breaker_jobs.name, ["job-1"])
        return dg.materialize([meaning], instance=instance, partition_key="job-1", raise_on_error=False,
                              resources={"claude": resource, "storage": store,
                                         "io_manager": StageManifestIOManager(store=store)})


def test_an_open_circuit_knows_the_remaining_cool_down(fake_anthropic):
    resource = claude(fake_anthropic, fail_max=1, reset_s=60, wait_retries=4)
    trip(resource, fake_anthropic, 1)
    with pytest.raises(CircuitOpenError) as opened:
        ask(resource)
    assert opened.value.wait_retries == 4 and not opened.value.retryable
    assert 30 <= opened.value.seconds_left() <= 61


def test_a_step_meeting_an_open_circuit_fails_with_the_provider_and_time(fake_anthropic, tmp_path):
    resource = claude(fake_anthropic, fail_max=2, reset_s=60)
    trip(resource, fake_anthropic, 2)
    result = materialize_meaning(resource, tmp_path)
    assert not result.success
    (failure,) = result.get_step_failure_events()
    data = failure.step_failure_data.user_failure_data
    assert data.description.startswith("claude: circuit open after 2 consecutive failures, until ")
    breaker = data.metadata["breaker"].value
    assert breaker["state"] == "open" and breaker["provider"] == "claude"
    assert len(fake_anthropic.calls()) == 2
    # fail fast (the default): its RetryPolicy would only meet the same open circuit
    assert not [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY]


def test_a_waiting_step_is_retried_after_the_cool_down_and_succeeds(fake_anthropic, tmp_path):
    # a cool-down longer than the step takes to start on a loaded machine (2 s was not): the step
    # must meet the circuit still open, then wait for the trial call
    resource = claude(fake_anthropic, fail_max=2, reset_s=15, wait_retries=3)
    trip(resource, fake_anthropic, 2)
    fake_anthropic.reply(GOOD)
    result = materialize_meaning(resource, tmp_path)
    assert result.success and result.output_for_node("meaning").details["definition"] == "house"
    retries = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY]
    assert len(retries) >= 1
    assert len(fake_anthropic.calls()) == 3  # two failures, then the one trial that closed it
    assert resource.breaker_state()["state"] == "closed"


def test_card_images_step_fails_once_the_image_circuit_opens(tmp_path):
    """Through run_stage: the first word's failure counts, the second word meets the open circuit
    and the step fails with its line (not a per-word issue); the failure metadata has the state."""
    from stageflow_assets_tests.vocabulary.test_vocab_images import build

    with dg.instance_for_test() as instance, FakeServer(lambda path, body, headers: (503, {})) as server:
        api = OpenAIImages(base_url=server.url + "/v1", api_key="sk-test-secret", max_retries=0,
                           breaker=BreakerConfig(fail_max=1, reset_s=60))
        _, result = build(tmp_path, instance, "cat\ndog\n", api)
        assert len(server.requests) == 1
    assert not result.success
    (failure,) = [e for e in result.get_step_failure_events() if e.step_key == "card_images"]
    data = failure.step_failure_data.user_failure_data
    assert data.description.startswith("images: circuit open after 1 consecutive failures, until ")
    assert "sk-test" not in json.dumps(data.metadata["input"].value)
    assert data.metadata["input"].value["breaker"]["provider"] == "images"


# --------------------------------------------------------------------------- AnkiConnect, images
def always_503(path, body, headers):
    return 503, {"error": "service unavailable"}


def test_ankiconnect_and_images_open_their_own_circuits():
    settings = BreakerConfig(fail_max=2, reset_s=60)
    with FakeServer(always_503) as server:
        anki = AnkiConnect(url=server.url, max_retries=1, backoff_s=0.01, timeout_s=5, breaker=settings)
        for _ in range(2):
            with pytest.raises(ProviderError, match="did not answer version after 2 tries"):
                anki.invoke("version")
        assert len(server.requests) == 4  # two calls of two tries each
        with pytest.raises(CircuitOpenError, match=f"^ankiconnect: circuit open after 2 consecutive failures, until {STAMP}"):
            anki.invoke("version")
        assert len(server.requests) == 4
        assert anki.with_url(server.url).breaker_state()["state"] == "open"  # per-run override, same Anki

        # the same host:port as an image API: another provider, another circuit
        images = OpenAIImages(base_url=server.url + "/v1", max_retries=0, backoff_s=0.01, breaker=settings)
        assert images.breaker_state()["state"] == "closed"
        for _ in range(2):
            with pytest.raises(ProviderError, match="failed after 1 tries"):
                images.generate("a cat")
        with pytest.raises(CircuitOpenError, match="^images: circuit open after 2 consecutive failures"):
            images.generate("a cat")
        assert len(server.requests) == 6


def test_refusals_of_anki_and_the_image_api_do_not_count():
    settings = BreakerConfig(fail_max=1, reset_s=60)

    def answer(path, body, headers):
        if path.endswith("/images/generations"):
            return 400, {"error": {"message": "Your prompt was rejected"}}
        return 200, {"result": None, "error": "unsupported action"}

    with FakeServer(answer) as server:
        anki = AnkiConnect(url=server.url, max_retries=0, breaker=settings)
        images = OpenAIImages(base_url=server.url + "/v1", max_retries=0, breaker=settings)
        for _ in range(3):
            with pytest.raises(ProviderError, match="unsupported action"):
                anki.invoke("noSuchAction")
            with pytest.raises(ProviderError, match="HTTP 400"):
                images.generate("x")
        assert anki.breaker_state()["state"] == images.breaker_state()["state"] == "closed"


# --------------------------------------------------------------------------- configuration
def test_settings_from_the_environment(monkeypatch):
    assert breaker_config_from_env({}) == BreakerConfig()
    config = breaker_config_from_env({"STAGEFLOW_BREAKER_REDIS": "redis://:pw@127.0.0.1:6379/3",
                                      "STAGEFLOW_BREAKER_FAIL_MAX": "3", "STAGEFLOW_BREAKER_RESET_S": "12.5",
                                      "STAGEFLOW_BREAKER_WAIT_RETRIES": "2"})
    # the URL may hold a password: an EnvVar, resolved by Dagster in the run
    assert isinstance(config.redis_url, dg.EnvVar) and config.redis_url == "STAGEFLOW_BREAKER_REDIS"
    assert (config.fail_max, config.reset_s, config.wait_retries) == (3, 12.5, 2)
    for name, raw in (("STAGEFLOW_BREAKER_FAIL_MAX", "five"), ("STAGEFLOW_BREAKER_FAIL_MAX", "0"),
                      ("STAGEFLOW_BREAKER_RESET_S", "-1"), ("STAGEFLOW_BREAKER_WAIT_RETRIES", "1.5")):
        with pytest.raises(BadInputError, match=name):
            breaker_config_from_env({name: raw})
    assert redact_url("redis://user:pw@host:6380/2") == "redis://user:***@host:6380/2"
    assert endpoint_of("https://key:secret@api.example.com/v1") == "api.example.com"

    from stageflow_assets.vocabulary.resources import vocabulary_resources

    monkeypatch.setenv("STAGEFLOW_BREAKER_FAIL_MAX", "7")
    monkeypatch.setenv("STAGEFLOW_IMAGES_URL", "http://127.0.0.1:9/v1")
    built = vocabulary_resources()
    assert built["ankiconnect"].breaker.fail_max == built["images"].breaker.fail_max == 7
