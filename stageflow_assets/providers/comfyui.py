"""Images from a ComfyUI server over its HTTP API: the production backend of journey stage 4.

One generation: `POST /prompt` with a text-to-image workflow in ComfyUI's API format (built
here: checkpoint → two text encodings → empty latent → sampler → VAE decode → save), poll
`GET /history/{prompt_id}` until the outputs appear, fetch the PNG with `GET /view`.

Errors are one line naming the (redacted) URL. A refused connection, 5xx answers after the
retries, a run that does not finish within `timeout_s` and a run ComfyUI reports as failed count
against the `comfyui` circuit breaker (providers/breaker.py); ComfyUI refusing the workflow
(HTTP 400 with `node_errors`, e.g. an unknown checkpoint) does not: the service answered.
"""

from __future__ import annotations

import hashlib
import io
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg
from pydantic import Field

from stageflow_assets.core.errors import BadInputError, ProviderError
from stageflow_assets.core.paths import atomic_path
from stageflow_assets.core.redact import redact_url
from stageflow_assets.providers.breaker import BreakerConfig, circuit, guarded
from stageflow_assets.providers.images import image_extension

if TYPE_CHECKING:
    import requests  # imported where a request is made: ~40 ms of start-up otherwise

    from stageflow_assets.journey.offline_media import GeneratedMedia, OutputConfig

PROVIDER = "comfyui"
SEED_RANGE = 2**64  # KSampler's seed is an unsigned 64-bit number
SAVE_NODE = "7"


class ComfyUIRejectedError(ProviderError):
    """ComfyUI answered and refused the workflow: sending it again cannot help."""

    retryable = False


def text_to_image_workflow(*, prompt: str, negative: str, seed: int, width: int, height: int, steps: int,
                           cfg: float, sampler: str, scheduler: str, checkpoint: str, prefix: str) -> dict:
    """A minimal text-to-image graph in ComfyUI's API format (node id → class and inputs;
    an input `[node_id, n]` is that node's n-th output)."""
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": checkpoint}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": prompt, "clip": ["1", 1]}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": negative, "clip": ["1", 1]}},
        "4": {"class_type": "EmptyLatentImage", "inputs": {"width": width, "height": height, "batch_size": 1}},
        "5": {"class_type": "KSampler", "inputs": {
            "model": ["1", 0], "positive": ["2", 0], "negative": ["3", 0], "latent_image": ["4", 0],
            "seed": seed, "steps": steps, "cfg": cfg, "sampler_name": sampler, "scheduler": scheduler,
            "denoise": 1.0}},
        "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["1", 2]}},
        SAVE_NODE: {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": prefix}},
    }


