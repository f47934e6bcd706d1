"""Claude through the anthropic SDK 2.x: structured JSON, numbered subtitle translation, batches."""

from __future__ import annotations

import contextlib
from importlib.metadata import version
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence, TypeVar

import dagster as dg
from pydantic import BaseModel, Field, PrivateAttr

from stageflow_assets.core.errors import ProviderError
from stageflow_assets.providers import llm_batches, llm_pricing, llm_prompts
from stageflow_assets.providers.breaker import BreakerConfig, circuit, guarded
from stageflow_assets.providers.llm_transport import api_errors, make_client
from stageflow_assets.providers.llm_types import BatchRequest, BatchResult, Usage, ids_to_rebatch

__all__ = ["BatchRequest", "BatchResult", "ClaudeResource", "Usage", "ids_to_rebatch"]

if TYPE_CHECKING:  # the SDK is imported on first use only: it costs ~2 s at start-up
    import anthropic

M = TypeVar("M", bound=BaseModel)
DEFAULT_BASE_URL = "https://api.anthropic.com"
log = dg.get_dagster_logger("stageflow_assets.llm")


class ClaudeResource(dg.ConfigurableResource):
    """Claude Messages + Message Batches. Wire `api_key=dg.EnvVar("ANTHROPIC_API_KEY")`."""

    api_key: str = Field(repr=False, description="Claude API key; never logged or recorded")
    base_url: str | None = Field(default=None, description="API root; only for a test server")
    model: str = "claude-sonnet-4-6"
    max_tokens: int = 4096
    timeout_s: float = 120.0
    connect_timeout_s: float = 10.0
    max_retries: int = Field(default=4, description="transport retries (429, 5xx, 529, timeouts)")
    max_fix_attempts: int = Field(default=2, description="re-asks after invalid JSON or cue mismatch")
    translate_chunk_lines: int = 100
    input_usd_per_mtok: float | None = Field(default=None, description="overrides the price table")
    output_usd_per_mtok: float | None = Field(default=None, description="overrides the price table")
    breaker: BreakerConfig = Field(default_factory=BreakerConfig,
                                   description="circuit breaker (STAGEFLOW_BREAKER_*)")
    _client: Any = PrivateAttr(default=None)

    # ------------------------------------------------------------------ plumbing
    def client(self) -> "anthropic.Anthropic":
        if self._client is None:
            self._client = make_client(self.api_key, self.base_url, self.timeout_s,
                                       self.connect_timeout_s, self.max_retries)
        return self._client

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _price(self) -> llm_pricing.Price | None:
        if self.input_usd_per_mtok is not None and self.output_usd_per_mtok is not None:
            return llm_pricing.Price(self.input_usd_per_mtok, self.output_usd_per_mtok)
        price = llm_pricing.price_for(self.model)
        if price is None:
            log.warning(f"no price for Claude model {self.model!r}: cost_usd is None "
                        "(set ClaudeResource.input_usd_per_mtok/output_usd_per_mtok)")
        return price

    @contextlib.contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """One API call (after the SDK's own retries) through the circuit breaker, its errors
        mapped to stage errors; the breaker counts the retryable ones (429, 5xx, 529, timeouts)."""
        with guarded("claude", self.base_url or DEFAULT_BASE_URL, self.breaker), \
                api_errors(what, model=self.model, max_retries=self.max_retries, timeout_s=self.timeout_s):
            yield

    def breaker_state(self) -> dict[str, Any]:
        """The Claude circuit's state, for step metadata."""
        return circuit("claude", self.base_url or DEFAULT_BASE_URL, self.breaker).state()

    def _create(self, **params: Any) -> Any:
        with self._errors("messages.create"):
            return self.client().messages.create(**params)

    def parameters(self) -> dict[str, Any]:
        """What changes Claude's output: part of stage fingerprints and manifests (no secrets)."""
        return {"backend": "claude", "model": self.model, "max_tokens": self.max_tokens,
                "prompt_version": llm_prompts.PROMPT_VERSION}

    def versions(self) -> dict[str, str]:
        return {"anthropic": version("anthropic")}

    # ------------------------------------------------------------------ messages
    def complete_json(self, system: str, prompt: str, schema: type[M]) -> tuple[M, Usage]:
        """One structured-output request validated by `schema`; an invalid reply is sent back with
        the validation error, at most `max_fix_attempts` times, then ProviderError."""
        messages: list[dict[str, Any]] = [{"role": "user", "content": prompt}]
        usage, price, problem = Usage(), self._price(), ""
        for attempt in range(self.max_fix_attempts + 1):
            message = self._create(**llm_batches.json_params(self.model, self.max_tokens, system,
                                                             messages, schema))
            usage = usage + Usage.from_sdk(message.usage, price)
            parsed, problem = llm_batches.validate_reply(message, schema)
            if parsed is not None:
                return parsed, usage  # type: ignore[return-value]
            log.warning(f"Claude reply rejected (attempt {attempt + 1}): {problem}")
            messages += [{"role": "assistant", "content": llm_batches.reply_text(message) or "(empty)"},
                         {"role": "user", "content": llm_prompts.JSON_RETRY.format(error=problem)}]
        raise ProviderError(
            f"Claude gave no valid {schema.__name__} after {self.max_fix_attempts + 1} attempts: {problem}",
            model=self.model, usage=usage.model_dump(),
        )

    def complete_text(self, system: str, prompt: str) -> tuple[str, Usage]:
        """One plain-text reply (no JSON, no re-asks). Sampling is the model's own: the API takes
        no temperature or top_p. ProviderError when the reply is cut off, refused or empty."""
        message = self._create(model=self.model, max_tokens=self.max_tokens, system=system,
                               messages=[{"role": "user", "content": prompt}])
        usage = Usage.from_sdk(message.usage, self._price())
        text = llm_batches.reply_text(message).strip()
        problem = {"max_tokens": f"was cut off at max_tokens={self.max_tokens} (raise ClaudeResource.max_tokens)",
                   "refusal": "was a refusal"}.get(message.stop_reason or "", "" if text else "was empty")
        if problem:
            raise ProviderError(f"Claude's reply {problem}", model=self.model, usage=usage.model_dump())
        return text, usage

    def translate_numbered(self, lines: list[str], source: str, target: str,
                           glossary: dict[str, str] | None = None) -> tuple[list[str], Usage]:
        """One translated line per input line, cue numbers checked (count, numbers, none empty);
        a mismatch is re-asked `max_fix_attempts` times, then ProviderError. Glossary terms forced."""
        system = llm_prompts.translate_system(source, target, glossary or {})
        keep = [i for i, line in enumerate(lines) if line.strip()]  # blank cues stay blank, unsent
        texts = [lines[i] for i in keep]
        out: list[str] = []
        usage = Usage()
        for start in range(0, len(texts), self.translate_chunk_lines):
            chunk = texts[start:start + self.translate_chunk_lines]
            translated, chunk_usage = self._translate_chunk(chunk, start + 1, source, target, system)
            out += translated
            usage = usage + chunk_usage
        result = [""] * len(lines)
        for i, text in zip(keep, out):
            result[i] = text
        return result, usage

    def _translate_chunk(self, chunk: list[str], first: int, source: str, target: str,
                         system: str) -> tuple[list[str], Usage]:
        count, last = len(chunk), first + len(chunk) - 1
        user = llm_prompts.TRANSLATE_USER.format(count=count, source=source, target=target,
                                                 cues=llm_prompts.numbered(chunk, first))
        messages: list[dict[str, Any]] = [{"role": "user", "content": user}]
        usage, price, problems = Usage(), self._price(), []
        for attempt in range(self.max_fix_attempts + 1):
            message = self._create(model=self.model, max_tokens=self.max_tokens, system=system,
                                   messages=messages)
            usage = usage + Usage.from_sdk(message.usage, price)
            text = llm_batches.reply_text(message)
            if message.stop_reason == "max_tokens":
                problems = ["the reply was cut off at max_tokens"]
            else:
                translated, problems = llm_prompts.parse_numbered(text, first, count)
                if translated is not None:
                    return translated, usage
            log.warning(f"Claude translation of cues {first}-{last} rejected "
                        f"(attempt {attempt + 1}): {'; '.join(problems)}")
            messages += [{"role": "assistant", "content": text or "(empty)"},
                         {"role": "user", "content": llm_prompts.TRANSLATE_RETRY.format(
                             problems="; ".join(problems), count=count, first=first, last=last)}]
        raise ProviderError(
            f"Claude translation {source}→{target} of cues {first}-{last} failed the cue-parity check "
            f"after {self.max_fix_attempts + 1} attempts: {'; '.join(problems)}",
            model=self.model, usage=usage.model_dump(),
        )

    # ------------------------------------------------------------------ batches
    def prepare_batch(self, requests: Sequence[BatchRequest | tuple]) -> list[dict[str, Any]]:
        """Batch request bodies (`custom_id` + `params`), in the caller's order; ids checked."""
        items = [BatchRequest(*r) for r in requests]
        llm_batches.check_custom_ids(items)
        return [
            {"custom_id": r.custom_id,
             "params": llm_batches.json_params(self.model, self.max_tokens, r.system,
                                               [{"role": "user", "content": r.prompt}], r.schema)}
            for r in items
        ]

    def submit_batch(self, requests: Sequence[BatchRequest | tuple]) -> str:
        """Create a Message Batch; returns its id (persist it with the custom_id → row map)."""
        body = self.prepare_batch(requests)
        with self._errors("messages.batches.create"):
            batch = self.client().messages.batches.create(requests=body)
        log.info(f"submitted Claude batch {batch.id} ({len(body)} requests)")
        return batch.id

    def batch_status(self, batch_id: str) -> tuple[str, dict[str, int]]:
        """(processing_status: in_progress|canceling|ended, request_counts)."""
        with self._errors(f"batch {batch_id}"):
            batch = self.client().messages.batches.retrieve(batch_id)
        return batch.processing_status, batch.request_counts.model_dump()

    def batch_results(self, batch_id: str,
                      schema: type[BaseModel] | Mapping[str, type[BaseModel]]) -> dict[str, BatchResult]:
        """Results of an ended batch by custom_id, validated with `schema` (one, or one per id).
        Pick items to send again with `ids_to_rebatch(results)`."""
        price = self._price()
        status, _ = self.batch_status(batch_id)
        if status != "ended":  # not a service failure: outside the breaker
            raise ProviderError(f"Claude batch {batch_id} is {status}, not ended: poll again later",
                                batch_id=batch_id)
        with self._errors(f"batch {batch_id} results"):
            items = list(self.client().messages.batches.results(batch_id))
        return {
            item.custom_id: llm_batches.batch_result(item, llm_batches.schema_for(schema, item.custom_id), price)
            for item in items
        }
