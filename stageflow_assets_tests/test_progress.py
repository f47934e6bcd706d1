"""Progress on long work: stages as they run, Whisper's position with an ETA, runs as they end.

The reporter's pieces on their own (the plain lines, the live display on a rich terminal
console, Whisper's segment positions), the stage runtime and a followed run reporting into it,
then the real CLI: plain lines when stderr is not a terminal, a live display under a
pseudo-terminal, and the `job:`/`run:`/`wrote:` lines whole on stdout either way.
"""

import fcntl
import io
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import pytest
from rich.console import Console

from stageflow_assets.core import progress
from stageflow_assets.core.io_manager import StageManifestIOManager
from stageflow_assets.core.paths import StageSpec
from stageflow_assets.core.progress_live import LiveReporter
from stageflow_assets.core.stage import StageWriter, run_stage
from stageflow_assets.core.stage_store import StageStore
from stageflow_assets.providers.asr import reported
from stageflow_assets_tests.conftest import STAGEFLOW, run_cli

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class Recorder(progress.Reporter):
    """What a reporter hears, call by call."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def note(self, line):
        self.calls.append(("note", line))

    def run_started(self, what):
        self.calls.append(("run_started", what))

    def run_ended(self, what):
        self.calls.append(("run_ended", what))

    def stage_started(self, stage, partition):
        self.calls.append(("stage_started", stage, partition))

    def stage_done(self, stage, partition, outcome, seconds):
        self.calls.append(("stage_done", stage, partition, outcome, seconds))


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(progress, "time", fake)
    return fake


def test_plain_lines_a_stage_as_it_ends_and_whisper_at_most_every_few_seconds(clock, capsys):
    with progress.shown(live=False):
        progress.stage_started("transcript", "job-1")
        progress.asr_position(0.0, 143.0)  # decoding begins: nothing to estimate from yet
        clock.now += 2
        progress.asr_position(10.0, 143.0)  # 10 s of audio in 2 s: 133 s left take 26.6 s
        clock.now += 3
        progress.asr_position(20.0, 143.0)  # too soon after the last line
        clock.now += 3
        progress.asr_position(71.5, 143.0)
        progress.stage_done("transcript", "job-1", "success", 12.3)
        progress.stage_done("audio", "job-1", "reused", 0.04)
        progress.current().note("subtitles [es]: ok (run r1)")
    assert progress.current() is progress.NOTHING
    assert capsys.readouterr().err.splitlines() == [
        "  transcript: 7% of 2 min 23 s, ETA 27 s",
        "  transcript: 50% of 2 min 23 s, ETA 8.0 s",
        "  stage transcript [job-1] done 12 s",
        "  stage audio [job-1] reused 0.0 s",
        "  subtitles [es]: ok (run r1)",
    ]


def test_eta_counts_down_between_positions(clock):
    asr = progress.AsrClock()
    asr.update(0.0, 100.0)
    clock.now += 10
    asr.update(50.0, 100.0)
    assert asr.eta_s() == pytest.approx(10.0)
    clock.now += 4
    assert asr.eta_s() == pytest.approx(6.0)
    assert asr.text() == "50% of 1 min 40 s, ETA 6.0 s" and asr.text(short=True) == "50%, ETA 6.0 s"
    assert [progress.seconds_text(s) for s in (0.04, 9.96, 27, 125, 3720)] == [
        "0.0 s", "10.0 s", "27 s", "2 min 05 s", "1 h 02 min"]


def test_whisper_segments_report_their_end_as_they_are_decoded():
    decoded: list[float] = []

    def lazily():
        for end in (4.0, 9.5, 15.2):
            decoded.append(end)
            yield SimpleNamespace(end=end)

    heard: list[tuple[float, float]] = []
    segments = reported(lazily(), 15.0, lambda pos, total: heard.append((pos, total)))
    assert heard == [] and decoded == []  # nothing decoded before the transcript is read
    next(segments)
    assert heard == [(0.0, 15.0), (4.0, 15.0)] and decoded == [4.0]
    rest = list(segments)
    assert [s.end for s in rest] == [9.5, 15.2]
    assert heard[2:] == [(9.5, 15.0), (15.0, 15.0)]  # never past the end
    assert [s.end for s in reported(iter([SimpleNamespace(end=1.0)]), 2.0, None)] == [1.0]


def test_live_display_draws_in_place_and_keeps_lines_whole_on_a_narrow_terminal(capsys):
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=30, soft_wrap=True, color_system="standard")
    long_partition = "a-video-with-a-long-name-0123abcd|es"
    with progress.installed(LiveReporter(None, console=console)) as shown:
        progress.run_started("source, audio, transcript")
        progress.stage_started("transcript", long_partition)
        progress.asr_position(0.0, 143.0)
        progress.asr_position(40.0, 143.0)
        shown.live.refresh()
        print("stageflow: warning: something said on stderr meanwhile", file=sys.stderr)
        shown.out("journey: j-1")
        progress.stage_done("transcript", long_partition, "success", 3.2)
        progress.run_ended("source, audio, transcript")
        shown.note("subtitles [es]: ok (run 0123456789abcdef)")
    drawn = buffer.getvalue()
    assert "\x1b[?25l" in drawn and "\x1b[1A\x1b[2K" in drawn  # cursor hidden, the region redrawn in place
    assert drawn.rstrip("\r").endswith("\x1b[?25h")  # the cursor back once it stopped
    plain = ANSI.sub("", drawn)
    assert re.search(r"\n  . transcript  [\d.]+ s  \[a-vid…\n", plain)  # region rows cut to the width, never wrapped
    assert re.search(r"━+.*28%, ETA [\d.]+ s", plain)  # Whisper's bar and position
    for whole in (f"  stage transcript [{long_partition}] done 3.2 s",
                  "  subtitles [es]: ok (run 0123456789abcdef)",
                  "stageflow: warning: something said on stderr meanwhile"):
        assert whole + "\n" in plain  # longer than 30 columns, printed above the region, whole
    assert "journey" not in drawn
    assert capsys.readouterr().out == "journey: j-1\n"  # stdout, outside the region
    assert sys.stderr is not None and not type(sys.stderr).__name__ == "FileProxy"


SPEC = StageSpec("toy", "01_count")
toy_jobs = dg.DynamicPartitionsDefinition(name="toy_progress_jobs")


class CountConfig(dg.Config):
    fail: bool = False


@dg.asset(partitions_def=toy_jobs, code_version="1", metadata=SPEC.metadata)
def counted(context: dg.AssetExecutionContext, config: CountConfig, storage: StageStore):
    def work(out: StageWriter) -> None:
        if config.fail:
            raise RuntimeError("no count today")
        out.output("count.txt", kind="text", fmt="txt").write_text("3")

    return run_stage(context, storage.paths, SPEC, inputs=[], config={"fail": config.fail}, work=work)


@dg.asset(partitions_def=toy_jobs, code_version="1", metadata=StageSpec("toy", "02_double").metadata)
def doubled(context: dg.AssetExecutionContext, storage: StageStore, counted):
    def work(out: StageWriter) -> None:
        out.output("double.txt", kind="text", fmt="txt").write_text("6")

    return run_stage(context, storage.paths, StageSpec("toy", "02_double"), inputs=[], config={}, work=work)


@pytest.fixture
def toy(tmp_path, instance):
    store = StageStore(home=str(tmp_path))
    instance.add_dynamic_partitions(toy_jobs.name, ["job-1"])

    def run(fail: bool = False) -> dg.ExecuteInProcessResult:
        return dg.materialize(
            [counted, doubled], instance=instance, partition_key="job-1", raise_on_error=False,
            resources={"storage": store, "io_manager": StageManifestIOManager(store=store)},
            run_config=dg.RunConfig({"counted": CountConfig(fail=fail)}),
        )

    return run


def test_the_stage_runtime_reports_each_stage_start_and_outcome(toy):
    with progress.installed(Recorder()) as heard:
        assert toy().success
        assert toy().success  # unchanged: reused
        assert not toy(fail=True).success
    stages = [(c[0], c[1], c[3] if c[0] == "stage_done" else None) for c in heard.calls]
    assert stages == [
        ("stage_started", "counted", None), ("stage_done", "counted", "success"),
        ("stage_started", "doubled", None), ("stage_done", "doubled", "success"),
        ("stage_started", "counted", None), ("stage_done", "counted", "reused"),
        ("stage_started", "doubled", None), ("stage_done", "doubled", "reused"),
        ("stage_started", "counted", None), ("stage_done", "counted", "failed"),
    ]
    assert {c[2] for c in heard.calls} == {"job-1"}
    assert toy().success  # nothing installed: nothing reported, nothing in the way


def test_a_run_followed_in_the_instance_reports_its_steps_and_its_end(toy, instance):
    """Scale-out: the CLI sees a worker's run only through the instance (status, step events)."""
    from stageflow_assets.core.queued import Followed, QueuedRuns
    from stageflow_assets.core.runs import PartitionRun

    run_id = toy().run_id
    request = PartitionRun("toy [job-1]", "toy_job", toy_jobs, "job-1")
    with progress.installed(Recorder()) as heard:
        followed = Followed(QueuedRuns(instance, {}, heard.note), request, run_id)
        outcome = followed.poll(instance.get_run_by_id(run_id))
    assert outcome is not None and outcome.success and outcome.run_id == run_id
    assert [c[:3] for c in heard.calls] == [
        ("run_started", "toy [job-1]"), ("stage_started", "counted", "job-1"), ("stage_done", "counted", "job-1"),
        ("stage_started", "doubled", "job-1"), ("stage_done", "doubled", "job-1"), ("run_ended", "toy [job-1]")]
    assert all(c[3] == "success" and c[4] >= 0 for c in heard.calls if c[0] == "stage_done")


