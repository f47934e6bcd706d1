"""Shared fixtures: an isolated stageflow + Dagster home per test session, real media builders."""

from __future__ import annotations

import os
import subprocess
import sys
import contextlib
from dataclasses import dataclass
from pathlib import Path

import pytest

from stageflow_assets_tests.fakes.anthropic_server import fake_anthropic  # noqa: F401

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
LIBRIVOX = SHARED_DATA / "librivox"
STAGEFLOW = Path(sys.executable).with_name("stageflow")


@pytest.fixture(scope="session", autouse=True)
def _isolated_homes(tmp_path_factory):
    """Every test session gets its own STAGEFLOW_HOME and DAGSTER_HOME (never the checkout's)."""
    base = tmp_path_factory.mktemp("homes")
    saved = {k: os.environ.get(k) for k in ("STAGEFLOW_HOME", "DAGSTER_HOME")}
    os.environ["STAGEFLOW_HOME"] = str(base / "stageflow")
    os.environ["DAGSTER_HOME"] = str(base / "dagster")
    from stageflow_assets.core.instance import ensure_dagster_home

    ensure_dagster_home()
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture
def instance():
    """A persistent test instance (sensor ticks need one with a ref)."""
    import dagster as dg

    with dg.instance_for_test() as inst:
        yield inst


@pytest.fixture
def store(tmp_path):
    """A storage resource rooted in the test's own directory."""
    from stageflow_assets.core.stage_store import StageStore

    return StageStore(home=str(tmp_path / "stageflow"))


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def error_lines(self) -> list[str]:
        return [l for l in self.stderr.splitlines() if l.startswith("stageflow: error:")]

    def value(self, prefix: str) -> list[str]:
        return [l.split(":", 1)[1].strip() for l in self.stdout.splitlines() if l.startswith(prefix + ":")]


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 600) -> CliResult:
    """The real `stageflow` console script in a subprocess, as a user runs it."""
    proc = subprocess.run(
        [str(STAGEFLOW), *map(str, args)],
        capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})},
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture(scope="session")
def librivox_clips() -> list[tuple[Path, str]]:
    """(wav, reference transcript) for each LibriVox clip in ../shared/data."""
    if not LIBRIVOX.is_dir():
        pytest.skip("../shared/data/librivox is absent (a plain clone has no ../shared)")
    clips = sorted(LIBRIVOX.glob("*.wav"))
    return [(wav, wav.with_suffix(".txt").read_text().strip()) for wav in clips]


@pytest.fixture(scope="session")
def librivox_video(tmp_path_factory, librivox_clips) -> tuple[Path, str]:
    """One H.264/AAC MP4 of all the clips back to back (~15 s), with the joined reference."""
    out = tmp_path_factory.mktemp("librivox")
    listing = out / "clips.txt"
    listing.write_text("".join(f"file '{wav}'\n" for wav, _ in librivox_clips))
    joined = out / "speech.wav"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-f", "concat", "-safe", "0", "-i",
                    str(listing), "-c", "copy", str(joined)], check=True)
    from stageflow_assets.demo import video_from_audio

    video = video_from_audio(joined, out / "austen.mp4")
    return video, " ".join(text for _, text in librivox_clips)


@pytest.fixture(scope="session")
def speech_video(tmp_path_factory) -> Path:
    """A short espeak-ng English video (no ../shared needed)."""
    from stageflow_assets.demo import sample_video

    return sample_video(tmp_path_factory.mktemp("speech") / "speech.mp4",
                        text="The quick brown fox jumps over the lazy dog. The house is big.")


@pytest.fixture(scope="session")
def long_speech_video(tmp_path_factory) -> Path:
    """~6.5 minutes of espeak-ng speech: Whisper needs far longer than the tests wait."""
    from stageflow_assets.demo import sample_video

    sentence = "The quick brown fox jumps over the lazy dog while the house stands big and tall near the river."
    return sample_video(tmp_path_factory.mktemp("long") / "long.mp4", text=" ".join([sentence] * 60))


@contextlib.contextmanager
def instance_with_env(env: dict[str, str], names=("DAGSTER_HOME", "STAGEFLOW_POSTGRES_URL", "STAGEFLOW_CELERY_BROKER")):
    """The instance of `env`'s DAGSTER_HOME in this process, with `names` as `env` has them only
    while it is open (other tests' CLI runs inherit this process's environment)."""
    import dagster as dg

    saved = {name: os.environ.get(name) for name in names}
    for name in names:
        if name in env:
            os.environ[name] = env[name]
        else:
            os.environ.pop(name, None)
    try:
        with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
            yield instance
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


APERTIUM = Path("/usr/bin/apertium")


def fake_apertium(tmp_path: Path, body: str) -> Path:
    """A directory to put first on PATH, holding an `apertium` that runs `body` (shell).

    Its first lines are the real script's, which tell stageflow where the installed pairs are.
    Skips the test where Apertium itself is not installed.
    """
    if not APERTIUM.is_file():
        pytest.skip(f"{APERTIUM} is not installed (make install installs it)")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "apertium"
    fake.write_text('#!/bin/sh\nAPERTIUM_DATADIR="${APERTIUM_DATADIR:-/usr/share/apertium}"\n' + body)
    fake.chmod(0o755)
    return bin_dir
