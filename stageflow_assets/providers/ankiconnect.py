"""A running Anki through AnkiConnect (`POST {"action", "version": 6, "params"}` → `{"result", "error"}`).

AnkiConnect answers errors with HTTP 200 and a non-null `error`, so the status code alone says
nothing: an `error` is final (Anki refused), while connection failures, timeouts and 5xx are
retried with backoff by urllib3 (providers/http.py); a call that still got no answer counts
against the `ankiconnect` circuit breaker (providers/breaker.py). The optional API key travels in
the body and is never logged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import base64
from pathlib import Path

import dagster as dg
from pydantic import Field

from stageflow_assets.core.errors import ProviderError
from stageflow_assets.providers.anki import NoteSpec, NoteType
from stageflow_assets.providers.anki_merge import (
    AnkiNote, BaseNote, SyncPlan, SyncReport, deck_query, plan_sync, search_term,
)
from stageflow_assets.providers.breaker import BreakerConfig, circuit, guarded

if TYPE_CHECKING:
    import requests  # imported where a request is made: ~40 ms of start-up otherwise

API_VERSION = 6


class AnkiConnectError(ProviderError):
    """Anki answered and refused: retrying the same request cannot help."""

    retryable = False


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
        """The first answer that is not a 5xx, urllib3 retrying those and transport failures;
        ProviderError when there is none after `max_retries`."""
        from stageflow_assets.providers.http import post_retrying

        response, last = post_retrying(self.url, self.max_retries, self.backoff_s, json=body, timeout=self.timeout_s)
        if response is not None:
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
             base: dict[str, BaseNote] | None = None, prune: bool = False,
             key_field: str = "Key") -> tuple[SyncReport, dict[str, BaseNote]]:
        """Deck, note type (created or its templates/CSS updated), media, then notes by `key_field`,
        merged with what Anki holds (providers/anki_merge.py; `base`: what the last sync wrote).

        Returns the report and the base for the next sync.
        """
        if int(self.invoke("version")) < API_VERSION:
            raise AnkiConnectError("AnkiConnect is too old: update the add-on (API version 6 needed)")
        self.invoke("createDeck", deck=deck)
        created = self._ensure_note_type(note_type)
        stored, present = self._store_media(media)
        existing = self._notes_by_key(note_type.name, key_field)
        in_deck = set(self.invoke("findNotes", query=deck_query(note_type.name, deck)))
        plan = plan_sync(notes, note_type.fields, existing,
                         {key for key, note in existing.items() if note.note_id in in_deck}, base or {},
                         key_field=key_field, label_field=note_type.fields[note_type.sort_field_index],
                         prune=prune, target=self.url)
        report = plan.report
        report.note_type_created, report.media_stored, report.media_already_there = created, stored, present
        self._apply(plan)
        self._add(deck, note_type.name, key_field, [(s, dict(zip(note_type.fields, s.fields))) for s in plan.add],
                  report)
        for failed in report.failed:
            plan.state.pop(failed["key"], None)
        return report, plan.state

    def _apply(self, plan: SyncPlan) -> None:
        adds: dict[str, list[int]] = {}
        removes: dict[str, list[int]] = {}
        for change in plan.changes:
            # only the fields that move: Anki keeps the others, the user's edits among them
            if change.fields:
                self.invoke("updateNoteFields", note={"id": change.note_id, "fields": change.fields})
            if change.add_tags:
                adds.setdefault(" ".join(change.add_tags), []).append(change.note_id)
            if change.remove_tags:
                removes.setdefault(" ".join(change.remove_tags), []).append(change.note_id)
        for tags, ids in adds.items():
            self.invoke("addTags", notes=ids, tags=tags)
        for tags, ids in removes.items():
            self.invoke("removeTags", notes=ids, tags=tags)
        if plan.delete:
            self.invoke("deleteNotes", notes=plan.delete)

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

    def _notes_by_key(self, model: str, key_field: str) -> dict[str, AnkiNote]:
        ids = self.invoke("findNotes", query=search_term("note", model))
        found = {}
        for info in self.invoke("notesInfo", notes=ids) if ids else []:
            fields = {name: value["value"] for name, value in info["fields"].items()}
            found[fields.get(key_field, "")] = AnkiNote(note_id=info["noteId"], fields=fields,
                                                        tags=info.get("tags", []))
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
            for (_, fields), note in zip(new, payload):
                if fields[key_field] in arrived:
                    results.append(arrived[fields[key_field]].note_id)
                    continue
                try:
                    results.append(self.invoke("addNote", note=note))
                except AnkiConnectError as exc:
                    results.append(exc.message)
        for (_, fields), result in zip(new, results):
            if isinstance(result, int):
                report.added += 1
            else:
                report.failed.append({"key": fields[key_field], "headword": fields.get("Headword", ""),
                                      "error": str(result or "not added")})