def _stage_lines(job: str, langs: tuple[str, ...]) -> list[str]:
    parts = [(s, job) for s in ("source_video", "audio", "transcript", "cues")]
    parts += [(s, f"{job}|{lang}") for lang in langs for s in ("translation", "subtitles")]
    parts += [(s, job) for s in ("subtitled_video", "subtitle_outbox")]
    return [f"stage {stage} [{partition}] " for stage, partition in parts]


@pytest.mark.slow
def test_cli_plain_progress_when_stderr_is_not_a_terminal(speech_video, tmp_path):
    langs = ("es", "ca")
    result = run_cli("subtitles", speech_video, "--lang", langs[0], "--lang", langs[1], "--out", tmp_path / "out",
                     "--force", env={"COLUMNS": "20"})
    assert result.returncode == 0, result.stderr[-3000:]
    (job,) = result.value("job")
    err = result.stderr.splitlines()
    assert not ANSI.search(result.stderr)  # no terminal: no display codes
    for expected in _stage_lines(job, langs):
        assert any(line.startswith(f"  {expected}done ") for line in err), (expected, result.stderr)
    assert [l for l in err if re.fullmatch(r"  transcript: \d+% of [\d.]+ s, ETA [\d.]+ s", l)], result.stderr
    runs = dict((what, run_id) for run_id, what in (v.split("  ", 1) for v in result.value("run")))
    mux = next(i for i, line in enumerate(err) if line.startswith(f"  stage subtitled_video [{job}]"))
    for lang in langs:
        # each language run said as it finished, before the next run's stages
        assert err.index(f"  subtitles [{lang}]: ok (run {runs[f'subtitles [{lang}]']})") < mux, result.stderr
    wrote = result.value("wrote")
    assert len(wrote) == 7 and all(Path(p).is_file() for p in wrote), result.stdout  # whole at COLUMNS=20


