"""Bad input through the real `stageflow` CLI: one clear error line, nothing half-written.

Each broken video must fail with exactly one `stageflow: error:` line naming the file and
what is wrong, leave `manifest.failed.json` (and no `manifest.json`) in the stage that
rejected it, no temp files anywhere, and nothing in `--out`. Awkward but valid file names
must go through end to end without any path leaving STAGEFLOW_HOME and `--out`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import dagster as dg
import pytest

from stageflow_assets.core.keys import KEY_PATTERN, job_key_for_file, slug
from stageflow_assets.core.manifest import FAILED_MANIFEST_NAME, MANIFEST_NAME
from stageflow_assets.core.paths import TEMP_MARK
from stageflow_assets.core.stage import STAGE_LOG_NAME
from stageflow_assets.subtitles import stage_dirs
from stageflow_assets.core.job_records import JOB_FILE
from stageflow_assets_tests.conftest import REPO, CliResult, run_cli

STAGE_DIRS = [
    s.dir_name
    for s in (stage_dirs.SOURCE_VIDEO, stage_dirs.AUDIO, stage_dirs.TRANSCRIPT, stage_dirs.CUES, stage_dirs.TRANSLATION,
              stage_dirs.SUBTITLES, stage_dirs.SUBTITLED_VIDEO)
]
RUN_IN_ERROR = re.compile(r"\(run ([0-9a-f-]{36});")


# --------------------------------------------------------------------------- helpers


def home() -> Path:
    return Path(os.environ["STAGEFLOW_HOME"])


def job_dir(job: str) -> Path:
    return home() / stage_dirs.DOMAIN / job


def temps_under_home() -> list[Path]:
    return sorted(home().rglob(f"*{TEMP_MARK}*")) if home().exists() else []


def tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under `root` with (size, mtime_ns): a before/after snapshot."""
    if not root.exists():
        return {}
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in root.rglob("*")
        if p.is_file()
    }


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True, timeout=120)


def top_level_atoms(data: bytes) -> list[str]:
    """The MP4 box types at the top level, in file order (stops at a box running past the end)."""
    atoms, pos = [], 0
    while pos + 8 <= len(data):
        size = int.from_bytes(data[pos:pos + 4], "big")
        if size == 1 and pos + 16 <= len(data):
            size = int.from_bytes(data[pos + 8:pos + 16], "big")
        atoms.append(data[pos + 4:pos + 8].decode("latin-1"))
        if size < 8:
            break
        pos += size
    return atoms


def single_error_line(result: CliResult) -> str:
    assert result.returncode != 0, result.stdout + result.stderr
    assert len(result.error_lines) == 1, result.stderr[-3000:]
    return result.error_lines[0]


def assert_out_untouched(out: Path) -> None:
    assert not out.exists() or not any(out.iterdir()), sorted(out.iterdir())


def assert_run_failed(line: str) -> None:
    """The run the error line names is in the instance, and failed."""
    match = RUN_IN_ERROR.search(line)
    assert match, f"the error line names no run: {line}"
    with dg.DagsterInstance.get() as instance:
        run = instance.get_run_by_id(match.group(1))
        assert run is not None, match.group(1)
        assert run.status == dg.DagsterRunStatus.FAILURE, run.status


def assert_failed_cleanly(result: CliResult, video: Path, failing_stage: str, out: Path,
                          says: tuple[str, ...]) -> str:
    line = single_error_line(result)
    assert video.name in line, f"the error line does not name {video.name}: {line}"
    assert any(word in line for word in says), f"expected one of {says} in: {line}"
    assert_run_failed(line)

    job = job_key_for_file(video)
    registered = json.loads((job_dir(job) / JOB_FILE).read_text())
    assert registered["original_name"] == video.name

    position = STAGE_DIRS.index(failing_stage)
    for done in STAGE_DIRS[:position]:  # the stages before it succeeded and stay good
        manifest = json.loads((job_dir(job) / done / MANIFEST_NAME).read_text())
        assert manifest["status"] == "success", (done, manifest["status"])
    failed_dir = job_dir(job) / failing_stage
    assert not (failed_dir / MANIFEST_NAME).exists(), "a failed stage must not write manifest.json"
    failed = json.loads((failed_dir / FAILED_MANIFEST_NAME).read_text())
    assert failed["status"] == "failed"
    assert failed["outputs"] == []
    assert failed["errors"] and video.name in failed["errors"][0]["message"]
    assert failed["errors"][0]["type"] == "BadInputError"
    assert {p.name for p in failed_dir.iterdir()} == {FAILED_MANIFEST_NAME, STAGE_LOG_NAME}
    assert "failed:" in (failed_dir / STAGE_LOG_NAME).read_text()
    for later in STAGE_DIRS[position + 1:]:  # nothing downstream ran or was started
        assert not (job_dir(job) / later).exists(), later

    assert temps_under_home() == []
    assert_out_untouched(out)
    return line


