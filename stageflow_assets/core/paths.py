"""The one path helper: every stage directory and every atomic write goes through here."""

from __future__ import annotations

import os
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
    """A stage's place on disk: `ROOT/<domain>/<job>/<dir_name>[/<lang>]`."""

    domain: str
    dir_name: str

    @property
    def metadata(self) -> dict[str, str]:
        return {"stageflow/domain": self.domain, "stageflow/stage_dir": self.dir_name}

    @classmethod
    def from_metadata(cls, metadata: dict[str, Any]) -> "StageSpec":
        return cls(metadata["stageflow/domain"], metadata["stageflow/stage_dir"])


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
