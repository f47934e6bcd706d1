"""Request bodies for structured (JSON-schema) output, reply validation, and Message Batch results.

Shared by `ClaudeResource.complete_json` and the batch methods, so one item asks Claude the same
thing whether it goes through Messages or Message Batches.
"""

from __future__ import annotations

import functools
import re
from typing import Any, Iterable, Mapping

from pydantic import BaseModel, ValidationError

from stageflow_assets.core.errors import BadInputError
from stageflow_assets.providers import llm_pricing
from stageflow_assets.providers.llm_types import BatchRequest, BatchResult, Usage

# the Message Batches API's rule for custom_id
CUSTOM_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@functools.lru_cache(maxsize=64)
def output_config(schema: type[BaseModel]) -> dict[str, Any]:
    """Structured output (`output_config.format`, GA): the SDK's own strict-schema transform."""
    import anthropic  # lazily: importing the SDK costs seconds

    return {"format": {"type": "json_schema", "schema": anthropic.transform_schema(schema)}}


def json_params(model: str, max_tokens: int, system: str, messages: list[dict[str, Any]],
                schema: type[BaseModel]) -> dict[str, Any]:
    return {
        "model": model,
        "max_tokens": max_tokens,
        "system": system,
        "messages": messages,
        "output_config": output_config(schema),
    }


def reply_text(message: Any) -> str:
    return "".join(block.text for block in message.content if getattr(block, "type", None) == "text")


def validate_reply(message: Any, schema: type[BaseModel]) -> tuple[BaseModel | None, str | None]:
    """(parsed, None) or (None, why it is unusable) for one Message."""
    if message.stop_reason == "max_tokens":
        return None, "the reply was cut off at max_tokens (raise ClaudeResource.max_tokens)"
    if message.stop_reason == "refusal":
        return None, "Claude refused to answer"
    try:
        return schema.model_validate_json(reply_text(message)), None
    except ValidationError as exc:
        errors = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or '<root>'}: {e['msg']}" for e in exc.errors()[:5]
        )
        return None, f"invalid JSON for {schema.__name__}: {errors}"


def check_custom_ids(requests: Iterable[BatchRequest]) -> None:
    seen: set[str] = set()
    for request in requests:
        if not CUSTOM_ID.match(request.custom_id):
            raise BadInputError(
                f"batch custom_id {request.custom_id!r} is invalid: use 1-64 characters of "
                "A-Z a-z 0-9 _ -", custom_id=request.custom_id,
            )
        if request.custom_id in seen:
            raise BadInputError(f"batch custom_id {request.custom_id!r} is repeated",
                                custom_id=request.custom_id)
        seen.add(request.custom_id)


def batch_result(item: Any, schema: type[BaseModel], price: llm_pricing.Price | None) -> BatchResult:
    """One `MessageBatchIndividualResponse` line → BatchResult (usage at the batch rate)."""
    result, custom_id = item.result, item.custom_id
    if result.type == "succeeded":
        usage = Usage.from_sdk(result.message.usage, price, batch=True)
        parsed, problem = validate_reply(result.message, schema)
        if problem is not None:
            return BatchResult(custom_id=custom_id, status="errored", usage=usage,
                               error_type="invalid_output", error_message=problem)
        return BatchResult(custom_id=custom_id, status="succeeded", parsed=parsed, usage=usage)
    if result.type == "errored":
        error = result.error.error
        return BatchResult(custom_id=custom_id, status="errored", error_type=error.type,
                           error_message=error.message)
    return BatchResult(custom_id=custom_id, status=result.type)


def schema_for(schema: type[BaseModel] | Mapping[str, type[BaseModel]], custom_id: str) -> type[BaseModel]:
    if isinstance(schema, Mapping):
        if custom_id not in schema:
            raise BadInputError(f"batch result {custom_id!r} has no schema: pass one for every custom_id")
        return schema[custom_id]
    return schema
