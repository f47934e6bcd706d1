"""stageflow's event stream: the taxonomy, the sinks (file, HTTP, Redis) and `stageflow events`."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dagster as dg
import pytest
import yaml

from stageflow_assets.core import event_sink
from stageflow_assets.core.event_log import event_lines
from stageflow_assets.core.event_sink import EventSinkHandler, Outbox, report_run_event
from stageflow_assets.core.event_sinks import SINK_ENV, redact_url
from stageflow_assets.core.events import CREATED_REPORTED_TAG, EventMapper, scrub
from stageflow_assets.core.keys import job_key_for_file
from stageflow_assets.core.stage import JOB_TAG, SOURCE_TAG
from stageflow_assets_tests.conftest import REPO, STAGEFLOW, run_cli

# the instance setting the templates ship, so these tests attach the handler as every home does
PYTHON_LOGS = {"python_logs": yaml.safe_load((REPO / "dagster.yaml").read_text())["python_logs"]}
TAGS = {JOB_TAG: "clip-0123abcd", SOURCE_TAG: "test"}
REQUIRED = {"type", "time", "run_id", "job", "id"}


# ---- a small real job: a stage, a stage its manifest says was skipped, a failing stage, a check

@dg.asset
def clip() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"status": "success"})


@dg.asset(deps=[clip])
def lang_track() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"status": "skipped", "skipped_reason": "no backend serves en→xx"})


@dg.asset(deps=[clip])
def broken() -> None:
    raise dg.Failure(description="broken: the tool died (exit 3)\nmore detail on a second line")


@dg.asset_check(asset=clip)
def clip_ok() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True)


def _materialize(instance: dg.DagsterInstance, tags: dict | None = None) -> dg.ExecuteInProcessResult:
    return dg.materialize([clip, lang_track, broken, clip_ok], instance=instance, tags=tags or TAGS,
                          raise_on_error=False)


def _types(events: list[dict]) -> list[str]:
    return [e["type"] for e in events]


# ---- the mapping

def test_a_real_runs_dagster_events_map_to_the_taxonomy():
    with dg.instance_for_test() as instance:
        result = _materialize(instance)
        entries = instance.all_logs(result.run_id)
    mapper = EventMapper(check_steps=frozenset({"clip_clip_ok"}))
    events = [e for entry in entries if entry.dagster_event
              for e in mapper.map(entry.dagster_event, entry.run_id, entry.timestamp, TAGS, entry.job_name)]

    by_type = {e["type"]: e for e in events}
    assert _types(events)[:2] == ["pipeline.created", "pipeline.started"]  # never queued: created first
    assert set(by_type) == {"pipeline.created", "pipeline.started", "pipeline.failed",
                            "stage.clip.started", "stage.clip.completed",
                            "stage.lang_track.started", "stage.lang_track.skipped",
                            "stage.broken.started", "stage.broken.failed"}  # the check's step is no stage
    assert len(events) == len(by_type)
    for event in events:
        assert REQUIRED <= set(event) and event["run_id"] == result.run_id and event["job"] == TAGS[JOB_TAG]
        assert event["time"].endswith("Z") and event["source"] == "test"
        assert ("stage" in event) == event["type"].startswith("stage.")
    assert by_type["stage.broken.failed"]["error"] == "broken: the tool died (exit 3)"
    assert by_type["pipeline.failed"]["error"] == "broken: broken: the tool died (exit 3)"
    assert by_type["stage.lang_track.skipped"]["reason"] == "no backend serves en→xx"
    assert by_type["pipeline.created"]["time"] == by_type["pipeline.started"]["time"]


def test_created_comes_from_the_queue_or_once_before_the_first_event():
    def event(kind: str) -> dg.DagsterEvent:
        return dg.DagsterEvent(event_type_value=kind, job_name="j")

    mapper = EventMapper()
    queued = mapper.map(event("PIPELINE_ENQUEUED"), "r1", 1.0, TAGS, "j") + \
        mapper.map(event("PIPELINE_START"), "r1", 2.0, TAGS, "j")
    assert _types(queued) == ["pipeline.created", "pipeline.started"]
    assert [e["time"] for e in queued] == ["1970-01-01T00:00:01.000Z", "1970-01-01T00:00:02.000Z"]
    # a creator that reported `created` itself tags the run: its run process does not repeat it
    reported = mapper.map(event("PIPELINE_START"), "r2", 2.0, {**TAGS, CREATED_REPORTED_TAG: "true"}, "j")
    assert _types(reported) == ["pipeline.started"]
    # ... while the event log, which has no record of that report, still shows it
    from_log = EventMapper(honour_created_tag=False).map(event("PIPELINE_START"), "r2", 2.0,
                                                         {**TAGS, CREATED_REPORTED_TAG: "true"}, "j")
    assert _types(from_log) == ["pipeline.created", "pipeline.started"]
    # one process executing many runs remembers a bounded number of them
    for i in range(3000):
        mapper.map(event("PIPELINE_START"), f"run-{i}", 3.0, TAGS, "j")
    assert len(mapper.runs_seen) <= 1000


def test_credentials_are_redacted_in_urls_and_error_text():
    assert redact_url("redis://:hunter2@127.0.0.1:6379/0?stream=s") == "redis://:***@127.0.0.1:6379/0?stream=s"
    assert redact_url("https://bob:tok3n@example.org/hook") == "https://bob:***@example.org/hook"
    assert redact_url("https://tok3n@example.org/hook") == "https://***@example.org/hook"
    assert redact_url("https://example.org/hook?token=tok3n&x=1") == "https://example.org/hook?token=***&x=1"
    assert scrub("POST to https://bob:tok3n@h/x failed") == "POST to https://bob:***@h/x failed"


# ---- the handler in a run process (here: this one, through Dagster's python_logs setting)

def test_without_a_sink_the_handler_starts_nothing(monkeypatch):
    monkeypatch.delenv(SINK_ENV, raising=False)
    before = set(threading.enumerate())
    with dg.instance_for_test(overrides=PYTHON_LOGS) as instance:
        _materialize(instance)
    assert EventSinkHandler().outbox is None
    assert "stageflow-events" not in {t.name for t in set(threading.enumerate()) - before}


def test_an_unusable_sink_url_is_one_redacted_line_and_the_run_goes_on(monkeypatch, caplog):
    monkeypatch.setenv(SINK_ENV, "ftp://bob:hunter2@example.org/events")
    with caplog.at_level(logging.WARNING, logger="stageflow_assets.events"):
        with dg.instance_for_test(overrides=PYTHON_LOGS) as instance:
            result = _materialize(instance)
    assert result.dagster_run.status == dg.DagsterRunStatus.FAILURE  # `broken` failed, as without a sink
    lines = [r.getMessage() for r in caplog.records if r.name == "stageflow_assets.events"]
    assert len(lines) == 1 and "ftp://bob:***@example.org/events" in lines[0] and "hunter2" not in lines[0]


def test_file_sink_in_process_matches_the_event_log(monkeypatch, tmp_path):
    sink = tmp_path / "deep" / "events.jsonl"
    monkeypatch.setenv(SINK_ENV, f"file://{sink}")
    with dg.instance_for_test(overrides=PYTHON_LOGS) as instance:
        result = _materialize(instance)
        assert event_sink.flush(10)
        from_log = [json.loads(line) for line in event_lines(instance, job=TAGS[JOB_TAG])]
        assert list(event_lines(instance, job="another-job")) == []
    delivered = [json.loads(line) for line in sink.read_text().splitlines()]
    assert [e for e in delivered if e["run_id"] == result.run_id] == from_log
    assert "pipeline.failed" in _types(delivered)


class _Collector(BaseHTTPRequestHandler):
    bodies: list = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        length = int(self.headers["Content-Length"])
        self.bodies.append((self.headers["Content-Type"], self.headers.get("Authorization"),
                            json.loads(self.rfile.read(length))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def test_http_sink_posts_json_arrays_with_basic_auth_from_the_url(monkeypatch):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Collector.bodies = []
    try:
        monkeypatch.setenv(SINK_ENV, f"http://bob:tok3n@127.0.0.1:{server.server_port}/hook")
        with dg.instance_for_test(overrides=PYTHON_LOGS) as instance:
            result = _materialize(instance)
            assert event_sink.flush(10)
    finally:
        server.shutdown()
    assert {(ctype, auth) for ctype, auth, _ in _Collector.bodies} == {("application/json", "Basic Ym9iOnRvazNu")}
    events = [e for _, _, body in _Collector.bodies for e in body]
    assert all(isinstance(body, list) for _, _, body in _Collector.bodies)
    assert {e["run_id"] for e in events} == {result.run_id}
    assert _types(events)[0] == "pipeline.created" and _types(events)[-1] == "pipeline.failed"


def _redis_or_skip():
    import redis

    client = redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis on 127.0.0.1:6379 is unreachable ({exc})")
    return client


def test_redis_stream_sink_xadds_each_event(monkeypatch):
    client = _redis_or_skip()
    stream = f"stageflow-test-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv(SINK_ENV, f"redis://127.0.0.1:6379/0?stream={stream}")
    try:
        with dg.instance_for_test(overrides=PYTHON_LOGS) as instance:
            result = _materialize(instance)
            assert event_sink.flush(10)
            from_log = [json.loads(line) for line in event_lines(instance)]
        entries = client.xrange(stream)
        assert [json.loads(fields[b"event"]) for _, fields in entries] == from_log
        assert {e["run_id"] for e in from_log} == {result.run_id}
    finally:
        client.delete(stream)


def test_a_queued_run_cancelled_before_it_started(monkeypatch, tmp_path):
    """No run process ever sees it: its log has RUN_ENQUEUED and RUN_CANCELED, and the side that
    cancels it reports `pipeline.cancelled` to the sink."""
    sink = tmp_path / "events.jsonl"
    monkeypatch.setenv(SINK_ENV, f"file://{sink}")
    with dg.instance_for_test() as instance:
        run = _queued_run(instance)
        instance.report_run_canceled(run)
        report_run_event("cancelled", instance.get_run_by_id(run.run_id))
        assert event_sink.flush(10)
        printed = [json.loads(line) for line in event_lines(instance)]
    assert _types(printed) == ["pipeline.created", "pipeline.cancelled"]
    assert {e["job"] for e in printed} == {TAGS[JOB_TAG]}
    assert _types([json.loads(line) for line in sink.read_text().splitlines()]) == ["pipeline.cancelled"]


def _queued_run(instance: dg.DagsterInstance) -> dg.DagsterRun:
    """A run as Dagster's queued run coordinator leaves it: QUEUED, with RUN_ENQUEUED in its log."""
    from dagster._core.remote_origin import InProcessCodeLocationOrigin, RemoteJobOrigin, RemoteRepositoryOrigin
    from dagster._core.test_utils import create_run_for_test
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

    location = InProcessCodeLocationOrigin(LoadableTargetOrigin(module_name="stageflow_assets.definitions"))
    origin = RemoteJobOrigin(RemoteRepositoryOrigin(location, "__repository__"), "clip_job")
    run = create_run_for_test(instance, job_name="clip_job", tags=TAGS, status=dg.DagsterRunStatus.QUEUED,
                              remote_job_origin=origin)
    instance.report_dagster_event(dg.DagsterEvent(event_type_value="PIPELINE_ENQUEUED", job_name="clip_job"),
                                  run_id=run.run_id)
    return run


