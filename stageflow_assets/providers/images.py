"""Card images from an HTTP image API: off by default (cards then say they have none).

`ImageGenerator` is the interface; `OpenAIImages` speaks the OpenAI-compatible
`POST {base_url}/images/generations` (`response_format: b64_json`), which many local servers
also serve. The API key comes from an `EnvVar` and only ever goes into the request header.
A request that gets no answer after its retries (429/5xx/transport) counts against the `images`
circuit breaker (providers/breaker.py); a refusal (4xx) or a bad image does not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import base64
import binascii

import dagster as dg
from pydantic import Field

from stageflow_assets.core.errors import ProviderError
from stageflow_assets.providers.breaker import BreakerConfig, circuit, guarded

if TYPE_CHECKING:
    import requests  # imported where a request is made: ~40 ms of start-up otherwise

PROMPT_VERSION = "1"
_PNG, _JPEG, _WEBP = b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"RIFF"


class ImageGenerator(dg.ConfigurableResource):
    """The image interface. The base class is the default: no image backend at all."""

    enabled: bool = False

    def parameters(self) -> dict[str, object]:
        return {"enabled": False, "backend": "none"}

    def prompt_for(self, headword: str, meaning: str) -> str:
        return f"A simple, clear illustration of the word '{headword}'" + (f" ({meaning})" if meaning else "") + ". No text."

    def generate(self, prompt: str, size: str | None = None) -> tuple[bytes, str]:
        raise ProviderError("no image backend is configured")


def image_extension(data: bytes) -> str | None:
    if data.startswith(_PNG):
        return "png"
    if data.startswith(_JPEG):
        return "jpg"
    if data.startswith(_WEBP) and data[8:12] == b"WEBP":
        return "webp"
    return None


class OpenAIImages(ImageGenerator):
    """An OpenAI-compatible images endpoint, with timeouts and retries on 429/5xx/transport errors."""

    enabled: bool = True
    base_url: str = "https://api.openai.com/v1"
    api_key: str | None = None
    model: str = "gpt-image-1"
    size: str = "1024x1024"
    timeout_s: float = 120
    max_retries: int = 2
    backoff_s: float = 1.0
    breaker: BreakerConfig = Field(default_factory=BreakerConfig,
                                   description="circuit breaker (STAGEFLOW_BREAKER_*)")

    def parameters(self) -> dict[str, object]:
        return {"enabled": self.enabled, "backend": "openai-images", "base_url": self.base_url,
                "model": self.model, "size": self.size, "prompt_version": PROMPT_VERSION}

    def breaker_state(self) -> dict[str, object]:
        """The image API's circuit state, for step metadata."""
        return circuit("images", self.base_url, self.breaker).state()

    def generate(self, prompt: str, size: str | None = None) -> tuple[bytes, str]:
        """(image bytes, file extension) for `prompt`, at `size` (`WxH`) or the configured one."""
        body = {"model": self.model, "prompt": prompt, "n": 1, "size": size or self.size,
                "response_format": "b64_json"}
        with guarded("images", self.base_url, self.breaker):
            response = self._post(body)
        if response.status_code != 200:
            raise ProviderError(f"image API refused the request (HTTP {response.status_code}): "
                                f"{_message(response)}", status=response.status_code)
        return _decode(response)

    def _post(self, body: dict) -> "requests.Response":
        """The first answer that is neither a 429 nor a 5xx, urllib3 retrying those and transport
        failures; ProviderError when there is none after `max_retries`."""
        from stageflow_assets.providers.http import BUSY, post_retrying

        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        url = self.base_url.rstrip("/") + "/images/generations"
        response, last = post_retrying(url, self.max_retries, self.backoff_s, BUSY,
                                       lambda r: f"HTTP {r.status_code}: {_message(r)}", json=body, headers=headers,
                                       timeout=self.timeout_s)
        if response is not None:
            return response
        raise ProviderError(f"image API at {self.base_url} failed after {self.max_retries + 1} tries ({last})",
                            url=self.base_url)


def _message(response: requests.Response) -> str:
    try:
        error = response.json().get("error") or {}
        return str(error.get("message") if isinstance(error, dict) else error)[:200]
    except (ValueError, AttributeError):
        return response.text[:200]


def _decode(response: requests.Response) -> tuple[bytes, str]:
    try:
        item = response.json()["data"][0]
        data = base64.b64decode(item["b64_json"], validate=True)
    except (ValueError, KeyError, IndexError, TypeError, binascii.Error) as exc:
        raise ProviderError("image API answered without a base64 image (data[0].b64_json)") from exc
    ext = image_extension(data)
    if ext is None:
        raise ProviderError("image API returned bytes that are not PNG, JPEG or WebP")
    return data, ext
