"""Scale-out for real: PostgreSQL on 127.0.0.1:5432, Redis on 127.0.0.1:6379, the Dagster daemon
and two `stageflow worker` processes. The CLI launches its runs onto the workers and follows them.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import dagster as dg
import pytest

from stageflow_assets.core.runs import PID_TAG
from stageflow_assets.core.stage import JOB_TAG
from stageflow_assets.core.worker import heartbeat_key
from stageflow_assets.providers.process import stop_process_group
from stageflow_assets_tests.conftest import REPO, STAGEFLOW, instance_with_env, run_cli
from stageflow_assets_tests.test_kill_resume import alive, descendants

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
WORKER_TAG = "stageflow/worker"


def _reachable(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class Cluster:
    def __init__(self, base: Path) -> None:
        import redis

        self.db = f"stageflow_celery_{uuid.uuid4().hex[:10]}"
        self.redis_db = 8 + os.getpid() % 8
        self.redis = redis.Redis(host="127.0.0.1", port=6379, db=self.redis_db)
        self.env = {
            **os.environ,
            "STAGEFLOW_HOME": str(base / "stageflow"), "DAGSTER_HOME": str(base / "dagster"),
            "STAGEFLOW_POSTGRES_URL": f"postgresql+psycopg2://postgres@127.0.0.1:5432/{self.db}",
            "STAGEFLOW_CELERY_BROKER": f"redis://127.0.0.1:6379/{self.redis_db}",
        }
        self.logs = base / "logs"
        self.logs.mkdir()
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self) -> None:
        self.redis.flushdb()
        subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", self.db], check=True)
        first = run_cli("reexecute", "none", env=self.env)  # creates the home and its schema
        assert first.error_lines == ["stageflow: error: no run none in this instance"], first.stderr
        self._spawn("daemon", [str(STAGEFLOW.with_name("dagster-daemon")), "run", "-w", str(REPO / "workspace.yaml")])
        for name in ("w1", "w2"):
            self._spawn(name, [str(STAGEFLOW), "worker", "--name", name, "--threads", "1"])
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if all(self.redis.exists(heartbeat_key(n)) for n in ("w1", "w2")):
                return
            for name, proc in self.procs.items():
                assert proc.poll() is None, f"{name} ended: {(self.logs / name).read_text()[-3000:]}"
            time.sleep(0.5)
        pytest.fail("the workers did not come up within 120 s")

    def _spawn(self, name: str, args: list[str]) -> None:
        log = (self.logs / name).open("w")
        self.procs[name] = subprocess.Popen(args, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)

    def stop(self) -> None:
        for proc in self.procs.values():
            stop_process_group(proc, grace_s=20)
        self.redis.flushdb()
        subprocess.run(["dropdb", "-h", "127.0.0.1", "-U", "postgres", "--if-exists", "--force", self.db],
                       check=False)

    def cli(self, *args, **kwargs):
        return run_cli(*args, env=self.env, **kwargs)

    def runs(self, job: str) -> list[dg.DagsterRun]:
        with self.instance() as instance:
            return [r.dagster_run for r in instance.get_run_records(filters=dg.RunsFilter(tags={JOB_TAG: job}))]

    def instance(self):
        """The cluster's instance in this process."""
        return instance_with_env(self.env)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if not (_reachable(5432) and _reachable(6379)):
        pytest.skip("PostgreSQL (127.0.0.1:5432) or Redis (127.0.0.1:6379) is not running")
    if shutil.which("createdb") is None:
        pytest.skip("createdb (PostgreSQL's client tools) is not installed")
    cluster = Cluster(tmp_path_factory.mktemp("celery"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_runs_go_to_both_workers_and_match_the_in_process_result(cluster, speech_video, tmp_path):
    video = tmp_path / "spread.mp4"
    shutil.copyfile(speech_video, video)
    result = cluster.cli("subtitles", video, "--lang", "es", "--lang", "ca", "--out", tmp_path / "celery")
    assert result.returncode == 0, result.stderr[-3000:]
    (job,) = result.value("job")
    runs = cluster.runs(job)
    assert len(runs) == 4 and {r.status for r in runs} == {dg.DagsterRunStatus.SUCCESS}
    # followed through the instance: the workers' steps and each language run as it ended
    err = result.stderr.splitlines()
    for stage in ("source_video", "audio", "transcript", "cues", "subtitled_video"):
        assert [l for l in err if l.startswith(f"  stage {stage} [{job}] done ")], (stage, result.stderr)
    for lang in ("es", "ca"):
        assert [l for l in err if l.startswith(f"  stage subtitles [{job}|{lang}] done ")], result.stderr
        assert [l for l in err if l.startswith(f"  subtitles [{lang}]: ok (run ")], result.stderr
    assert {r.tags[WORKER_TAG] for r in runs} == {"w1", "w2"}  # the languages ran side by side
    workers = {name: cluster.procs[name].pid for name in ("w1", "w2")}
    for run in runs:
        # executed in a pool process of the worker named in its tag, not in the CLI's process
        pool = int(run.tags[PID_TAG])
        assert _parent(pool) == workers[run.tags[WORKER_TAG]], run.tags

    # the same input through the CLI's own process, on a SQLite home, with the threads the workers
    # got from `--threads 1` (CTranslate2's sums depend on the thread count): the same subtitles
    local_env = {"STAGEFLOW_HOME": str(tmp_path / "local-home"), "DAGSTER_HOME": str(tmp_path / "local-dagster"),
                 "STAGEFLOW_ASR_THREADS": "1", "OMP_NUM_THREADS": "1"}
    local = run_cli("subtitles", video, "--lang", "es", "--lang", "ca", "--out", tmp_path / "local", env=local_env)
    assert local.returncode == 0, local.stderr[-3000:]
    for lang in ("es", "ca"):
        name = f"{job}.{lang}.srt"
        assert (tmp_path / "celery" / name).read_bytes() == (tmp_path / "local" / name).read_bytes()


def test_one_command_runs_several_videos_side_by_side(cluster, speech_video, tmp_path):
    """Several videos in one command: every video's runs on the workers at once, each video going
    on as its own runs end; one result block per video delivered, one error line for the one
    that failed (a video without sound), which stops none of the others."""
    videos = [tmp_path / f"many-{n}.mp4" for n in (1, 2, 3)]
    for video in videos:
        shutil.copyfile(speech_video, video)
    silent = tmp_path / "many-silent.mp4"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "color=c=blue:s=160x120:r=25",
                    "-t", "2", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(silent)],
                   check=True)
    result = cluster.cli("subtitles", videos[0], silent, *videos[1:], "--lang", "es", "--out", tmp_path / "out")
    assert result.returncode == 1, result.stderr[-3000:]
    (error,) = result.error_lines
    assert error.startswith(f"stageflow: error: {silent}: source, audio, transcript: "), error
    assert "no audio stream" in error and error.endswith("; inspect it in the UI: make ui)"), error
    jobs = result.value("job")
    assert sorted(job.split("-")[0] for job in jobs) == ["many", "many", "many"] and len(set(jobs)) == 3
    assert len(result.value("outbox")) == 3
    runs = [run for job in jobs for run in cluster.runs(job)]
    assert len(runs) == 9 and {r.status for r in runs} == {dg.DagsterRunStatus.SUCCESS}
    assert (tmp_path / "out").is_dir() and not list((tmp_path / "out").glob("many-silent*"))
    assert {r.tags[WORKER_TAG] for r in runs} == {"w1", "w2"}
    # side by side: a second video's source run started before the first video's mux run ended
    by_job = {job: {r.job_name: r for r in cluster.runs(job)} for job in jobs}
    with cluster.instance() as instance:
        times = {r.dagster_run.run_id: r for r in instance.get_run_records(
            filters=dg.RunsFilter(run_ids=[r.run_id for r in runs]))}
    first_mux_end = min(times[by_job[j]["subtitle_mux_job"].run_id].end_time for j in jobs)
    last_source_start = max(times[by_job[j]["subtitle_source_job"].run_id].start_time for j in jobs)
    assert last_source_start < first_mux_end
    for job in jobs:
        assert (tmp_path / "out" / f"{job}.es.srt").read_text().strip()
        assert (tmp_path / "out" / f"{job}.mkv").stat().st_size > 0


