"""Running external tools: argument lists, timeouts, and no orphans.

Each tool runs in its own process group so a timeout or a cancelled run kills the whole tree,
and on Linux the child also gets SIGKILL if the run process itself dies (the parent-death
signal). That signal is set by util-linux's `setpriv --pdeathsig KILL`, which then execs the
tool in the same process: setting it from Python (`preexec_fn`) makes subprocess fork the
whole run process instead of vfork, ~14 ms per tool call once Whisper and Dagster are loaded
(against ~2 ms; bench/subtitles_overhead.py). Without `setpriv`, `preexec_fn` does it.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from stageflow_assets.core.errors import ProviderError

_PR_SET_PDEATHSIG = 1
_SETPRIV = shutil.which("setpriv") if sys.platform == "linux" else None
try:
    _prctl = ctypes.CDLL("libc.so.6", use_errno=True).prctl if sys.platform == "linux" else None
except OSError:  # not glibc: process groups still work, only the parent-death signal is lost
    _prctl = None


def die_with_parent() -> None:
    """SIGKILL this process when the thread that started it ends (Linux; elsewhere nothing)."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _spawn_args(argv: tuple[str, ...]) -> tuple[tuple[str, ...], dict]:
    """The command line and Popen options that give `argv` the parent-death signal."""
    if _SETPRIV is not None:
        return (_SETPRIV, "--pdeathsig", "KILL", "--", *argv), {}
    if _prctl is not None:
        return argv, {"preexec_fn": die_with_parent}  # noqa: PLW1509 - only a prctl call
    return argv, {}


@dataclass(frozen=True)
class ToolResult:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


def stop_process_group(proc: subprocess.Popen, grace_s: float = 3.0) -> None:
    """SIGTERM to the process group `proc` leads, then SIGKILL to whatever of the group is still
    there after `grace_s` — the leader or any member that outlived it (a child that ignores
    SIGTERM, a server slow to exit on a busy machine). Returns once the group is gone (or after
    10 s more, if a member cannot be killed)."""
    group = proc.pid
    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(group, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if proc.poll() is not None and not _group_alive(group):
                return
            time.sleep(0.05)
    try:
        proc.wait(timeout=1)
    except subprocess.TimeoutExpired:
        pass


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_tool(
    args: Sequence[str],
    *,
    timeout_s: float,
    input_text: str | None = None,
    check: bool = True,
    cwd: Path | None = None,
) -> ToolResult:
    """Run `args` (never through a shell); raise ProviderError on timeout or non-zero exit."""
    argv = tuple(str(a) for a in args)
    if shutil.which(argv[0]) is None:  # setpriv would only say so on stderr
        raise ProviderError(
            f"{argv[0]} is not installed: run `make install` (it installs the Debian packages)",
            tool=argv[0],
        )
    command, spawn_options = _spawn_args(argv)
    try:
        proc = subprocess.Popen(
            command,
            stdin=subprocess.PIPE if input_text is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
            start_new_session=True,
            cwd=cwd,
            **spawn_options,
        )
    except (FileNotFoundError, PermissionError) as exc:
        raise ProviderError(f"{argv[0]} cannot be run ({exc})", tool=argv[0]) from exc
    try:
        stdout, stderr = proc.communicate(input_text, timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        stop_process_group(proc)
        raise ProviderError(
            f"{os.path.basename(argv[0])} timed out after {timeout_s:g}s", args=list(argv)
        ) from exc
    except BaseException:
        stop_process_group(proc)
        raise
    result = ToolResult(argv, proc.returncode, stdout, stderr)
    if check and proc.returncode != 0:
        raise ProviderError(
            f"{os.path.basename(argv[0])} failed (exit {proc.returncode}): {last_line(stderr)}",
            args=list(argv),
            stderr=stderr[-2000:],
        )
    return result


def start_tool(args: Sequence[str], *, cwd: Path | None = None) -> subprocess.Popen:
    """Start `args` as `run_tool` runs a tool (own process group, SIGKILL when the starting
    thread ends) but leave it running, with binary pipes: a helper that answers many requests.
    Stop it with `stop_process_group`."""
    argv = tuple(str(a) for a in args)
    if shutil.which(argv[0]) is None:
        raise ProviderError(f"{argv[0]} is not installed or not on PATH", tool=argv[0])
    command, spawn_options = _spawn_args(argv)
    try:
        return subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True, cwd=cwd, **spawn_options)
    except (FileNotFoundError, PermissionError) as exc:
        raise ProviderError(f"{argv[0]} cannot be run ({exc})", tool=argv[0]) from exc


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


def tool_version(binary: str, flag: str = "-version") -> str:
    """The first line `binary flag` prints (e.g. "ffmpeg version 5.1.9-0+deb12u1 ...").

    A stage's fingerprint includes its tools' versions, so every CLI process would run the
    tool once just to ask (ffmpeg loads ~100 shared libraries: ~70 ms). The answer is kept
    in the stageflow cache, keyed by the binary's resolved path, size and modification time:
    a changed binary is asked again.
    """
    path = shutil.which(binary)
    if path is None:
        raise ProviderError(f"{binary} is not installed or not on PATH", tool=binary)
    real = os.path.realpath(path)
    stat = os.stat(real)
    key = f"{real}|{stat.st_size}|{stat.st_mtime_ns}|{flag}"
    found = _VERSIONS.get(key)
    if found is not None:
        return found
    from stageflow_assets.core.paths import write_text_atomic
    from stageflow_assets.core.settings import cache_dir

    cache = cache_dir() / "tool-versions.json"
    try:
        known = json.loads(cache.read_text())
    except (OSError, ValueError):
        known = {}
    if key not in known:
        result = run_tool([real, flag], timeout_s=30)
        known[key] = result.stdout.splitlines()[0] if result.stdout.strip() else "unknown"
        try:
            write_text_atomic(cache, json.dumps(known, indent=1, sort_keys=True))
        except OSError:
            pass  # a read-only cache only costs the question next time
    _VERSIONS[key] = known[key]
    return known[key]


_VERSIONS: dict[str, str] = {}

