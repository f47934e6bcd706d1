"""The ComfyUI image backend against a loopback fake of ComfyUI's HTTP API: a finished run
saved as PNG with its parameters, the workflow refused (node_errors), a failed run, a run that
never finishes, refused connections and 5xx answers opening the circuit breaker."""

from __future__ import annotations

import json
import socket

import dagster as dg
import pytest
from PIL import Image

from stageflow_assets.core.errors import BadInputError, CircuitOpenError, ProviderError
from stageflow_assets.journey.offline_media import OutputConfig
from stageflow_assets.providers.breaker import BreakerConfig, forget_circuits
from stageflow_assets.providers.comfyui import ComfyUIRejectedError, ComfyUIResource
from stageflow_assets_tests.fakes.comfyui_server import fake_comfyui  # noqa: F401

PROMPT = "a red fox in fresh snow"
IMAGE = OutputConfig.parse("image:640x384,comfyui")


@pytest.fixture(autouse=True)
def _fresh_circuits():
    forget_circuits()
    yield
    forget_circuits()


def comfy(url: str, **settings) -> ComfyUIResource:
    settings.setdefault("poll_interval_s", 0.02)
    settings.setdefault("backoff_s", 0.01)
    return ComfyUIResource(url=url, **settings)


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text
    return text


def test_an_image_from_comfyui_is_saved_with_its_parameters(fake_comfyui, tmp_path):
    secret_url = fake_comfyui.url.replace("http://", "http://user:s3cret@")
    made = comfy(secret_url, steps=12, cfg=6.5, sampler="dpmpp_2m", scheduler="karras").generate(
        IMAGE, PROMPT, 2**64 + 5, tmp_path, "fox")
    assert made.path == tmp_path / "fox.png"
    with Image.open(made.path) as image:
        assert image.format == "PNG" and image.size == (640, 384)
    assert (made.backend, made.model, made.media_type) == ("comfyui", "sd_xl_base_1.0.safetensors", "image/png")
    params = made.parameters
    assert {k: params[k] for k in ("seed", "steps", "cfg", "sampler", "scheduler", "width", "height")} == {
        "seed": 5, "steps": 12, "cfg": 6.5, "sampler": "dpmpp_2m", "scheduler": "karras", "width": 640, "height": 384}
    assert params["checkpoint"] == "sd_xl_base_1.0.safetensors" and params["prompt"] == PROMPT
    assert params["image_size"] == [640, 384]
    assert json.loads(json.dumps(params)) == params
    assert "s3cret" not in repr(params) and params["url"].startswith("http://user:***@127.0.0.1:")

    # what ComfyUI received: one workflow carrying those values, and a client id
    (queued,) = fake_comfyui.prompts.values()
    assert queued["body"]["client_id"]
    sampler = next(n for n in queued["body"]["prompt"].values() if n["class_type"] == "KSampler")["inputs"]
    assert (sampler["seed"], sampler["steps"], sampler["cfg"], sampler["sampler_name"]) == (5, 12, 6.5, "dpmpp_2m")
    assert params["workflow"] == queued["body"]["prompt"]
    assert fake_comfyui.count("GET", "/history/") >= 2  # it polled while the run was in progress
    assert fake_comfyui.count("GET", "/view") == 1


def test_a_workflow_comfyui_refuses_is_one_line_naming_the_node(fake_comfyui, tmp_path):
    resource = comfy(fake_comfyui.url, checkpoint="missing.safetensors",
                     breaker=BreakerConfig(fail_max=1, reset_s=60))
    with pytest.raises(ComfyUIRejectedError) as caught:
        resource.generate(IMAGE, PROMPT, 1, tmp_path, "fox")
    text = one_line(caught.value)
    assert text.startswith(f"ComfyUI at {fake_comfyui.url} rejected the workflow (HTTP 400): ")
    assert "CheckpointLoaderSimple (node 1): Value not in list: ckpt_name: 'missing.safetensors'" in text
    assert isinstance(caught.value, ProviderError) and not caught.value.retryable
    assert "1" in caught.value.details["node_errors"]
    # the service answered: the circuit stays closed, and the next call goes out
    assert resource.breaker_state()["state"] == "closed"
    with pytest.raises(ComfyUIRejectedError, match="KSampler \\(node 5\\): Value not in list: sampler_name"):
        comfy(fake_comfyui.url, sampler="warp-drive").generate(IMAGE, PROMPT, 1, tmp_path, "fox")
    assert not list(tmp_path.iterdir())


