"""The one path helper: every stage directory and every atomic write goes through here."""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from stageflow_assets.core.keys import KEY_PATTERN

TEMP_MARK = ".tmp-"
_UMASK = os.umask(0)
os.umask(_UMASK)


@dataclass(frozen=True)
class StagePaths:
    """`ROOT/<domain>/<job>/<NN_stage>[/<lang>]/` for each asset partition."""

    root: Path

    def job_dir(self, domain: str, job: str) -> Path:
        if not KEY_PATTERN.match(job):
            raise ValueError(f"not a stageflow job key: {job!r}")
        return self.root / domain / job

    def stage_dir(self, domain: str, job: str, stage: str, lang: str | None = None) -> Path:
        path = self.job_dir(domain, job) / stage
        if lang is not None:
            if not KEY_PATTERN.match(lang):
                raise ValueError(f"not a language key: {lang!r}")
            path = path / lang
        return path

    def outbox_dir(self, domain: str, job: str) -> Path:
        """`ROOT/outbox/<domain>/<job>/`: a job's deliverables, where users pick them up."""
        if not KEY_PATTERN.match(job):
            raise ValueError(f"not a stageflow job key: {job!r}")
        return self.root / "outbox" / domain / job

    def dir_of(self, spec: "StageSpec", job: str, lang: str | None = None) -> Path:
        """The directory of one partition of the stage `spec`."""
        if spec.outbox:
            return self.outbox_dir(spec.domain, job)
        return self.stage_dir(spec.domain, job, spec.dir_name, lang)

    def inbox(self, kind: str) -> Path:
        return self.root / "inbox" / kind

    def relative(self, path: Path) -> str:
        """Paths under the root are stored relative to it (the root can move); others absolute."""
        resolved = Path(path).resolve()
        try:
            return str(resolved.relative_to(self.root.resolve()))
        except ValueError:
            return str(resolved)

    def absolute(self, stored: str) -> Path:
        return self.root / stored  # an absolute `stored` stays as it is


@dataclass(frozen=True)
class StageSpec:
    """A stage's place on disk: `ROOT/<domain>/<job>/<dir_name>[/<lang>]`, or with `outbox`
    the job's outbox folder `ROOT/outbox/<domain>/<job>/`, which is replaced as a whole."""

    domain: str
    dir_name: str
    outbox: bool = False

    @property
    def metadata(self) -> dict[str, str]:
        place = {"stageflow/place": "outbox"} if self.outbox else {}
        return {"stageflow/domain": self.domain, "stageflow/stage_dir": self.dir_name, **place}

    @classmethod
    def from_metadata(cls, metadata: dict[str, Any]) -> "StageSpec":
        return cls(metadata["stageflow/domain"], metadata["stageflow/stage_dir"],
                   metadata.get("stageflow/place") == "outbox")


def temp_name(final: Path, run_id: str) -> Path:
    """A sibling temp name: same directory, so the final rename is atomic."""
    return final.with_name(f"{final.name}{TEMP_MARK}{run_id[:8]}")


@contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temp path beside `final`; rename it over `final` only if the block succeeds."""
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}{TEMP_MARK}", dir=final.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    tmp_path.chmod(0o666 & ~_UMASK)  # mkstemp makes 0600; results should read like any file
    try:
        yield tmp_path
        os.replace(tmp_path, final)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_text_atomic(final: Path, text: str) -> None:
    with atomic_path(final) as tmp:
        tmp.write_text(text, encoding="utf-8")


def staging_dir(final: Path, run_id: str) -> Path:
    """A hidden sibling of the folder `final` to build its next version in (same file system)."""
    return final.with_name(f".{final.name}{TEMP_MARK}{run_id[:8]}")


def remove_staging_dirs(final: Path) -> None:
    """Leftover staging folders of `final` (a run killed while building one)."""
    if final.parent.is_dir():
        for leftover in final.parent.glob(f".{final.name}{TEMP_MARK}*"):
            shutil.rmtree(leftover, ignore_errors=True)


_RENAME_EXCHANGE = 2  # linux/fs.h


def replace_dir(staging: Path, final: Path) -> None:
    """Put the complete folder `staging` in the place of `final` in one step.

    A reader of `final` sees the old folder or the new one, never a mix: a first version is one
    rename; a later one is swapped in with renameat2(RENAME_EXCHANGE) (Linux 3.15+) and the old
    one, now at `staging`, removed. Where the file system cannot swap, the old folder is renamed
    aside first, and for that instant `final` is absent rather than half written.
    """
    try:
        os.rename(staging, final)  # a directory renamed onto nothing or onto an empty one
        return
    except OSError as exc:
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise
    if not _exchange(staging, final):
        aside = final.with_name(f".{final.name}{TEMP_MARK}old-{os.getpid()}")
        os.rename(final, aside)
        os.rename(staging, final)
        staging = aside
    shutil.rmtree(staging, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):  # not glibc 2.28+
        return False
    at_fdcwd = -100
    done = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE)
    if done == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):  # the file system cannot swap
        return False
    raise OSError(code, os.strerror(code), str(b))