class ComfyUIResource(dg.ConfigurableResource):
    """A ComfyUI server making stage-4 images (text to image with one checkpoint)."""

    url: str = Field(default="", description="ComfyUI's base URL, e.g. http://127.0.0.1:8188 (STAGEFLOW_COMFYUI_URL)")
    checkpoint: str = Field(default="sd_xl_base_1.0.safetensors", description="ckpt_name of CheckpointLoaderSimple")
    steps: int = Field(default=25, ge=1)
    cfg: float = Field(default=5.5, gt=0)
    sampler: str = "euler"
    scheduler: str = "normal"
    negative_prompt: str = "text, watermark, blurry, low quality"
    timeout_s: float = Field(default=300, gt=0, description="longest wait for one image, queue included")
    poll_interval_s: float = Field(default=0.5, gt=0)
    request_timeout_s: float = Field(default=30, gt=0, description="longest wait for one HTTP answer")
    max_retries: int = Field(default=2, ge=0, description="retries of refused connections and 5xx answers")
    backoff_s: float = 1.0
    breaker: BreakerConfig = Field(default_factory=BreakerConfig,
                                   description="circuit breaker (STAGEFLOW_BREAKER_*)")

    def parameters(self) -> dict[str, Any]:
        """The settings every image shares, for metadata (URL redacted)."""
        return {"backend": PROVIDER, "url": redact_url(self.url), "checkpoint": self.checkpoint,
                "steps": self.steps, "cfg": self.cfg, "sampler": self.sampler, "scheduler": self.scheduler,
                "negative_prompt": self.negative_prompt}

    def breaker_state(self) -> dict[str, object]:
        return circuit(PROVIDER, self.url, self.breaker).state()

    def generate(self, config: "OutputConfig", prompt: str, seed: int, dst_dir: Path, stem: str) -> "GeneratedMedia":
        """Make `config` (an image) with ComfyUI and save it as `dst_dir/stem.png`."""
        from stageflow_assets.journey.offline_media import GeneratedMedia

        if config.kind != "image":
            raise BadInputError(f"{config.label()}: ComfyUI makes images only here; use the offline backend")
        if not self.url.strip():
            raise BadInputError("no ComfyUI URL: set STAGEFLOW_COMFYUI_URL (e.g. http://127.0.0.1:8188) "
                                "or use the offline backend")
        if not stem or Path(stem).name != stem:
            raise ValueError(f"not a plain file stem: {stem!r}")
        width, height = config.size
        sent_seed = seed % SEED_RANGE
        workflow = text_to_image_workflow(
            prompt=prompt, negative=self.negative_prompt, seed=sent_seed, width=width, height=height,
            steps=self.steps, cfg=self.cfg, sampler=self.sampler, scheduler=self.scheduler,
            checkpoint=self.checkpoint, prefix=f"stageflow/{stem}")
        started = time.perf_counter()
        with guarded(PROVIDER, self.url, self.breaker):
            prompt_id = self._submit(workflow)
            image = self._wait(prompt_id)
            data, made = self._download(image)
        dst = Path(dst_dir) / f"{stem}.png"
        with atomic_path(dst) as tmp:
            tmp.write_bytes(data)
        parameters = {**config.as_dict(), **self.parameters(), "prompt": prompt, "seed": sent_seed, "width": width,
                      "height": height, "image_size": made, "prompt_id": prompt_id,
                      "file": {k: image.get(k, "") for k in ("filename", "subfolder", "type")},
                      "workflow": workflow}
        return GeneratedMedia(path=dst, media_type="image/png", parameters=parameters, backend=PROVIDER,
                              model=self.checkpoint, duration_s=round(time.perf_counter() - started, 4),
                              sha256=hashlib.sha256(data).hexdigest())

    # ------------------------------------------------------------------ the three calls
    def _submit(self, workflow: dict) -> str:
        response = self._request("POST", "/prompt", json={"prompt": workflow, "client_id": uuid.uuid4().hex})
        body = _json(response)
        if 400 <= response.status_code < 500:
            raise ComfyUIRejectedError(
                f"ComfyUI at {self._where} rejected the workflow (HTTP {response.status_code}): {_rejection(body, response)}",
                status=response.status_code, url=self._where, node_errors=body.get("node_errors"))
        prompt_id = body.get("prompt_id") if response.status_code == 200 else None
        if not prompt_id:
            raise ProviderError(f"ComfyUI at {self._where} answered POST /prompt without a prompt_id "
                                f"(HTTP {response.status_code}); is that URL a ComfyUI server?", url=self._where)
        return str(prompt_id)

    def _wait(self, prompt_id: str) -> dict:
        """The first saved image of `prompt_id`, polling its history until `timeout_s`."""
        deadline = time.monotonic() + self.timeout_s
        while True:
            response = self._request("GET", f"/history/{prompt_id}")
            if response.status_code != 200:
                raise ProviderError(f"ComfyUI at {self._where} answered HTTP {response.status_code} "
                                    f"on GET /history/{prompt_id}", url=self._where)
            entry = _json(response).get(prompt_id) or {}
            status = entry.get("status") or {}
            if status.get("status_str") == "error":
                raise ProviderError(f"ComfyUI at {self._where} failed prompt {prompt_id}: {_execution_error(status)}",
                                    url=self._where, prompt_id=prompt_id, messages=status.get("messages"))
            images = [image for output in (entry.get("outputs") or {}).values()
                      for image in output.get("images", []) if image.get("type", "output") == "output"]
            if images:
                return images[0]
            if status.get("completed"):
                raise ProviderError(f"ComfyUI at {self._where} finished prompt {prompt_id} without saving an image",
                                    url=self._where, prompt_id=prompt_id)
            left = deadline - time.monotonic()
            if left <= 0:
                self._forget(prompt_id)
                raise ProviderError(
                    f"ComfyUI at {self._where} had no image for prompt {prompt_id} after {self.timeout_s:g}s: "
                    "check its queue and log, or raise timeout_s", url=self._where, prompt_id=prompt_id)
            time.sleep(min(self.poll_interval_s, left))

    def _download(self, image: dict) -> tuple[bytes, list[int]]:
        """The PNG and its [width, height]."""
        from PIL import Image

        params = {"filename": image.get("filename", ""), "subfolder": image.get("subfolder", ""),
                  "type": image.get("type", "output")}
        response = self._request("GET", "/view", params=params)
        try:
            if response.status_code != 200 or image_extension(response.content) != "png":
                raise ValueError("not a PNG")
            with Image.open(io.BytesIO(response.content)) as image:
                image.verify()
                return response.content, list(image.size)
        except (OSError, ValueError, SyntaxError):  # what Pillow raises for a broken image
            raise ProviderError(f"ComfyUI at {self._where} did not send {params['filename']} as a readable PNG "
                                f"(HTTP {response.status_code} on GET /view)", url=self._where) from None

    def _forget(self, prompt_id: str) -> None:
        """Take an abandoned prompt out of ComfyUI's queue (best effort: it may be running)."""
        import requests

        try:
            requests.post(self._endpoint("/queue"), json={"delete": [prompt_id]}, timeout=self.request_timeout_s)
        except requests.RequestException:
            pass

    # ------------------------------------------------------------------ transport
    @property
    def _where(self) -> str:
        return redact_url(self.url.rstrip("/"))

    def _endpoint(self, path: str) -> str:
        return self.url.rstrip("/") + path

    def _request(self, method: str, path: str, **kwargs: Any) -> "requests.Response":
        """The first answer that is not a 5xx, urllib3 retrying those and refused connections
        (and, for GETs, timeouts); ProviderError when there is none after `max_retries`. A POST
        that timed out is not sent again: ComfyUI may have queued it."""
        import requests

        from stageflow_assets.providers.http import SERVER_ERRORS, failure_name, retries_spent, retrying_session

        tries = f"{self.max_retries + 1} {'try' if self.max_retries == 0 else 'tries'}"
        try:
            with retrying_session(self.max_retries, self.backoff_s, SERVER_ERRORS,
                                  resend_after_read_error=method == "GET") as session:
                response = session.request(method, self._endpoint(path), timeout=self.request_timeout_s, **kwargs)
        except (requests.ConnectionError, requests.Timeout) as exc:
            name = failure_name(exc)
            if name == "ReadTimeout":
                last = f"no answer within {self.request_timeout_s:g}s"
            else:  # ConnectTimeout too: nothing was sent, so even a POST was retried
                last = "connection refused" if "refused" in str(exc).lower() else f"cannot connect ({name})"
            if not retries_spent(exc):  # a POST that may have been queued; refused connects before it are not told
                tries = "sending it once"
        else:
            if response.status_code not in SERVER_ERRORS:
                return response
            last = f"HTTP {response.status_code}: {response.text.strip()[:120] or response.reason}"
        hint = ("start ComfyUI or point STAGEFLOW_COMFYUI_URL at it" if "connect" in last or "refused" in last
                else "see ComfyUI's log")
        raise ProviderError(f"ComfyUI at {self._where} failed on {method} {path} after {tries} ({last}): {hint}",
                            url=self._where)


def _json(response: "requests.Response") -> dict:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _rejection(body: dict, response: "requests.Response") -> str:
    """ComfyUI's validation error as one line: the first failing nodes, then the summary."""
    parts = []
    for node_id, node in list((body.get("node_errors") or {}).items())[:2]:
        for error in (node.get("errors") or [])[:1]:
            detail = f": {error['details']}" if error.get("details") else ""
            parts.append(f"{node.get('class_type', 'node')} (node {node_id}): {error.get('message', 'invalid')}{detail}")
    error = body.get("error")
    if not parts:
        message = error.get("message") if isinstance(error, dict) else error
        parts.append(str(message or response.text.strip() or response.reason))
    return _one_line("; ".join(parts))


def _execution_error(status: dict) -> str:
    for event, data in status.get("messages") or []:
        if event == "execution_error" and isinstance(data, dict):
            where = f"{data.get('node_type', 'node')} (node {data.get('node_id', '?')})"
            return _one_line(f"{where}: {data.get('exception_type', 'error')}: {data.get('exception_message', '')}")
    return "it reported an error without details"


def _one_line(text: str, limit: int = 300) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[:limit - 1] + "…"