def test_a_run_comfyui_reports_as_failed(fake_comfyui, tmp_path):
    fake_comfyui.mode = "error"
    with pytest.raises(ProviderError) as caught:
        comfy(fake_comfyui.url).generate(IMAGE, PROMPT, 1, tmp_path, "fox")
    text = one_line(caught.value)
    assert f"ComfyUI at {fake_comfyui.url} failed prompt " in text
    assert text.endswith("KSampler (node 5): torch.OutOfMemoryError: Allocation on device failed")
    assert caught.value.retryable


def test_a_broken_png_is_an_error_and_saves_nothing(fake_comfyui, tmp_path):
    fake_comfyui.mode = "bad-png"
    with pytest.raises(ProviderError, match=r"did not send stageflow_00001_\.png as a readable PNG \(HTTP 200 on GET /view\)"):
        comfy(fake_comfyui.url).generate(IMAGE, PROMPT, 1, tmp_path, "stageflow")
    assert list(tmp_path.iterdir()) == []


def test_a_run_that_never_finishes_times_out_and_is_dropped_from_the_queue(fake_comfyui, tmp_path):
    fake_comfyui.mode = "hang"
    with pytest.raises(ProviderError) as caught:
        comfy(fake_comfyui.url, timeout_s=0.3).generate(IMAGE, PROMPT, 1, tmp_path, "fox")
    text = one_line(caught.value)
    assert "had no image for prompt" in text and "after 0.3s" in text and "raise timeout_s" in text
    assert fake_comfyui.deleted == list(fake_comfyui.prompts)
    assert fake_comfyui.count("GET", "/history/") >= 3


def test_5xx_answers_are_retried_then_open_the_circuit(fake_comfyui, tmp_path):
    fake_comfyui.fail_next = 2  # retries get past two 500s
    comfy(fake_comfyui.url, max_retries=2).generate(IMAGE, PROMPT, 1, tmp_path, "ok")

    fake_comfyui.mode = "500"
    resource = comfy(fake_comfyui.url, max_retries=1, breaker=BreakerConfig(fail_max=2, reset_s=60))
    for _ in range(2):
        with pytest.raises(ProviderError) as caught:
            resource.generate(IMAGE, PROMPT, 1, tmp_path, "fox")
        assert one_line(caught.value) == (f"ComfyUI at {fake_comfyui.url} failed on POST /prompt after 2 tries "
                                          "(HTTP 500: 500 Internal Server Error): see ComfyUI's log")
    sent = len(fake_comfyui.requests)
    with pytest.raises(CircuitOpenError, match="^comfyui: circuit open after 2 consecutive failures, until "):
        resource.generate(IMAGE, PROMPT, 1, tmp_path, "fox")
    assert len(fake_comfyui.requests) == sent  # nothing was sent
    assert resource.breaker_state()["state"] == "open"


def test_a_refused_connection_names_the_url_and_opens_the_circuit(tmp_path):
    url = closed_port_url()
    resource = comfy(url, max_retries=0, breaker=BreakerConfig(fail_max=1, reset_s=60))
    with pytest.raises(ProviderError) as caught:
        resource.generate(IMAGE, PROMPT, 1, tmp_path, "fox")
    assert one_line(caught.value) == (f"ComfyUI at {url} failed on POST /prompt after 1 try (connection refused): "
                                      "start ComfyUI or point STAGEFLOW_COMFYUI_URL at it")
    with pytest.raises(CircuitOpenError):
        resource.generate(IMAGE, PROMPT, 1, tmp_path, "fox")


def test_what_comfyui_is_not_asked_to_do(tmp_path):
    with pytest.raises(BadInputError, match="^no ComfyUI URL: set STAGEFLOW_COMFYUI_URL"):
        ComfyUIResource().generate(IMAGE, PROMPT, 1, tmp_path, "fox")
    with pytest.raises(BadInputError, match="^music 8 s wav: ComfyUI makes images only"):
        ComfyUIResource(url="http://127.0.0.1:1").generate(OutputConfig.parse("music"), PROMPT, 1, tmp_path, "x")


def test_comfyui_as_a_dagster_resource(fake_comfyui, tmp_path):
    @dg.asset
    def picture(comfyui: ComfyUIResource) -> dg.MaterializeResult:
        made = comfyui.generate(OutputConfig.parse("image:256x256,comfyui"), PROMPT, 42, tmp_path, "picture")
        return dg.MaterializeResult(metadata={"path": str(made.path), "seed": made.parameters["seed"]})

    result = dg.materialize([picture], resources={"comfyui": comfy(fake_comfyui.url, steps=4)})
    assert result.success
    with Image.open(tmp_path / "picture.png") as image:
        assert image.size == (256, 256)
