"""Claude as the translation backend, through the real CLI, the real SDK and a loopback fake."""

import json
import os
import shutil
from pathlib import Path

import pysubs2
import pytest

from stageflow_assets_tests.conftest import run_cli
from stageflow_assets_tests.fakes.anthropic_server import FAKE_KEY, numbered_cues

pytestmark = pytest.mark.slow


def _spanish(body: dict) -> str:
    return "\n".join(f"{n}: ES[{text}] canalización" for n, text in numbered_cues(body))


def test_claude_backend_translates_every_cue_with_glossary_and_usage(fake_anthropic, speech_video, tmp_path):
    video = tmp_path / "claude.mp4"
    shutil.copyfile(speech_video, video)
    glossary = tmp_path / "glossary.csv"
    glossary.write_text("source,target_language,target\nhouse,es,canalización\n")
    fake_anthropic.fail(429, retry_after=0.05, times=1)  # rate-limited once, then served
    fake_anthropic.handler = _spanish
    env = {"STAGEFLOW_TRANSLATION_BACKEND": "claude", "ANTHROPIC_API_KEY": FAKE_KEY,
           "STAGEFLOW_CLAUDE_BASE_URL": fake_anthropic.base_url}

    result = run_cli("subtitles", video, "--lang", "es", "--glossary", glossary, "--out", tmp_path / "out", env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    job = result.value("job")[0]

    calls = fake_anthropic.calls()
    assert calls and all(c.headers.get("authorization") == f"Bearer {FAKE_KEY}" for c in calls)
    assert any("house" in json.dumps(c.body.get("system"), ensure_ascii=False) and "canalización" in json.dumps(c.body.get("system"), ensure_ascii=False) for c in calls)
    srt = pysubs2.load(str(tmp_path / "out" / f"{job}.es.srt"))
    assert srt and all(e.plaintext.replace("\n", " ").startswith("ES[") for e in srt)

    stage = Path(os.environ["STAGEFLOW_HOME"]) / "subtitles" / job / "05_translation" / "es"
    manifest = json.loads((stage / "manifest.json").read_text())
    assert manifest["config"]["backend"] == "claude" and manifest["config"]["model"]
    usage = manifest["details"]["llm_usage"]
    assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0 and usage["cost_usd"] > 0
    assert manifest["details"]["cues"] == manifest["details"]["source_cues"] == len(srt)
    for path in Path(os.environ["STAGEFLOW_HOME"], "subtitles", job).rglob("*"):
        if path.is_file() and path.suffix in {".json", ".log", ".srt", ".vtt", ".ass"}:
            assert FAKE_KEY not in path.read_text(errors="replace"), path


def test_claude_key_missing_fails_clearly(speech_video, tmp_path, fake_anthropic):
    video = tmp_path / "nokey.mp4"
    shutil.copyfile(speech_video, video)
    env = {"STAGEFLOW_TRANSLATION_BACKEND": "claude", "ANTHROPIC_API_KEY": "",
           "STAGEFLOW_CLAUDE_BASE_URL": fake_anthropic.base_url}
    result = run_cli("subtitles", video, "--lang", "es", env=env)
    assert result.returncode != 0
    assert len(result.error_lines) == 1 and "ANTHROPIC_API_KEY" in result.error_lines[0]
