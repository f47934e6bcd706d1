"""Credentials out of a record: secret-named parameters, passwords in URLs, bearer tokens.

Everything a record holds passes through here before it is exported, whoever built it.
"""

from __future__ import annotations

import re
from typing import Any

from stageflow_assets.core.redact import redact_url, scrub
from stageflow_assets.records.models import FileRef, Record, RecordItem

HIDDEN = "***"
# key names (lower case, separators dropped) whose string values are secrets
_SECRET_NAMES = {
    "password", "passwd", "pass", "secret", "token", "apikey", "xapikey", "accesskey", "secretkey", "privatekey",
    "clientsecret", "accesstoken", "refreshtoken", "authtoken", "bearertoken", "sessiontoken", "auth",
    "authorization", "credentials", "credential", "cookie",
}
_SECRET_SUFFIXES = ("password", "passwd", "secret", "token", "apikey")
_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://\S+$")
_BEARER = re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}", re.IGNORECASE)
_KEY_LIKE = re.compile(r"\b(sk|rk|pk)-[A-Za-z0-9_-]{16,}")


def secret_name(name: str) -> bool:
    parts = [p for p in re.split(r"[^a-z0-9]+", name.lower()) if p]
    compact = "".join(parts)
    return compact in _SECRET_NAMES or (bool(parts) and parts[-1] in _SECRET_SUFFIXES) \
        or parts[-2:] == ["api", "key"]


def redact_text(text: str) -> str:
    text = redact_url(text) if _URL.match(text) else scrub(text)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {HIDDEN}", text)
    return _KEY_LIKE.sub(lambda m: f"{m.group(1)}-{HIDDEN}", text)


def redact_value(value: Any, name: str | None = None) -> Any:
    """`value` with every secret hidden; dicts and lists walked, other scalars kept."""
    if isinstance(value, dict):
        return {str(k): redact_value(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_value(v, name) for v in value]
    if isinstance(value, str):
        if name is not None and secret_name(name) and value:
            return HIDDEN
        return redact_text(value)
    return value


def _file(ref: FileRef) -> FileRef:
    return ref.model_copy(update={"path": redact_text(ref.path)})


def _item(item: RecordItem) -> RecordItem:
    return item.model_copy(update={
        "content": redact_text(item.content) if item.content is not None else None,
        "parameters": redact_value(item.parameters),
        "metadata": redact_value(item.metadata),
        "files": [_file(f) for f in item.files],
        "model": redact_text(item.model) if item.model else item.model,
        "backend": redact_text(item.backend) if item.backend else item.backend,
    })


def redact_record(record: Record) -> Record:
    """A copy of `record` fit to leave the machine."""
    return record.model_copy(update={
        "title": redact_text(record.title),
        "parameters": redact_value(record.parameters),
        "items": [_item(i) for i in record.items],
    })
