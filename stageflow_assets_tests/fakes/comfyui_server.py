"""A loopback fake of ComfyUI's HTTP API, for the real `ComfyUIResource` (providers/comfyui.py).

    def test_x(fake_comfyui):
        fake_comfyui.mode = "error"     # "ok" | "error" (the run fails) | "hang" (never finishes)
                                        # | "500" (every request) | "bad-png" (/view sends a cut-off PNG)
        fake_comfyui.fail_next = 2      # the next 2 requests answer HTTP 500, then normal service
        comfy = ComfyUIResource(url=fake_comfyui.url, ...)

`POST /prompt` validates the workflow roughly as ComfyUI does (known node classes, required
inputs, links to existing nodes, the checkpoint/sampler/scheduler lists) and answers 400 with
`error` and `node_errors` for a bad one, else a `prompt_id`. `GET /history/{id}` is `{}` until
`delay_s` has passed, then the finished entry (outputs or an `execution_error`). `GET /view`
serves the saved PNG, the size the workflow's EmptyLatentImage asked for. `POST /queue` with
`delete` drops prompts. Every request lands in `requests` as (method, path).
"""

from __future__ import annotations

import io
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from stageflow_assets_tests.fakes.loopback import LoopbackServer, Received, Reply

# class: (required inputs, output node?)
NODES = {
    "CheckpointLoaderSimple": (("ckpt_name",), False),
    "CLIPTextEncode": (("text", "clip"), False),
    "EmptyLatentImage": (("width", "height", "batch_size"), False),
    "KSampler": (("model", "seed", "steps", "cfg", "sampler_name", "scheduler", "positive", "negative",
                  "latent_image", "denoise"), False),
    "VAEDecode": (("samples", "vae"), False),
    "SaveImage": (("images", "filename_prefix"), True),
}
CHOICES = {
    "ckpt_name": ("sd_xl_base_1.0.safetensors", "v1-5-pruned-emaonly.safetensors"),
    "sampler_name": ("euler", "euler_ancestral", "dpmpp_2m", "dpmpp_2m_sde", "ddim"),
    "scheduler": ("normal", "karras", "exponential", "simple"),
}


def png_bytes(width: int, height: int, shade: int = 0) -> bytes:
    """A real RGB PNG of the given size (a gradient, so it is not trivially empty)."""
    from PIL import Image

    image = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    image = Image.merge("RGB", (image.getchannel(0), image.getchannel(1).point(lambda v: (v + shade) % 256),
                                image.getchannel(2).point(lambda v: 255 - v)))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


