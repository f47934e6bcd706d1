"""The image provider against a loopback OpenAI-compatible images API, and the deck assets with
images switched on (materialized on a test instance, checks included)."""

from __future__ import annotations

import json
import zipfile

import dagster as dg
import pytest

from stageflow_assets.core.errors import ProviderError
from stageflow_assets.core.io_manager import StageManifestIOManager
from stageflow_assets.core.stage_store import StageStore
from stageflow_assets.providers.images import ImageGenerator, OpenAIImages
from stageflow_assets.providers.lexicon import WordNetLexicon
from stageflow_assets.providers.media import MediaTools
from stageflow_assets.providers.translate import ApertiumTranslator
from stageflow_assets.providers.tts import EspeakTTS
from stageflow_assets.vocabulary.checks import VOCABULARY_CHECKS, VocabularyChecks
from stageflow_assets.vocabulary.definitions import defs as vocabulary_defs
from stageflow_assets.vocabulary.optional_inputs import MANIFEST_IF_ANY, ManifestIfAny
from stageflow_assets.vocabulary.partitions import word_list_partitions
from stageflow_assets.vocabulary.registry import register_word_list
from stageflow_assets_tests.vocabulary.fakes import FakeServer, openai_images, tiny_png

ERROR = {"error": {"message": "Your prompt was rejected", "type": "invalid_request_error", "code": None}}


def images(url: str, **kwargs) -> OpenAIImages:
    return OpenAIImages(base_url=url + "/v1", api_key="sk-test-secret", model="test-model", size="256x256",
                        backoff_s=0.01, **kwargs)


def test_generate_returns_the_image_and_sends_the_key_as_bearer():
    with FakeServer(openai_images(tiny_png())) as server:
        data, ext = images(server.url).generate("a cat")
    assert (data, ext) == (tiny_png(), "png")
    request = server.requests[0]
    assert request["headers"]["Authorization"] == "Bearer sk-test-secret"
    assert request["body"] == {"model": "test-model", "prompt": "a cat", "n": 1, "size": "256x256",
                               "response_format": "b64_json"}
    assert "sk-test" not in json.dumps(images(server.url).parameters())


def test_client_errors_are_final_and_server_errors_retried():
    with FakeServer(openai_images(tiny_png(), [(400, ERROR)])) as server:
        with pytest.raises(ProviderError, match="HTTP 400.*Your prompt was rejected"):
            images(server.url).generate("x")
        assert len(server.requests) == 1
    with FakeServer(openai_images(tiny_png(), [(500, ERROR), (429, ERROR)])) as server:
        assert images(server.url, max_retries=2).generate("x")[1] == "png"
        assert len(server.requests) == 3
    with FakeServer(openai_images(tiny_png(), [(200, {"data": [{"b64_json": "bm90IGFuIGltYWdl"}]})])) as server:
        with pytest.raises(ProviderError, match="not PNG, JPEG or WebP"):
            images(server.url).generate("x")


def test_images_are_off_by_default(monkeypatch):
    from stageflow_assets.core.resources import IMAGES_URL_ENV
    from stageflow_assets.vocabulary.resources import vocabulary_resources

    monkeypatch.delenv(IMAGES_URL_ENV, raising=False)
    chosen = vocabulary_resources()["images"]
    assert type(chosen) is ImageGenerator and chosen.enabled is False
    monkeypatch.setenv(IMAGES_URL_ENV, "http://127.0.0.1:9/v1")
    assert isinstance(vocabulary_resources()["images"], OpenAIImages)


def build(tmp_path, instance, text: str, image_api, language: str = "en", severity: str = "ERROR"):
    """Materialize the deck chain (checks included) for a fresh list on a test instance."""
    store = StageStore(home=str(tmp_path / "home"))
    tmp_path.mkdir(parents=True, exist_ok=True)
    words = tmp_path / "list.txt"
    words.write_text(text, encoding="utf-8")
    job = register_word_list(store.paths, words, f"Deck {language}", language=language).job
    instance.add_dynamic_partitions(word_list_partitions.name, [job])
    assets = [d for d in vocabulary_defs.assets if d.key.to_user_string() != "anki_sync"]
    return store, dg.materialize(
        [*assets, *VOCABULARY_CHECKS], partition_key=job, instance=instance, raise_on_error=False,
        selection=dg.AssetSelection.assets("word_list", "word_analysis", "pronunciation_audio", "card_images",
                                           "anki_deck"),
        resources={
            "storage": store, "io_manager": StageManifestIOManager(store=store),
            MANIFEST_IF_ANY: ManifestIfAny(store=store), "lexicon": WordNetLexicon(),
            "tts": EspeakTTS(), "translator": ApertiumTranslator(), "images": image_api,
            "media": MediaTools(), "vocab_checks": VocabularyChecks(ipa_severity=severity),
        },
    )


def test_invalid_ipa_blocks_the_deck_at_error_and_only_warns_at_warn(tmp_path):
    """espeak-ng's Mandarin voice emits tone digits: at ERROR the blocking check stops the deck."""
    with dg.instance_for_test() as instance:
        _, strict = build(tmp_path / "strict", instance, "你好\n", ImageGenerator(), language="cmn")
        _, lenient = build(tmp_path / "lenient", instance, "你好\n", ImageGenerator(), language="cmn", severity="WARN")
    failed = {e.check_name: (e.passed, e.severity) for e in strict.get_asset_check_evaluations()}
    assert failed["ipa_valid"] == (False, dg.AssetCheckSeverity.ERROR)
    assert not strict.success
    done = {e.step_key for e in strict.get_step_success_events()}
    assert "word_analysis" in done and "anki_deck" not in done
    warned = {e.check_name: (e.passed, e.severity) for e in lenient.get_asset_check_evaluations()}
    assert warned["ipa_valid"] == (False, dg.AssetCheckSeverity.WARN)
    assert lenient.success and lenient.output_for_node("anki_deck").details["notes"] == 1
    assert lenient.output_for_node("anki_deck").status == "success"


def test_deck_with_images_packages_them_and_passes_every_check(tmp_path):
    with dg.instance_for_test() as instance, FakeServer(openai_images(tiny_png())) as server:
        store, result = build(tmp_path, instance, "cat\ndog\n", images(server.url))
        assert result.success
        checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
        assert checks == {"analysis_schema_valid": True, "ipa_valid": True, "audio_files_decodable": True,
                          "image_files_decodable": True, "deck_media_complete": True}
        assert len(server.requests) == 2
    deck = result.output_for_node("anki_deck")
    assert deck.details["images"] == "on"
    with zipfile.ZipFile(store.paths.absolute(deck.output("apkg").path)) as zf:
        media = set(json.loads(zf.read("media")).values())
    assert sum(n.startswith("img_") and n.endswith(".png") for n in media) == 1  # same picture twice: one file
    assert sum(n.endswith(".mp3") for n in media) == 2