# --------------------------------------------------------------------------- bad videos


@dataclass(frozen=True)
class BadCase:
    name: str
    build: Callable[[Path, Path], None]  # (speech video, destination)
    failing_stage: str
    says: tuple[str, ...]


def _empty(_: Path, dst: Path) -> None:
    dst.write_bytes(b"")


def _text(_: Path, dst: Path) -> None:
    dst.write_text("Meeting notes\n\n- buy milk\n- call Ann about the video\n" * 40)


def _truncated(speech: Path, dst: Path) -> None:
    data = speech.read_bytes()
    atoms = top_level_atoms(data)
    assert atoms.index("moov") > atoms.index("mdat"), atoms  # the index sits at the end
    dst.write_bytes(data[: len(data) // 2])
    assert "moov" not in top_level_atoms(dst.read_bytes())


def _truncated_faststart(speech: Path, dst: Path) -> None:
    full = dst.with_name("faststart-full.mp4")
    ffmpeg("-i", str(speech), "-c", "copy", "-movflags", "+faststart", str(full))
    data = full.read_bytes()
    full.unlink()
    dst.write_bytes(data[: len(data) // 2])
    atoms = top_level_atoms(dst.read_bytes())
    assert atoms.index("moov") < atoms.index("mdat"), atoms  # the header survives the cut


def _no_audio(_: Path, dst: Path) -> None:
    ffmpeg("-f", "lavfi", "-i", "color=c=blue:s=160x120:r=25", "-t", "2",
           "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(dst))


BAD_CASES = [
    BadCase("empty.mp4", _empty, stage_dirs.SOURCE_VIDEO.dir_name, ("empty",)),
    BadCase("notes.mp4", _text, stage_dirs.SOURCE_VIDEO.dir_name, ("not a readable video",)),
    # moov atom lost: ffprobe already refuses it
    BadCase("truncated.mp4", _truncated, stage_dirs.SOURCE_VIDEO.dir_name,
            ("truncated", "complete video")),
    # moov atom kept: probes fine, but decodes to far less audio than the header promises
    BadCase("truncated-faststart.mp4", _truncated_faststart, stage_dirs.AUDIO.dir_name,
            ("truncated",)),
    BadCase("silent-colour.mp4", _no_audio, stage_dirs.SOURCE_VIDEO.dir_name, ("no audio stream",)),
]


@pytest.mark.parametrize("case", BAD_CASES, ids=[c.name for c in BAD_CASES])
def test_bad_video_fails_clearly_and_writes_nothing_half(case: BadCase, speech_video, tmp_path):
    video = tmp_path / case.name
    case.build(speech_video, video)
    out = tmp_path / "out"

    result = run_cli("subtitles", video, "--lang", "en", "--out", out)

    assert_failed_cleanly(result, video, case.failing_stage, out, case.says)


def test_missing_file_fails_clearly(tmp_path):
    video = tmp_path / "no-such-video.mp4"
    out = tmp_path / "out"
    before = tree(home())

    result = run_cli("subtitles", video, "--lang", "en", "--out", out)

    line = single_error_line(result)
    assert result.returncode == 2
    assert str(video) in line and "no such file" in line, line
    assert tree(home()) == before  # nothing registered, no stage started
    assert not list((home() / stage_dirs.DOMAIN).glob(f"{slug(video.stem)}-*"))
    assert_out_untouched(out)


# --------------------------------------------------------------------------- awkward names


ONNXRUNTIME_SESSION_FILE = ".ses"


def run_clean(video: Path, out: Path, lang: str, cli_video_arg: str, tmp: Path) -> tuple[CliResult, str]:
    """Run the CLI from `video`'s folder with a watched TMPDIR; check it ended cleanly."""
    watched_tmp = tmp / "tmpdir"
    watched_tmp.mkdir()
    inputs_before = tree(video.parent)
    original = video.read_bytes()

    result = run_cli("subtitles", "--lang", lang, "--out", out, "--", cli_video_arg,
                     env={"TMPDIR": str(watched_tmp)})

    assert result.returncode == 0, result.stderr[-3000:]
    assert result.error_lines == []
    jobs = result.value("job")
    assert len(jobs) == 1, result.stdout
    job = jobs[0]
    assert KEY_PATTERN.match(job), job
    assert ".." not in job and "/" not in job
    assert job == job_key_for_file(video)

    # the deliverables, and only they, in --out, named by the job key
    expected = {f"{job}.{lang}.srt", f"{job}.{lang}.vtt", f"{job}.{lang}.ass", f"{job}.mkv"}
    assert {p.name for p in out.iterdir()} == expected
    for path in out.iterdir():
        assert path.resolve().parent == out.resolve() and path.stat().st_size > 0
    assert "-->" in (out / f"{job}.{lang}.srt").read_text()
    wrote = {(Path.cwd() / p).resolve() for p in result.value("wrote")}
    assert wrote == {(out / name).resolve() for name in expected}
    probe = json.loads(subprocess.run(
        ["ffprobe", "-v", "error", "-print_format", "json", "-show_streams", str(out / f"{job}.mkv")],
        check=True, capture_output=True, text=True,
    ).stdout)
    assert {s["codec_type"] for s in probe["streams"]} == {"video", "audio", "subtitle"}

    # the job is registered under its key, directly under the domain dir
    directory = job_dir(job)
    assert directory.resolve().parent == (home() / stage_dirs.DOMAIN).resolve()
    registered = json.loads((directory / JOB_FILE).read_text())
    assert registered["original_name"] == video.name
    assert registered["source_path"] == str(video.resolve())

    # nothing escaped: the inputs are as they were, no temp files, every stage file in HOME
    assert tree(video.parent) == inputs_before
    assert video.read_bytes() == original
    # ONNX Runtime 1.32 (the VAD of batched Whisper decoding) keeps one telemetry session file,
    # `$TMPDIR/.ses` (a first-launch time and an SDK id), reused by every later process: not a
    # file of this run. Anything else left in TMPDIR is.
    assert [p for p in watched_tmp.iterdir() if p.name != ONNXRUNTIME_SESSION_FILE] == []
    assert temps_under_home() == []
    root = home().resolve()
    for path in home().rglob("*"):
        assert path.resolve().is_relative_to(root), path
    for child in (home() / stage_dirs.DOMAIN).iterdir():
        assert KEY_PATTERN.match(child.name) and ".." not in child.name, child
    assert not (REPO / ".stageflow" / stage_dirs.DOMAIN / job).exists()  # STAGEFLOW_HOME honoured
    return result, job


def test_odd_file_name_with_quotes_spaces_and_leading_dash(speech_video, tmp_path, monkeypatch):
    name = "-my \"odd\" 'clip' name.mp4"
    inputs = tmp_path / "in"
    inputs.mkdir()
    video = inputs / name
    shutil.copyfile(speech_video, video)
    monkeypatch.chdir(inputs)  # the name goes on the command line as typed, after `--`
    out = tmp_path / "out dir"

    _, job = run_clean(video, out, "en", name, tmp_path)

    assert job.startswith("my-odd-clip-name-")


@pytest.mark.parametrize("name", ["..mp4", "...mp4"])
def test_dot_dot_name_never_escapes(name, speech_video, tmp_path, monkeypatch):
    inputs = tmp_path / "in"
    inputs.mkdir()
    video = inputs / name
    shutil.copyfile(speech_video, video)
    assert slug(video.stem) != video.stem  # the stem alone would be `.` or `..`
    monkeypatch.chdir(inputs)
    out = tmp_path / "out"

    _, job = run_clean(video, out, "es", name, tmp_path)

    assert job.startswith("video-")
    # the stage dirs are real directories inside the job dir, not `..` hops
    for stage in STAGE_DIRS:
        assert (job_dir(job) / stage).resolve().parent == job_dir(job).resolve()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "out", "tmpdir"]
