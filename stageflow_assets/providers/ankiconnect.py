"""A running Anki through AnkiConnect (`POST {"action", "version": 6, "params"}` → `{"result", "error"}`).

AnkiConnect answers errors with HTTP 200 and a non-null `error`, so the status code alone says
nothing: an `error` is final (Anki refused), while connection failures, timeouts and 5xx are
retried with backoff; a call that still got no answer counts against the `ankiconnect` circuit
breaker (providers/breaker.py). The optional API key travels in the body and is never logged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import base64
import random
import time
from pathlib import Path

import dagster as dg
from pydantic import BaseModel, Field

from stageflow_assets.core.errors import ProviderError
from stageflow_assets.providers.anki import NoteSpec, NoteType
from stageflow_assets.providers.breaker import BreakerConfig, circuit, guarded

if TYPE_CHECKING:
    import requests  # imported where a request is made: ~40 ms of start-up otherwise

API_VERSION = 6


class AnkiConnectError(ProviderError):
    """Anki answered and refused: retrying the same request cannot help."""

    retryable = False


class SyncReport(BaseModel):
    target: str
    note_type_created: bool
    media_stored: int
    media_already_there: int
    added: int
    updated: int
    unchanged: int
    failed: list[dict[str, str]] = Field(default_factory=list)


class AnkiConnect(dg.ConfigurableResource):
    """AnkiConnect client with timeouts and transport retries; upserts notes by a key field."""

    url: str = "http://127.0.0.1:8765"
    api_key: str | None = None
    timeout_s: float = 10
    max_retries: int = 3
    backoff_s: float = 0.5
    breaker: BreakerConfig = Field(default_factory=BreakerConfig,
                                   description="circuit breaker (STAGEFLOW_BREAKER_*)")

    def with_url(self, url: str) -> "AnkiConnect":
        """The same client settings against another AnkiConnect (a per-run override)."""
        return AnkiConnect(url=url, api_key=self.api_key, timeout_s=self.timeout_s,
                           max_retries=self.max_retries, backoff_s=self.backoff_s, breaker=self.breaker)

    def breaker_state(self) -> dict:
        """This AnkiConnect's circuit state, for step metadata."""
        return circuit("ankiconnect", self.url, self.breaker).state()

    def invoke(self, action: str, **params):
        body = {"action": action, "version": API_VERSION, "params": params}
        if self.api_key:
            body["key"] = self.api_key
        # only "did Anki answer" goes through the breaker: a refusal in the answer is Anki working
        with guarded("ankiconnect", self.url, self.breaker):
            response = self._post(action, body)
        return self._result(action, response)

    def _post(self, action: str, body: dict) -> "requests.Response":
        """The first answer that is not a 5xx, retrying transport failures; ProviderError when
        there is none after `max_retries`."""
        import requests

        last = "no attempt"
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1) * random.uniform(0.5, 1.5))
            try:
                response = requests.post(self.url, json=body, timeout=self.timeout_s)
            except (requests.ConnectionError, requests.Timeout) as exc:
                last = type(exc).__name__
                continue
            if response.status_code >= 500:
                last = f"HTTP {response.status_code}"
                continue
            return response
        raise ProviderError(f"AnkiConnect at {self.url} did not answer {action} after "
                            f"{self.max_retries + 1} tries ({last}): is Anki running with AnkiConnect?",
                            url=self.url, action=action)

    def _result(self, action: str, response: requests.Response):
        try:
            data = response.json()
        except ValueError:
            data = None
        if response.status_code != 200 or not isinstance(data, dict) or not {"result", "error"} <= data.keys():
            raise AnkiConnectError(f"{self.url} is not AnkiConnect (HTTP {response.status_code} to {action})",
                                   url=self.url, action=action)
        if data["error"] is not None:
            raise AnkiConnectError(f"AnkiConnect {action}: {data['error']}", action=action)
        return data["result"]

    def sync(self, deck: str, note_type: NoteType, notes: list[NoteSpec], media: list[Path],
             key_field: str = "Key") -> SyncReport:
        """Deck, note type (created or its templates/CSS updated), media, then notes by `key_field`."""
        if int(self.invoke("version")) < API_VERSION:
            raise AnkiConnectError("AnkiConnect is too old: update the add-on (API version 6 needed)")
        self.invoke("createDeck", deck=deck)
        created = self._ensure_note_type(note_type)
        stored, present = self._store_media(media)
        index = note_type.fields.index(key_field)
        existing = self._notes_by_key(note_type.name, key_field)
        report = SyncReport(target=self.url, note_type_created=created, media_stored=stored,
                            media_already_there=present, added=0, updated=0, unchanged=0)
        new = []
        for spec in notes:
            fields = dict(zip(note_type.fields, spec.fields))
            found = existing.get(spec.fields[index])
            if found is None:
                new.append((spec, fields))
                continue
            note_id, old_fields, old_tags = found
            if old_fields == fields and sorted(old_tags) == sorted(spec.tags):
                report.unchanged += 1
                continue
            self.invoke("updateNoteFields", note={"id": note_id, "fields": fields})
            if sorted(old_tags) != sorted(spec.tags):
                self.invoke("updateNoteTags", note=note_id, tags=spec.tags)
            report.updated += 1
        self._add(deck, note_type.name, key_field, new, report)
        return report

    def _ensure_note_type(self, note_type: NoteType) -> bool:
        templates = [{"Name": t.name, "Front": t.front, "Back": t.back} for t in note_type.templates]
        if note_type.name not in self.invoke("modelNames"):
            self.invoke("createModel", modelName=note_type.name, inOrderFields=note_type.fields,
                        css=note_type.css, isCloze=False, cardTemplates=templates)
            return True
        have = self.invoke("modelFieldNames", modelName=note_type.name)
        for position, name in enumerate(note_type.fields):
            if name not in have:
                self.invoke("modelFieldAdd", modelName=note_type.name, fieldName=name, index=position)
        self.invoke("updateModelTemplates", model={
            "name": note_type.name,
            "templates": {t["Name"]: {"Front": t["Front"], "Back": t["Back"]} for t in templates}})
        self.invoke("updateModelStyling", model={"name": note_type.name, "css": note_type.css})
        return False

    def _store_media(self, media: list[Path]) -> tuple[int, int]:
        # names are content hashes: a name Anki already has holds the same bytes
        patterns = sorted({p.name.split("_", 1)[0] + "_*" for p in media})
        have = {n for pattern in patterns for n in self.invoke("getMediaFilesNames", pattern=pattern)}
        stored = 0
        for path in media:
            if path.name in have:
                continue
            data = base64.b64encode(path.read_bytes()).decode("ascii")
            self.invoke("storeMediaFile", filename=path.name, data=data)
            stored += 1
        return stored, len(media) - stored

    def _notes_by_key(self, model: str, key_field: str) -> dict[str, tuple[int, dict, list]]:
        ids = self.invoke("findNotes", query=f'"note:{model}"')
        found = {}
        for info in self.invoke("notesInfo", notes=ids) if ids else []:
            fields = {name: value["value"] for name, value in info["fields"].items()}
            found[fields.get(key_field, "")] = (info["noteId"], fields, info.get("tags", []))
        return found

    def _add(self, deck: str, model: str, key_field: str, new: list, report: SyncReport) -> None:
        payload = [{"deckName": deck, "modelName": model, "fields": fields, "tags": spec.tags,
                    "options": {"allowDuplicate": False, "duplicateScope": "deck"}} for spec, fields in new]
        if not payload:
            return
        try:
            results = self.invoke("addNotes", notes=payload)
        except AnkiConnectError:
            # newer AnkiConnect adds what it can, then fails the whole call if any note failed:
            # look up which keys arrived, and retry the rest one by one to learn why they fail
            arrived = self._notes_by_key(model, key_field)
            results = []
            for (spec, _), note in zip(new, payload):
                if spec.guid in arrived:
                    results.append(arrived[spec.guid][0])
                    continue
                try:
                    results.append(self.invoke("addNote", note=note))
                except AnkiConnectError as exc:
                    results.append(exc.message)
        for (spec, fields), result in zip(new, results):
            if isinstance(result, int):
                report.added += 1
            else:
                report.failed.append({"key": spec.guid, "headword": fields.get("Headword", ""),
                                      "error": str(result or "not added")})