def test_the_same_video_twice_side_by_side_is_refused(cluster, speech_video, tmp_path):
    video, again = tmp_path / "twice.mp4", tmp_path / "copy" / "twice.mp4"  # same name, same bytes
    again.parent.mkdir()
    shutil.copyfile(speech_video, video)
    shutil.copyfile(speech_video, again)
    result = cluster.cli("subtitles", video, again, "--lang", "es")
    assert result.returncode == 2, result.stderr[-3000:]
    (line,) = result.error_lines
    assert line.startswith(f"stageflow: error: {video} and {again} are the same video (job twice-")
    assert line.endswith("): give it once")
    assert not result.value("job")


def _wait_for_started(cluster, job_prefix: str, cli: subprocess.Popen, timeout: float = 180) -> dg.DagsterRun:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert cli.poll() is None, cli.communicate()[1][-3000:]
        jobs = list((Path(cluster.env["STAGEFLOW_HOME"]) / "subtitles").glob(f"{job_prefix}-*"))
        if jobs:
            started = [r for r in cluster.runs(jobs[0].name)
                       if r.status == dg.DagsterRunStatus.STARTED and r.tags.get(WORKER_TAG)]
            log = jobs[0] / "03_transcript" / "stage.log"
            if started and log.is_file() and " started" in log.read_text():
                return started[0]
        time.sleep(0.3)
    pytest.fail(f"no run of {job_prefix} started transcribing on a worker within {timeout:g} s")


