"""External tools: their versions (part of every stage fingerprint) are asked once per binary."""

from __future__ import annotations

import os

import pytest

from stageflow_assets.core.errors import ProviderError
from stageflow_assets.providers import process
from stageflow_assets.providers.media import MediaTools


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(process, "_VERSIONS", {})
    return tmp_path / "cache" / "stageflow" / "tool-versions.json"


def fake_tool(path, version: str, calls):
    path.write_text(f"#!/bin/sh\necho called >> '{calls}'\necho '{version}'\necho 'more lines'\n")
    path.chmod(0o755)
    return path


def test_a_version_is_asked_once_per_binary_and_again_when_it_changes(tmp_path, cache, monkeypatch):
    calls = tmp_path / "calls"
    tool = fake_tool(tmp_path / "mytool", "mytool 1.0", calls)
    assert process.tool_version(str(tool)) == "mytool 1.0"
    monkeypatch.setattr(process, "_VERSIONS", {})  # a new process: only the cache file is left
    assert process.tool_version(str(tool)) == "mytool 1.0"
    assert calls.read_text().count("called") == 1
    assert cache.is_file()
    fake_tool(tool, "mytool 2.0 (longer)", calls)  # upgraded: another size and mtime
    os.utime(tool, ns=(1, 1))
    assert process.tool_version(str(tool)) == "mytool 2.0 (longer)"
    assert calls.read_text().count("called") == 2


def test_a_missing_tool_is_a_provider_error(cache):
    with pytest.raises(ProviderError, match="no-such-tool-here is not installed"):
        process.tool_version("no-such-tool-here")


def test_ffmpeg_version_is_the_real_first_line(cache):
    import subprocess

    first = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True, check=True).stdout.splitlines()[0]
    assert MediaTools().versions() == {"ffmpeg": first}
    assert first.startswith("ffmpeg version ")