def run_in_pty(args: list[str], columns: int, interrupt_on: str | None = None, timeout: float = 600,
               ) -> tuple[int, str]:
    """`args` with stdin, stdout and stderr on one pseudo-terminal `columns` wide: what it drew.
    Ctrl-C (SIGINT to its process group, as a terminal sends it) once `interrupt_on` is drawn."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    proc = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, env={**env, "TERM": "xterm-256color"},
                            start_new_session=True)
    os.close(slave)
    drawn, deadline = bytearray(), time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 5)
            if not ready:
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every holder of the terminal's other side has gone
                break
            if not chunk:
                break
            drawn += chunk
            if interrupt_on is not None and interrupt_on.encode() in drawn:
                os.killpg(proc.pid, signal.SIGINT)
                interrupt_on = None
        return proc.wait(timeout=120), drawn.decode("utf-8", "replace")
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)


@pytest.mark.slow
def test_cli_live_display_on_a_narrow_terminal_and_result_lines_whole(speech_video, tmp_path):
    code, drawn = run_in_pty([str(STAGEFLOW), "subtitles", str(speech_video), "--lang", "es",
                              "--out", str(tmp_path / "out")], columns=30)
    assert code == 0, drawn[-3000:]
    assert "\x1b[?25l" in drawn and "\r\x1b[2K" in drawn  # a live region, redrawn in place
    # a run going (drawn below each line printed while it goes), cut to 30 columns
    assert re.search(r"\n\x1b\[1m[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏] [\d.]+ s  source, au[^\x1b\r\n]*…\x1b\[0m", drawn), drawn[-3000:]
    results = drawn[drawn.index("job: "):]
    assert "\x1b" not in results  # the display stopped before the first result line
    job = results.split("\r\n", 1)[0].removeprefix("job: ")
    assert f"stage transcript [{job}] " in ANSI.sub("", drawn)
    lines = results.split("\r\n")  # the terminal's line ends: each result line is one, whole
    wrote = [line.removeprefix("wrote: ") for line in lines if line.startswith("wrote: ")]
    assert len(wrote) == 4 and all(Path(p).is_file() for p in wrote), results
    assert len([line for line in lines if re.fullmatch(r"run: [0-9a-f-]{36}  [^\r]+", line)]) == 3, results


@pytest.mark.slow
def test_ctrl_c_stops_the_live_display_before_its_one_interrupted_line(long_speech_video, tmp_path):
    video = tmp_path / "ctrlc-live.mp4"
    video.write_bytes(long_speech_video.read_bytes())
    code, drawn = run_in_pty([str(STAGEFLOW), "subtitles", str(video), "--lang", "es", "--out", str(tmp_path / "out")],
                             columns=30, interrupt_on=" transcript  ")  # its live row: Whisper at work
    assert code == 130, drawn[-3000:]
    tail = drawn[drawn.index("stageflow: interrupted: "):]
    before = drawn[:drawn.index(tail)]
    stopped = before.rindex("\x1b[?25h")  # the cursor back: the display stopped, then only erasing
    assert stopped > max(before.rfind(frame) for frame in "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏") and ANSI.sub("", before[stopped:]).strip() == ""
    assert tail.startswith("stageflow: interrupted: source, audio, transcript stopped: Ctrl-C or SIGTERM; "
                           "nothing was delivered (run ") and tail.endswith(" canceled)\r\n"), tail
    assert tail.count("\r\n") == 1 and "\x1b" not in tail, tail  # one line, whole, and the last thing drawn
    assert "Traceback" not in drawn


def test_an_interrupt_inside_a_finalizer_prints_no_traceback():
    """Ctrl-C landing in a garbage collection's weakref callback (SQLAlchemy's, seen under load):
    Python prints it as `Exception ignored`; the CLI keeps its one line. Other errors still show."""
    script = (
        "import sys, dagster\n"
        "from stageflow_assets.cli import quiet_interrupts\n"
        "sys.unraisablehook = quiet_interrupts(sys.unraisablehook)\n"
        "class Finalized:\n"
        "    def __init__(self, exc): self.exc = exc\n"
        "    def __del__(self): raise self.exc\n"
        "Finalized(KeyboardInterrupt())\n"
        "Finalized(dagster.DagsterExecutionInterruptedError())\n"
        "Finalized(ValueError('a real bug'))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("Exception ignored") == 1 and "ValueError: a real bug" in done.stderr, done.stderr
    assert "KeyboardInterrupt" not in done.stderr and "Interrupted" not in done.stderr