def _subtitles_started(cluster, video_source: Path, tmp_path: Path, name: str) -> tuple[subprocess.Popen, dg.DagsterRun]:
    """`stageflow subtitles` on a copy of the video, once its source run transcribes on a worker."""
    video = tmp_path / f"{name}.mp4"
    shutil.copyfile(video_source, video)
    cli = subprocess.Popen([str(STAGEFLOW), "subtitles", str(video), "--lang", "es", "--out", str(tmp_path / "out")],
                           env=cluster.env, start_new_session=True, text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return cli, _wait_for_started(cluster, name, cli)


def test_ctrl_c_on_the_cli_cancels_its_run_on_the_worker(cluster, long_speech_video, tmp_path):
    cli, run = _subtitles_started(cluster, long_speech_video, tmp_path, "celerystop")
    time.sleep(1)
    os.killpg(cli.pid, signal.SIGINT)
    _, stderr = cli.communicate(timeout=120)
    assert cli.returncode == 130, stderr[-2000:]
    lines = [l for l in stderr.splitlines() if l.startswith("stageflow:")]
    assert len(lines) == 1 and lines[0].startswith("stageflow: interrupted: source, audio, transcript stopped"), stderr
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not cluster.runs(run.tags[JOB_TAG])[0].is_finished:
        time.sleep(0.5)
    (after,) = cluster.runs(run.tags[JOB_TAG])
    assert after.status == dg.DagsterRunStatus.CANCELED
    assert not (tmp_path / "out").exists()


def test_a_worker_stops_its_run_once_it_is_canceling_even_if_the_revoke_is_lost(cluster, long_speech_video, tmp_path):
    """The revoked task's SIGTERM is one signal, and one that lands in a finalizer is lost: the
    pool process watches its run and interrupts itself while the run is CANCELING. Here the run is
    only marked CANCELING (no revoke at all), as a lost signal leaves it."""
    cli, run = _subtitles_started(cluster, long_speech_video, tmp_path, "norevoke")
    with cluster.instance() as instance:
        instance.report_run_canceling(run, message="Canceling: the revoke is lost")
    _, stderr = cli.communicate(timeout=120)
    assert cli.returncode == 130, stderr[-2000:]
    lines = [l for l in stderr.splitlines() if l.startswith("stageflow:")]
    assert len(lines) == 1 and lines[0].startswith(
        "stageflow: interrupted: source, audio, transcript stopped: its run was canceled; nothing was delivered"), stderr
    (after,) = cluster.runs(run.tags[JOB_TAG])
    assert after.status == dg.DagsterRunStatus.CANCELED
    assert not (tmp_path / "out").exists()


def test_ctrl_c_on_a_command_of_several_videos_cancels_all_their_runs(cluster, long_speech_video, tmp_path):
    """Two long videos side by side, one transcribing on each worker: one Ctrl-C, one line, both
    runs CANCELED, nothing delivered."""
    videos = [tmp_path / f"stopmany{n}.mp4" for n in (1, 2)]
    for video in videos:
        shutil.copyfile(long_speech_video, video)
    cli = subprocess.Popen([str(STAGEFLOW), "subtitles", *map(str, videos), "--lang", "es", "--out",
                            str(tmp_path / "out")], env=cluster.env, start_new_session=True, text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    started = [_wait_for_started(cluster, f"stopmany{n}", cli) for n in (1, 2)]
    os.killpg(cli.pid, signal.SIGINT)
    stdout, stderr = cli.communicate(timeout=120)
    assert cli.returncode == 130, stderr[-2000:]
    lines = [l for l in stderr.splitlines() if l.startswith("stageflow:")]
    assert len(lines) == 1 and lines[0].startswith("stageflow: interrupted: 2 job(s) stopped: Ctrl-C or SIGTERM"), stderr
    assert "job:" not in stdout
    for run in started:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not cluster.runs(run.tags[JOB_TAG])[0].is_finished:
            time.sleep(0.5)
        (after,) = cluster.runs(run.tags[JOB_TAG])
        assert after.status == dg.DagsterRunStatus.CANCELED, after.status
    assert not (tmp_path / "out").exists()


def test_a_killed_workers_run_fails_and_runs_again_on_the_other(cluster, long_speech_video, tmp_path):
    cli, run = _subtitles_started(cluster, long_speech_video, tmp_path, "workerdies")
    victim = run.tags[WORKER_TAG]
    survivor = ({"w1", "w2"} - {victim}).pop()
    below = descendants(cluster.procs[victim].pid)
    assert int(run.tags[PID_TAG]) in below
    os.kill(cluster.procs[victim].pid, signal.SIGKILL)  # the worker's main process only
    killed = time.monotonic()

    deadline = killed + 15
    while time.monotonic() < deadline and any(alive(pid) for pid in below):
        time.sleep(0.2)
    assert not [pid for pid in below if alive(pid)], below  # its pool process and tools died with it

    deadline = killed + 120
    while time.monotonic() < deadline:
        status = next(r for r in cluster.runs(run.tags[JOB_TAG]) if r.run_id == run.run_id).status
        if status != dg.DagsterRunStatus.STARTED:
            break
        time.sleep(1)
    assert status == dg.DagsterRunStatus.FAILURE

    stdout, stderr = cli.communicate(timeout=600)
    assert cli.returncode == 0, stderr[-3000:]
    assert f"run {run.run_id}" in stderr and "launched again" in stderr
    runs = {r.run_id: r for r in cluster.runs(run.tags[JOB_TAG])}
    (again,) = [r for r in runs.values() if r.tags.get("dagster/parent_run_id") == run.run_id]
    assert again.status == dg.DagsterRunStatus.SUCCESS and again.tags[WORKER_TAG] == survivor
    assert (tmp_path / "out").is_dir()


@pytest.mark.parametrize("signals, ends", [(1, dg.DagsterRunStatus.SUCCESS), (2, dg.DagsterRunStatus.CANCELED)])
def test_ctrl_c_on_a_worker_lets_its_run_finish_and_a_second_cancels_it(cluster, long_speech_video, speech_video,
                                                                         tmp_path, signals, ends):
    """A terminal's Ctrl-C reaches the worker's whole process group: the first is a warm shutdown."""
    from stageflow_assets.core.runs import PartitionRun, launch_partition
    from stageflow_assets.core.stage_store import StageStore
    from stageflow_assets.subtitles.partitions import subtitle_job_partitions
    from stageflow_assets.subtitles.registry import register_video

    queue = f"shutdown-{signals}"
    worker = subprocess.Popen([str(STAGEFLOW), "worker", "--name", queue, "--queue", queue], cwd=REPO,
                              env=cluster.env, start_new_session=True, stdout=(cluster.logs / queue).open("w"),
                              stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while not cluster.redis.exists(heartbeat_key(queue)):
            assert worker.poll() is None and time.monotonic() < deadline, (cluster.logs / queue).read_text()[-3000:]
            time.sleep(0.3)
        video = tmp_path / f"shutdown{signals}.mp4"
        shutil.copyfile(speech_video if signals == 1 else long_speech_video, video)
        job = register_video(StageStore(home=cluster.env["STAGEFLOW_HOME"]).paths, video).job
        with cluster.instance() as instance:
            instance.add_dynamic_partitions(subtitle_job_partitions.name, [job])
            request = PartitionRun("source", "subtitle_source_job", subtitle_job_partitions, job)
            run_id = launch_partition(instance, request, {JOB_TAG: job, "dagster-celery/queue": queue})
        log = Path(cluster.env["STAGEFLOW_HOME"]) / "subtitles" / job / "03_transcript" / "stage.log"
        while not (log.is_file() and " started" in log.read_text()):
            assert time.monotonic() < deadline + 180, "the run never started transcribing"
            time.sleep(0.1)
        for _ in range(signals):
            os.killpg(worker.pid, signal.SIGINT)
            time.sleep(1)
        assert worker.wait(timeout=300) == 0
        with cluster.instance() as instance:
            assert instance.get_run_by_id(run_id).status == ends
    finally:
        stop_process_group(worker, grace_s=20)
