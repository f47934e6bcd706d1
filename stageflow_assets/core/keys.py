"""Partition keys derived from file names: safe for Dagster, paths and the UI."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

KEY_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_SAMPLE_BYTES = 1 << 20


def sampled_content_hash(path: Path, length: int = 8) -> str:
    """A short content hash that reads at most 2 MiB: size + head + tail.

    Sensors must stay cheap on big videos, so the key hashes a sample; the stage manifests
    still record the full sha256 of every file.
    """
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with path.open("rb") as fh:
        digest.update(fh.read(_SAMPLE_BYTES))
        if size > 2 * _SAMPLE_BYTES:
            fh.seek(-_SAMPLE_BYTES, 2)
            digest.update(fh.read(_SAMPLE_BYTES))
    return digest.hexdigest()[:length]


def slug(text: str, max_len: int = 54, fallback: str = "item") -> str:
    """Lower-case `[a-z0-9._-]`, no `..`, no leading punctuation; never empty."""
    text = re.sub(r"[^a-z0-9._-]+", "-", text.lower())
    text = re.sub(r"\.{2,}", ".", text)
    text = re.sub(r"-{2,}", "-", text).strip("._-")[:max_len].rstrip("._-")
    return text or fallback


def job_key_for_file(path: Path) -> str:
    """`<file stem slug>-<8 hex of content>`: re-dropping the same file gives the same key."""
    key = f"{slug(path.stem, fallback='video')}-{sampled_content_hash(path)}"
    assert KEY_PATTERN.match(key), key
    return key
