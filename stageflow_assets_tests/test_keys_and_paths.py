import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stageflow_assets.core.keys import KEY_PATTERN, job_key_for_file, slug
from stageflow_assets.core.paths import StagePaths, atomic_path


@given(st.text(max_size=300))
def test_slug_is_always_a_safe_key(text):
    key = slug(text)
    assert KEY_PATTERN.match(key)
    assert ".." not in key
    assert not any(c in key for c in "|,[]/ ")


@pytest.mark.parametrize("name", ["...mp4", "..mp4", "-my \"odd\" 'clip' name.mp4", "Ünïcødé clip.MP4", "a|b,c[d].mkv"])
def test_job_keys_from_hostile_file_names(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"not really a video, but keys only read bytes")
    key = job_key_for_file(path)
    assert KEY_PATTERN.match(key) and ".." not in key
    assert job_key_for_file(path) == key  # idempotent: same file, same key
    path.write_bytes(b"other content")
    assert job_key_for_file(path) != key


def test_stage_dirs_reject_keys_that_could_escape(tmp_path):
    paths = StagePaths(tmp_path)
    assert paths.stage_dir("subtitles", "clip-0a1b2c3d", "05_translation", "es") == (
        tmp_path / "subtitles" / "clip-0a1b2c3d" / "05_translation" / "es"
    )
    for bad in ("..", "../x", "a/b", "", "-lead"):
        with pytest.raises(ValueError):
            paths.job_dir("subtitles", bad)


def test_atomic_write_keeps_the_old_file_when_the_writer_fails(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("good")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text() == "good"
    assert os.listdir(tmp_path) == ["out.txt"]
    with atomic_path(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new"
    assert oct(target.stat().st_mode & 0o777) != oct(0o600)  # readable like any output
