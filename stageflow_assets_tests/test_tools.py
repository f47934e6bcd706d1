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


# -- run_tool: no tool outlives its run --------------------------------------------------------

def _gone(pid: int, within_s: float = 10.0) -> bool:
    """The process has exited (a zombie waiting to be reaped counts as exited)."""
    import time
    from pathlib import Path

    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state == "Z":
            return True
        time.sleep(0.05)
    return False


def _wait_for_pid(path, within_s: float = 10.0) -> int:
    import time

    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if path.is_file() and path.read_text().strip():
            return int(path.read_text())
        time.sleep(0.02)
    raise AssertionError(f"no pid in {path}")


def test_run_tool_output_and_exit_status():
    result = process.run_tool(["sh", "-c", "cat; echo err >&2"], timeout_s=10, input_text="hello\n")
    assert (result.returncode, result.stdout, result.stderr) == (0, "hello\n", "err\n")
    assert result.args == ("sh", "-c", "cat; echo err >&2")
    with pytest.raises(ProviderError, match=r"sh failed \(exit 3\): last words") as failed:
        process.run_tool(["sh", "-c", "echo first >&2; echo last words >&2; exit 3"], timeout_s=10)
    assert failed.value.details["stderr"] == "first\nlast words\n"


def test_run_tool_missing_tool_is_one_clear_error():
    with pytest.raises(ProviderError, match="no-such-tool-here is not installed: run `make install`"):
        process.run_tool(["no-such-tool-here", "-x"], timeout_s=10)


def test_a_timeout_kills_the_tool_and_its_children(tmp_path):
    pidfile = tmp_path / "grandchild.pid"
    with pytest.raises(ProviderError, match=r"sh timed out after 0.5s"):
        process.run_tool(["sh", "-c", f"sleep 60 & echo $! > '{pidfile}'; wait"], timeout_s=0.5)
    assert _gone(_wait_for_pid(pidfile)), "the tool's own child outlived the timeout"


def test_a_tool_dies_with_the_process_that_ran_it(tmp_path):
    """SIGKILL the process running a stage (as a cancelled or killed run is): its tool goes too."""
    import subprocess
    import sys

    pidfile = tmp_path / "tool.pid"
    runner = subprocess.Popen([sys.executable, "-c", (
        "from stageflow_assets.providers.process import run_tool; "
        f"run_tool(['sh', '-c', 'echo $$ > {pidfile}; exec sleep 60'], timeout_s=120)"
    )])
    try:
        tool_pid = _wait_for_pid(pidfile)
        assert not _gone(tool_pid, within_s=0.2)
        runner.kill()
        runner.wait(timeout=10)
        assert _gone(tool_pid), "the tool outlived the killed process that ran it"
    finally:
        if runner.poll() is None:
            runner.kill()


def test_stopping_a_group_leaves_no_member_behind_even_one_that_ignores_sigterm(tmp_path):
    """A server slow to stop or a child that ignores SIGTERM (as `dagster dev`'s processes can be on a
    busy machine): the leader exits on SIGTERM, the member does not; the member is killed too."""
    import subprocess
    import time

    pid_file = tmp_path / "child.pid"
    script = (f"sh -c 'trap \"\" TERM; echo $$ > {pid_file}; while :; do sleep 0.1; done' &\n"
              "wait\n")
    leader = subprocess.Popen(["sh", "-c", script], start_new_session=True)
    deadline = time.monotonic() + 30
    while not (pid_file.exists() and pid_file.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.05)
    child = int(pid_file.read_text())
    process.stop_process_group(leader, grace_s=1)
    assert leader.poll() is not None
    with pytest.raises(ProcessLookupError):
        os.killpg(leader.pid, 0)  # nothing of the group is left
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)