@dataclass
class FakeComfyUI:
    mode: str = "ok"
    delay_s: float = 0.1
    fail_next: int = 0
    requests: list[tuple[str, str]] = field(default_factory=list)
    prompts: dict[str, dict] = field(default_factory=dict)   # prompt_id → the POST body and state
    files: dict[tuple[str, str], bytes] = field(default_factory=dict)  # (subfolder, filename) → PNG
    deleted: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._counter = 0
        self._server = LoopbackServer(self._answer)

    @property
    def url(self) -> str:
        return self._server.url

    def start(self) -> "FakeComfyUI":
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def count(self, method: str, prefix: str) -> int:
        return sum(1 for m, p in self.requests if m == method and p.startswith(prefix))

    # ------------------------------------------------------------------ the API
    def _answer(self, request: Received) -> Reply:
        status, payload = self.route(request.method, request.target, request.body)
        if not isinstance(payload, bytes):
            return status, payload, {}
        return status, payload, {"content-type": "image/png" if payload.startswith(b"\x89PNG") else "text/plain"}

    def route(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        """(status, JSON body or PNG bytes) for one request."""
        with self._lock:
            self.requests.append((method, path))
            if self.mode == "500" or self.fail_next:
                self.fail_next = max(0, self.fail_next - 1)
                return 500, b"500 Internal Server Error"
        parts = urlsplit(path)
        if method == "POST" and parts.path == "/prompt":
            return self._queue_prompt(body)
        if method == "GET" and parts.path.startswith("/history/"):
            return 200, self._history(parts.path.rsplit("/", 1)[1])
        if method == "GET" and parts.path == "/view":
            query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
            data = self.files.get((query.get("subfolder", ""), query.get("filename", "")))
            if data is not None and self.mode == "bad-png":
                data = data[:60]  # the signature and a cut-off header
            return (200, data) if data is not None and query.get("type") == "output" else (404, b"404: Not Found")
        if method == "POST" and parts.path == "/queue":
            self.deleted += list((body or {}).get("delete", []))
            return 200, {}
        return 404, b"404: Not Found"

    def _queue_prompt(self, body: Any) -> tuple[int, Any]:
        workflow = body.get("prompt") if isinstance(body, dict) else None
        if not isinstance(workflow, dict):
            return 400, _error("invalid_prompt", "Cannot execute because the prompt is not a dict")
        for node_id, node in workflow.items():
            if not isinstance(node, dict) or node.get("class_type") not in NODES:
                return 400, _error("invalid_prompt", f"Cannot execute because node {node_id} does not exist")
        outputs = [i for i, node in workflow.items() if NODES[node["class_type"]][1]]
        if not outputs:
            return 400, _error("prompt_no_outputs", "Prompt has no outputs")
        node_errors = {}
        for node_id, node in workflow.items():
            errors = _check_node(node, workflow)
            if errors:
                node_errors[node_id] = {"errors": errors, "dependent_outputs": outputs, "class_type": node["class_type"]}
        if node_errors:
            return 400, {**_error("prompt_outputs_failed_validation", "Prompt outputs failed validation"),
                         "node_errors": node_errors}
        with self._lock:
            self._counter += 1
            prompt_id = str(uuid.uuid4())
            self.prompts[prompt_id] = {"body": body, "queued_at": time.monotonic(), "number": self._counter}
        return 200, {"prompt_id": prompt_id, "number": self._counter, "node_errors": {}}

    def _history(self, prompt_id: str) -> dict:
        entry = self.prompts.get(prompt_id)
        if entry is None or prompt_id in self.deleted or self.mode == "hang":
            return {}
        if time.monotonic() - entry["queued_at"] < self.delay_s:
            return {}
        workflow = entry["body"]["prompt"]
        if self.mode == "error":
            sampler = next(i for i, n in workflow.items() if n["class_type"] == "KSampler")
            messages = [["execution_start", {"prompt_id": prompt_id}],
                        ["execution_error", {"prompt_id": prompt_id, "node_id": sampler, "node_type": "KSampler",
                                             "exception_type": "torch.OutOfMemoryError",
                                             "exception_message": "Allocation on device failed"}]]
            return {prompt_id: {"prompt": [entry["number"], prompt_id, workflow, {}, []], "outputs": {},
                                "status": {"status_str": "error", "completed": False, "messages": messages}}}
        outputs = {}
        for node_id, node in workflow.items():
            if node["class_type"] == "SaveImage":
                outputs[node_id] = {"images": [self._save(entry, node, workflow)]}
        messages = [["execution_start", {"prompt_id": prompt_id}], ["execution_success", {"prompt_id": prompt_id}]]
        return {prompt_id: {"prompt": [entry["number"], prompt_id, workflow, {}, list(outputs)], "outputs": outputs,
                            "status": {"status_str": "success", "completed": True, "messages": messages}}}

    def _save(self, entry: dict, node: dict, workflow: dict) -> dict:
        """The image a SaveImage node wrote (made once per prompt), as history lists it."""
        if "image" not in entry:
            latent = next(n for n in workflow.values() if n["class_type"] == "EmptyLatentImage")["inputs"]
            subfolder, _, name = node["inputs"]["filename_prefix"].rpartition("/")
            filename = f"{name}_{entry['number']:05d}_.png"
            self.files[(subfolder, filename)] = png_bytes(int(latent["width"]), int(latent["height"]), entry["number"])
            entry["image"] = {"filename": filename, "subfolder": subfolder, "type": "output"}
        return entry["image"]


def _error(kind: str, message: str) -> dict:
    return {"error": {"type": kind, "message": message, "details": "", "extra_info": {}}, "node_errors": {}}


def _check_node(node: dict, workflow: dict) -> list[dict]:
    inputs = node.get("inputs") or {}
    errors = []
    for name in NODES[node["class_type"]][0]:
        value = inputs.get(name)
        if name not in inputs:
            errors.append({"type": "required_input_missing", "message": "Required input is missing",
                           "details": name, "extra_info": {"input_name": name}})
        elif isinstance(value, list) and (len(value) != 2 or str(value[0]) not in workflow):
            errors.append({"type": "bad_linked_input", "message": "Bad linked input, must be a length-2 list of "
                           "[node_id, slot_index]", "details": f"{name}, {value}", "extra_info": {"input_name": name}})
        elif name in CHOICES and value not in CHOICES[name]:
            errors.append({"type": "value_not_in_list", "message": "Value not in list",
                           "details": f"{name}: '{value}' not in {list(CHOICES[name])}",
                           "extra_info": {"input_name": name, "received_value": value}})
    return errors


@pytest.fixture
def fake_comfyui():
    """A started FakeComfyUI."""
    fake = FakeComfyUI().start()
    try:
        yield fake
    finally:
        fake.stop()
