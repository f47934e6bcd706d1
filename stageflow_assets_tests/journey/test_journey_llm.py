"""The production path through the real CLI: an OpenAI-compatible chat LLM (loopback fake of its
wire format) translates German and rewrites through a perspective, and confirms or clears safety
keyword matches; a ComfyUI server (loopback fake of its HTTP API) makes the image."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

from stageflow_assets.journey import stage_dirs
from stageflow_assets_tests.conftest import run_cli
from stageflow_assets_tests.fakes.comfyui_server import fake_comfyui  # noqa: F401
from stageflow_assets_tests.fakes.openai_chat_server import FAKE_CHAT_KEY, FAKE_MODEL, echo, fake_chat  # noqa: F401


def configured(fake_chat, comfy=None) -> dict[str, str]:
    fake_chat.valid_keys = {FAKE_CHAT_KEY}
    return {"ANTHROPIC_API_KEY": "", "STAGEFLOW_LLM_URL": fake_chat.base_url, "STAGEFLOW_LLM_MODEL": FAKE_MODEL,
            "STAGEFLOW_LLM_API_KEY": FAKE_CHAT_KEY, "STAGEFLOW_COMFYUI_URL": comfy.url if comfy else ""}


def review_answers(answer: str):
    """Safety reviews get `answer`; every other request the fake's echo."""
    def handler(flavor, body):
        system = body["messages"][0]["content"]
        return answer if system.startswith("You review texts") else echo(flavor, body)
    return handler


def record_of(key: str) -> dict:
    path = Path(os.environ["STAGEFLOW_HOME"]) / stage_dirs.DOMAIN / key / stage_dirs.RECORD_DIR / f"{key}.json"
    return json.loads(path.read_text(encoding="utf-8"))


def test_german_prompt_poem_and_comfyui_image(fake_chat, fake_comfyui, tmp_path):
    result = run_cli("journey", "Eine Burg im Nebel über dem Fluss", "--lang", "de", "--interception", "poem",
                     "--output", "image:256x256", "--seed", "5", "--out", str(tmp_path),
                     env=configured(fake_chat, fake_comfyui))
    assert result.returncode == 0, result.stderr
    (key,) = result.value("journey")
    (image,) = [Path(p) for p in result.value("wrote")]
    assert image == tmp_path / f"{key}.1.image.png" and image.read_bytes()[:4] == b"\x89PNG"

    items = {i["kind"]: i for i in record_of(key)["items"]}
    translation = items["translation"]
    assert (translation["backend"], translation["model"]) == ("chat", FAKE_MODEL)
    assert translation["parameters"]["source"] == "de" and translation["parameters"]["temperature"] == 0.2
    poem = items["interception_iteration"]
    assert poem["backend"] == "chat" and poem["stage_iteration"] == 1 and poem["parameters"]["perspective"] == "poem"
    made = items["output_image"]
    assert made["backend"] == "comfyui" and made["model"] == "sd_xl_base_1.0.safetensors"
    assert made["parameters"]["seed"] == 5 and made["parameters"]["steps"] == 25
    assert len(fake_chat.calls()) == 2  # a translation and a rewrite; no match, so no review

    home = Path(os.environ["STAGEFLOW_HOME"]) / stage_dirs.DOMAIN / key
    written = "".join(p.read_text(encoding="utf-8", errors="replace") for p in home.rglob("*")
                      if p.is_file() and p.suffix in (".json", ".jsonl", ".log"))
    assert FAKE_CHAT_KEY not in written  # the key went into a header, nowhere else


def test_an_llm_clears_a_harmless_keyword_match(fake_chat, tmp_path):
    fake_chat.handler = review_answers("HARMLESS")
    result = run_cli("journey", "A history lesson: why the slogan Sieg Heil was banned", "--lang", "en",
                     "--interception", "poem", "--out", str(tmp_path), env=configured(fake_chat))
    assert result.returncode == 0, result.stderr
    checks = [i for i in record_of(result.value("journey")[0])["items"] if i["kind"] == "safety_check"]
    assert checks[0]["metadata"]["blocked"] is False and checks[0]["metadata"]["matches"]
    assert checks[0]["metadata"]["confirmed_by"] == f"llm:{FAKE_MODEL}"


def test_an_llm_confirms_a_match_and_the_journey_is_blocked(fake_chat, tmp_path):
    fake_chat.handler = review_answers("FORBIDDEN")
    result = run_cli("journey", "A banner saying Sieg Heil", "--lang", "en", "--interception", "poem",
                     "--out", str(tmp_path), env=configured(fake_chat))
    assert result.returncode == 3, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("stageflow: blocked at stage 1: ") and f"confirmed by llm:{FAKE_MODEL}" in last
    assert len(fake_chat.calls()) == 1  # the review; nothing was translated or rewritten


def test_a_perspective_without_an_llm_says_what_to_set(tmp_path):
    result = run_cli("journey", "A lighthouse", "--lang", "en", "--interception", "bauhaus", "--out", str(tmp_path),
                     env={"ANTHROPIC_API_KEY": "", "STAGEFLOW_LLM_URL": "", "STAGEFLOW_LLM_MODEL": ""})
    assert result.returncode == 2, result.stderr
    (line,) = result.error_lines
    assert "stage 2:" in line and "bauhaus" in line and "STAGEFLOW_LLM_URL" in line


def test_the_images_endpoint_makes_the_image_when_it_is_configured(tmp_path):
    """The vocabulary domain's OpenAI-compatible images endpoint serves stage 4 when it is the
    configured image backend: the size asked for goes in the request, the key only in its header."""
    from PIL import Image

    from stageflow_assets_tests.vocabulary.fakes import FakeServer, openai_images

    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (10, 120, 200)).save(buffer, format="JPEG")
    requests_seen = []
    answer = openai_images(buffer.getvalue())

    def handle(path, body, headers):
        requests_seen.append((path, body, headers.get("Authorization")))
        return answer(path, body, headers)

    with FakeServer(handle) as server:
        result = run_cli("journey", "A lighthouse in the storm", "--lang", "en", "--interception", "stille-post",
                         "--iterations", "2", "--output", "image:512x256", "--output", "image:64x64,offline",
                         "--seed", "3", "--out", str(tmp_path),
                         env={"ANTHROPIC_API_KEY": "", "STAGEFLOW_COMFYUI_URL": "",
                              "STAGEFLOW_IMAGES_URL": f"{server.url}/v1", "STAGEFLOW_IMAGES_API_KEY": "sk-test-images"})
    assert result.returncode == 0, result.stderr
    (path, body, auth) = requests_seen[0]
    assert len(requests_seen) == 1 and body["size"] == "512x256" and auth == "Bearer sk-test-images"
    api_image, offline_image = [Path(p) for p in result.value("wrote")]
    assert Image.open(api_image).format == "PNG" and Image.open(api_image).size == (64, 48)  # what was received
    assert Image.open(offline_image).size == (64, 64)
    (key,) = result.value("journey")
    made = [i for i in record_of(key)["items"] if i["kind"] == "output_image"]
    assert [m["backend"] for m in made] == ["openai-images", "offline"]
    assert made[0]["parameters"]["received_format"] == "jpg" and made[0]["parameters"]["size"] == "512x256"
    assert "sk-test-images" not in json.dumps(record_of(key))
