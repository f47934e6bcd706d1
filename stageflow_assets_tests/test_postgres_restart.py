"""PostgreSQL going away in the middle of a `stageflow subtitles` run: no record written before is
lost, and the work completes, at once or when re-executed.

On a private cluster each test starts (private_pg.py), never the shared server. What happens:

* **A restart** (`pg_ctl restart -m fast`, which ends every client connection) while Whisper
  transcribes: nothing. Dagster's PostgreSQL storage opens a connection per operation and
  retries a refused connect for ~6 s, so the run completes; the CLI prints the retry as one
  `stageflow: warning:` line.
* **An outage longer than those retries** (the server stopped until the CLI gives up): the first
  event the run cannot write fails its step, and Dagster's execution raises from its last status
  read, so the run stays STARTED in the instance (its failure could not be recorded) and the
  events it tried to write meanwhile are lost. The CLI prints one `stageflow: error:` line naming
  the run; once the server is back, `stageflow reexecute RUN_ID` marks the run failed (its
  process is gone) and re-executes it from the failed step, and the rest follows.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import dagster as dg
import pytest

from stageflow_assets_tests.conftest import STAGEFLOW, instance_with_env, run_cli
from stageflow_assets_tests.private_pg import PrivateCluster, unavailable

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
LOST = "lost the connection to the instance's PostgreSQL database"


@pytest.fixture
def private_pg():
    reason = unavailable()
    if reason:
        pytest.skip(reason)
    cluster = PrivateCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def minute_video(tmp_path_factory) -> Path:
    """~80 s of espeak-ng speech: Whisper takes seconds on it, long enough to restart a server in."""
    from stageflow_assets.demo import sample_video

    sentence = "The quick brown fox jumps over the lazy dog while the house stands big and tall near the river."
    return sample_video(tmp_path_factory.mktemp("minute") / "minute.mp4", text=" ".join([sentence] * 12))


def instance_of(env: dict[str, str]):
    """The test's instance in this process; its variables only while it is open."""
    return instance_with_env(env, ("DAGSTER_HOME", "STAGEFLOW_POSTGRES_URL"))


class Subtitles:
    """`stageflow subtitles` on a fresh home whose instance is on the private cluster."""

    def __init__(self, private_pg: PrivateCluster, video: Path, tmp_path: Path) -> None:
        self.home = tmp_path / "stageflow"
        self.env = {**os.environ, "STAGEFLOW_HOME": str(self.home), "DAGSTER_HOME": str(tmp_path / "dagster"),
                    "STAGEFLOW_POSTGRES_URL": private_pg.url}
        self.env.pop("STAGEFLOW_CELERY_BROKER", None)
        self.video = tmp_path / "pg.mp4"
        shutil.copyfile(video, self.video)
        self.out = tmp_path / "out"
        self.args = ["subtitles", str(self.video), "--lang", "es", "--out", str(self.out)]
        self.cli = subprocess.Popen([str(STAGEFLOW), *self.args], env=self.env, text=True, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, start_new_session=True)

    def transcribing(self, timeout: float = 300) -> str:
        """The source run's id once Whisper has started on the video (its stage.log says so)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.cli.poll() is None, self.cli.communicate()[1][-3000:]
            logs = list((self.home / "subtitles").glob("*/03_transcript/stage.log"))
            if logs and " started" in logs[0].read_text():
                with instance_of(self.env) as instance:
                    (record,) = instance.get_run_records(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
                return record.dagster_run.run_id
            time.sleep(0.3)
        pytest.fail(f"transcription did not start within {timeout:g} s")

    def finish(self, timeout: float = 900) -> tuple[str, str]:
        try:
            return self.cli.communicate(timeout=timeout)  # a safety net
        finally:
            if self.cli.poll() is None:
                os.killpg(self.cli.pid, 9)
                self.cli.wait()

    def records(self, run_id: str) -> list[tuple[int, str]]:
        with instance_of(self.env) as instance:
            return [(r.storage_id, r.event_log_entry.dagster_event_type.value
                     if r.event_log_entry.dagster_event_type else "log")
                    for r in instance.get_records_for_run(run_id).records]

    def status(self, run_id: str) -> dg.DagsterRunStatus:
        with instance_of(self.env) as instance:
            return instance.get_run_by_id(run_id).status

    def delivered(self) -> bool:
        return bool(list(self.out.glob("*.es.srt")) and list(self.out.glob("*.mkv")))


def test_a_restart_during_transcription_costs_the_run_nothing(private_pg, minute_video, tmp_path):
    job = Subtitles(private_pg, minute_video, tmp_path)
    run_id = job.transcribing()
    before = job.records(run_id)
    private_pg.restart()
    assert job.status(run_id) == dg.DagsterRunStatus.STARTED  # the restart came in the middle of the run
    stdout, stderr = job.finish()

    assert job.cli.returncode == 0, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    assert not [l for l in stderr.splitlines() if l.startswith("stageflow: error")]
    after = job.records(run_id)
    assert not set(before) - set(after), "events written before the restart are gone"
    types = [t for _, t in after]  # every step that started has its end, every stage its materialization
    assert types.count("STEP_START") == types.count("STEP_SUCCESS") == types.count("ASSET_MATERIALIZATION") == 4
    assert "PIPELINE_SUCCESS" in types and job.status(run_id) == dg.DagsterRunStatus.SUCCESS
    assert job.delivered()


def test_an_outage_past_the_retries_fails_the_run_in_one_line_and_reexecution_completes(
        private_pg, minute_video, tmp_path):
    job = Subtitles(private_pg, minute_video, tmp_path)
    run_id = job.transcribing()
    before = job.records(run_id)
    private_pg.stop_server()
    try:
        stdout, stderr = job.finish()  # Whisper ends, the next write finds no server
    finally:
        private_pg.start_server()

    assert job.cli.returncode == 1, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    errors = [l for l in stderr.splitlines() if l.startswith("stageflow: error:")]
    assert len(errors) == 1 and LOST in errors[0] and f"stageflow reexecute {run_id}" in errors[0], stderr[-3000:]
    assert not set(before) - set(job.records(run_id)), "events written before the outage are gone"
    assert job.status(run_id) == dg.DagsterRunStatus.STARTED  # its failure could not be recorded

    again = run_cli("reexecute", run_id, env=job.env, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert job.status(run_id) == dg.DagsterRunStatus.FAILURE
    rest = run_cli(*job.args, env=job.env, timeout=900)  # the language run and the mux
    assert rest.returncode == 0, rest.stderr[-3000:]
    assert job.delivered()
