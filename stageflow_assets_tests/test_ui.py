"""`stageflow ui` (what `make ui` runs) serves the asset graph and the CLI's runs on 127.0.0.1."""

import shutil
import socket
import subprocess
import time

import pytest
import requests

from stageflow_assets.providers.process import stop_process_group
from stageflow_assets_tests.conftest import STAGEFLOW, run_cli

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _graphql(port: int, query: str, variables: dict | None = None) -> dict:
    response = requests.post(f"http://127.0.0.1:{port}/graphql",
                             json={"query": query, "variables": variables or {}}, timeout=30)
    response.raise_for_status()
    return response.json()["data"]


@pytest.fixture
def ui_server():
    port = _free_port()
    proc = subprocess.Popen([str(STAGEFLOW), "ui", "--port", str(port)], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                if requests.get(f"http://127.0.0.1:{port}/server_info", timeout=2).ok:
                    data = _graphql(port, "{ assetNodes { id } }")
                    if data["assetNodes"]:
                        break
            except (requests.ConnectionError, requests.Timeout, KeyError, TypeError):
                pass
            time.sleep(1)
        else:
            pytest.fail("the Dagster UI did not come up within 120 s")
        yield port
    finally:
        # `dagster dev` can take over 30 s to exit on a busy machine: then its whole group is killed
        stop_process_group(proc, grace_s=30)


def test_ui_shows_graph_runs_metadata_and_lineage(speech_video, tmp_path, ui_server):
    video = tmp_path / "ui.mp4"
    shutil.copyfile(speech_video, video)
    result = run_cli("subtitles", video, "--lang", "en")
    assert result.returncode == 0, result.stderr[-2000:]
    job = result.value("job")[0]

    nodes = _graphql(ui_server, "{ assetNodes { assetKey { path } groupName dependencyKeys { path } } }")["assetNodes"]
    graph = {n["assetKey"]["path"][0]: {d["path"][0] for d in n["dependencyKeys"]} for n in nodes}
    assert graph["transcript"] == {"audio"}
    assert graph["subtitled_video"] == {"source_video", "subtitles"}
    groups = {n["assetKey"]["path"][0]: n["groupName"] for n in nodes}
    assert {groups[k] for k in ("source_video", "transcript", "cues", "subtitles", "subtitled_video")} == {"subtitles"}
    assert groups["anki_deck"] == "vocabulary"

    runs = _graphql(ui_server, """query($tag: [ExecutionTag!]) { runsOrError(filter: {tags: $tag}) {
        ... on Runs { results { runId jobName status } } } }""",
                    {"tag": [{"key": "stageflow/job", "value": job}]})["runsOrError"]["results"]
    assert {r["runId"] for r in runs} == {line.split()[0] for line in result.value("run")}
    assert {r["status"] for r in runs} == {"SUCCESS"}

    asset = _graphql(ui_server, """query($job: String!) { assetOrError(assetKey: {path: ["transcript"]}) {
        ... on Asset { assetMaterializations(partitions: [$job]) { runId
            metadataEntries { label } } } } }""", {"job": job})["assetOrError"]
    labels = {e["label"] for e in asset["assetMaterializations"][0]["metadataEntries"]}
    assert {"manifest", "preview", "language", "config", "outputs", "reused"} <= labels


def test_terminate_in_the_ui_stops_a_run_the_cli_executes(ui_server, long_speech_video, tmp_path):
    """The UI's Terminate on a run the CLI executes: the CLI sees it CANCELING and stops it."""
    from stageflow_assets_tests.test_cancel import job_dir, job_runs, stage_started, start_cli, wait_for

    video = tmp_path / "terminated.mp4"
    video.write_bytes(long_speech_video.read_bytes())
    proc = start_cli(["subtitles", video, "--lang", "es", "--out", tmp_path / "out"])
    wait_for(lambda: stage_started("terminated", "03_transcript"), 180, "transcription", proc)
    (run,) = job_runs(job_dir("terminated").name)
    answer = _graphql(ui_server, """mutation($id: String!) { terminateRun(runId: $id) { __typename } }""",
                      {"id": run.run_id})
    assert "terminateRun" in answer  # its answer varies (no process handle); the run's status is what counts
    _, stderr = proc.communicate(timeout=120)

    assert proc.returncode == 130, stderr[-2000:]
    line = [l for l in stderr.splitlines() if l.startswith("stageflow:")]
    assert line == [f"stageflow: interrupted: source, audio, transcript stopped: terminated (its run was "
                    f"marked CANCELING, e.g. from the UI); nothing was delivered (run {run.run_id} canceled)"]
    (run,) = job_runs(job_dir("terminated").name)
    assert run.status.value == "CANCELED"
    assert not (tmp_path / "out").exists()
    assert not (job_dir("terminated") / "03_transcript" / "manifest.json").exists()