class SilentServer:
    """A loopback socket that accepts connections and never answers."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                self.held.append(self.sock.accept()[0])
            except OSError:
                return

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


def test_a_full_buffer_drops_and_counts_and_exit_reports_once(caplog):
    silent = SilentServer()
    box = Outbox(f"http://bob:tok3n@127.0.0.1:{silent.port}/hook", maxsize=10)
    try:
        with caplog.at_level(logging.WARNING, logger="stageflow_assets.events"):
            started = time.perf_counter()
            for i in range(60):
                box.put({"type": "pipeline.started", "run_id": f"r{i}"})
            took = time.perf_counter() - started
            box.close()
    finally:
        silent.close()
    assert box.dropped >= 49 and took < 1.0, (box.dropped, took)  # never waits on the sink
    lines = [r.getMessage() for r in caplog.records if r.name == "stageflow_assets.events"]
    report = lines[-1]
    assert f"{box.dropped} dropped (buffer of 10 full), 0 delivered" in report, lines
    assert "http://bob:***@127.0.0.1" in report and all("tok3n" not in line for line in lines)


# ---- through the CLI: real runs of real stageflow jobs, in a home of this module's own

@pytest.fixture(scope="module")
def events_env(tmp_path_factory) -> dict[str, str]:
    base = tmp_path_factory.mktemp("events-home")
    # `de` is served by no backend here: its stages are skipped
    return {"DAGSTER_HOME": str(base / "dagster"), "STAGEFLOW_HOME": str(base / "stageflow"),
            "STAGEFLOW_LANGUAGES": "en,es,ca,de"}


def _read_events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _fake_tool(bin_dir: Path, name: str, sleep_s: float) -> dict[str, str]:
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / name
    fake.write_text(f"#!/bin/sh\nsleep {sleep_s}\nexec /usr/bin/{name} \"$@\"\n")
    fake.chmod(0o755)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}"}


def _silent_video(path: Path) -> Path:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "color=c=blue:s=160x120:r=25",
                    "-t", "2", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path)],
                   check=True)
    return path


@pytest.mark.slow
def test_a_successful_cli_run_sends_the_whole_taxonomy_and_stageflow_events_prints_it(
        speech_video, tmp_path, events_env):
    sink = tmp_path / "events.jsonl"
    video = tmp_path / "events-ok.mp4"
    video.write_bytes(speech_video.read_bytes())
    result = run_cli("subtitles", video, "--lang", "es", "--lang", "de",
                     env={**events_env, SINK_ENV: f"file://{sink}"})
    assert result.returncode == 0, result.stderr[-3000:]
    (job,) = result.value("job")
    run_ids = [line.split()[0] for line in result.value("run")]
    events = _read_events(sink)

    assert [e["run_id"] for e in events if e["type"] == "pipeline.created"] == run_ids  # 4 runs, in order
    for run_id in run_ids:
        kinds = [e["type"] for e in events if e["run_id"] == run_id and e["type"].startswith("pipeline.")]
        assert kinds == ["pipeline.created", "pipeline.started", "pipeline.completed"], (run_id, kinds)
    stages = {(e["type"], e.get("partition", "").partition("|")[2]) for e in events if "stage" in e}
    assert {(f"stage.{s}.{k}", "") for s in ("source_video", "audio", "transcript", "cues", "subtitled_video")
            for k in ("started", "completed")} <= stages
    assert {(f"stage.{s}.{k}", "es") for s in ("translation", "subtitles") for k in ("started", "completed")} <= stages
    # no backend serves en→de: its stages are skipped (with the reason), the run still completes
    assert {("stage.translation.skipped", "de"), ("stage.subtitles.skipped", "de")} <= stages
    assert all(e["reason"].startswith("no translation backend serves en→de") for e in events
               if e["type"].endswith(".skipped"))
    for event in events:
        assert REQUIRED <= set(event) and event["job"] == job and event["source"] == "cli"
        assert event["dagster_job"].startswith("subtitle_") and event.get("stage") in (
            None, event["type"].split(".")[1])

    printed = run_cli("events", "--job", job, env=events_env)
    assert printed.returncode == 0, printed.stderr[-2000:]
    from_log = [json.loads(line) for line in printed.stdout.splitlines()]
    assert {e["job"] for e in from_log} == {job}
    assert [e for e in from_log if e["run_id"] in run_ids] == events


@pytest.mark.slow
def test_a_failing_cli_run_is_seen_while_it_goes_and_events_follow_shows_it(tmp_path, events_env):
    sink = tmp_path / "events.jsonl"
    video = _silent_video(tmp_path / "events-silent.mp4")
    job = job_key_for_file(video)
    env = {**os.environ, **events_env}
    follow = subprocess.Popen([str(STAGEFLOW), "events", "--follow", "--job", job], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    followed: list[dict] = []
    reader = threading.Thread(target=lambda: followed.extend(json.loads(line) for line in follow.stdout), daemon=True)
    reader.start()
    # ffprobe takes 4 s here: the run is still in its first stage when the first events must be out
    cli = subprocess.Popen([str(STAGEFLOW), "subtitles", str(video), "--lang", "es"],
                           env={**env, SINK_ENV: f"file://{sink}", **_fake_tool(tmp_path / "bin", "ffprobe", 4)},
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen_while_running = []
    deadline = time.monotonic() + 120
    while cli.poll() is None and time.monotonic() < deadline:
        seen_while_running = _types(_read_events(sink))
        if "stage.source_video.started" in seen_while_running:
            break
        time.sleep(0.05)
    _, stderr = cli.communicate(timeout=120)

    assert seen_while_running[:3] == ["pipeline.created", "pipeline.started", "stage.source_video.started"], \
        (seen_while_running, stderr[-2000:])
    assert cli.returncode == 1, stderr[-2000:]
    events = _read_events(sink)
    assert _types(events) == ["pipeline.created", "pipeline.started", "stage.source_video.started",
                              "stage.source_video.failed", "pipeline.failed"]
    error = "events-silent.mp4: the video has no audio stream; give a video with speech"
    assert events[3]["error"] == error and events[4]["error"] == f"source_video: {error}"
    assert f"stageflow: error: source, audio, transcript: {error}" in stderr

    deadline = time.monotonic() + 60
    while len(followed) < len(events) and time.monotonic() < deadline:
        time.sleep(0.1)
    follow.send_signal(signal.SIGINT)
    _, follow_err = follow.communicate(timeout=30)
    reader.join(timeout=5)
    assert followed == events
    assert follow.returncode == 130
    assert follow_err.strip().splitlines() == ["stageflow: interrupted: stopped following events"]


@pytest.mark.slow
def test_a_cancelled_cli_run_ends_with_pipeline_cancelled(tmp_path, events_env):
    sink = tmp_path / "events.jsonl"
    video = _silent_video(tmp_path / "events-cancel.mp4")
    result = run_cli("subtitles", video, "--lang", "es", "--max-runtime", "2",
                     env={**events_env, SINK_ENV: f"file://{sink}", **_fake_tool(tmp_path / "bin", "ffprobe", 60)})
    assert result.returncode == 130, result.stderr[-2000:]
    assert _types(_read_events(sink)) == ["pipeline.created", "pipeline.started", "stage.source_video.started",
                                          "stage.source_video.failed", "pipeline.cancelled"]


@pytest.mark.slow
def test_an_http_sink_that_never_answers_does_not_stop_the_run(speech_video, tmp_path, events_env, monkeypatch):
    silent = SilentServer()
    video = tmp_path / "events-ok.mp4"  # the same job as the successful run: its stages are reused
    video.write_bytes(speech_video.read_bytes())
    url = f"http://bob:s3cret@127.0.0.1:{silent.port}/hook"
    try:
        result = run_cli("subtitles", video, "--lang", "es", env={**events_env, SINK_ENV: url})
    finally:
        silent.close()
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(result.value("run")) == 3
    lines = [l for l in result.stderr.splitlines() if l.startswith("stageflow: events:")]
    assert lines and "not delivered to http://bob:***@127.0.0.1" in lines[-1], result.stderr[-3000:]
    assert "s3cret" not in result.stderr + result.stdout
    monkeypatch.setenv("DAGSTER_HOME", events_env["DAGSTER_HOME"])
    with dg.DagsterInstance.get() as instance:
        statuses = {instance.get_run_by_id(line.split()[0]).status for line in result.value("run")}
    assert statuses == {dg.DagsterRunStatus.SUCCESS}
