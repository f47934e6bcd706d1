"""Loopback fakes for the two network services we cannot reach here: AnkiConnect and an image API.

Each is a real HTTP server on 127.0.0.1 (random port) speaking the service's wire format,
errors included, so the real client code (requests, retries, error handling) runs.
"""

from __future__ import annotations

import base64
import re
import struct
import zlib
from typing import Any, Callable

from stageflow_assets_tests.fakes.loopback import LoopbackServer, Received


def tiny_png(rgb: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    """A valid 2×2 RGB PNG (ffprobe decodes it)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    raw = b"".join(b"\x00" + bytes(rgb) * 2 for _ in range(2))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


class FakeServer(LoopbackServer):
    """Runs `handle(path, body, headers) -> (status, json)` behind a loopback server."""

    def __init__(self, handle: Callable[[str, dict, dict], tuple[int, Any]]) -> None:
        super().__init__(lambda r: (*handle(r.target, _json_body(r), r.headers), {}))

    @property
    def requests(self) -> list[dict]:
        return [{"path": r.target, "body": _json_body(r), "headers": r.headers} for r in self.log]


def _json_body(received: Received) -> Any:
    return received.body if received.raw else {}


class FakeAnki:
    """AnkiConnect's behaviour for the actions the sync uses: a tiny in-memory collection.

    Like AnkiConnect, every reply is HTTP 200 with `{"result", "error"}`; a refused action has
    a non-null `error`. `fail_next` injects transport failures (HTTP 503) before answering.
    """

    def __init__(self, strict_add_notes: bool = False) -> None:
        self.decks: set[str] = set()
        self.models: dict[str, dict] = {}
        self.media: dict[str, bytes] = {}
        self.notes: dict[int, dict] = {}
        self.next_id = 1_000
        self.fail_next = 0
        # newer AnkiConnect fails a whole addNotes call if one note cannot be added
        self.strict_add_notes = strict_add_notes

    def __call__(self, path: str, body: dict, headers: dict) -> tuple[int, Any]:
        if self.fail_next:
            self.fail_next -= 1
            return 503, {"error": "busy"}
        if body.get("version") != 6:
            return 200, {"result": None, "error": "this fake only speaks version 6"}
        action = getattr(self, "do_" + str(body.get("action")), None)
        if action is None:
            return 200, {"result": None, "error": "unsupported action"}
        try:
            return 200, {"result": action(**body.get("params", {})), "error": None}
        except Exception as exc:  # noqa: BLE001 - AnkiConnect turns every exception into `error`
            return 200, {"result": None, "error": str(exc)}

    def do_version(self):
        return 6

    def do_createDeck(self, deck):  # noqa: N802 - AnkiConnect's action names
        self.decks.add(deck)
        return 1

    def do_modelNames(self):  # noqa: N802
        return sorted(self.models)

    def do_createModel(self, modelName, inOrderFields, css, isCloze, cardTemplates):  # noqa: N802,N803
        if modelName in self.models:
            raise Exception("Model name already exists")
        self.models[modelName] = {"fields": list(inOrderFields), "css": css, "templates": cardTemplates}
        return {"name": modelName}

    def do_modelFieldNames(self, modelName):  # noqa: N802,N803
        return self.models[modelName]["fields"]

    def do_modelFieldAdd(self, modelName, fieldName, index):  # noqa: N802,N803
        self.models[modelName]["fields"].insert(index, fieldName)

    def do_updateModelTemplates(self, model):  # noqa: N802
        self.models[model["name"]]["templates_update"] = model["templates"]

    def do_updateModelStyling(self, model):  # noqa: N802
        self.models[model["name"]]["css"] = model["css"]

    def do_getMediaFilesNames(self, pattern):  # noqa: N802
        prefix = pattern.rstrip("*")
        return sorted(n for n in self.media if n.startswith(prefix))

    def do_storeMediaFile(self, filename, data):  # noqa: N802
        self.media[filename] = base64.b64decode(data)
        return filename

    def do_findNotes(self, query):  # noqa: N802
        terms = [_search_term(token) for token in _TOKEN.findall(query)]
        if not terms:
            raise Exception(f"Invalid search: {query!r}")
        return [i for i, n in self.notes.items() if all(_matches(n, t) != negated for negated, t in terms)]

    def do_notesInfo(self, notes):  # noqa: N802
        # AnkiConnect answers an empty object for an id it does not know
        return [{"noteId": i, "modelName": self.notes[i]["modelName"], "tags": self.notes[i]["tags"],
                 "fields": {k: {"value": v, "order": n} for n, (k, v) in enumerate(self.notes[i]["fields"].items())}}
                if i in self.notes else {} for i in notes]

    def _note(self, note_id):
        if note_id not in self.notes:
            raise Exception(f"note was not found: {note_id}")
        return self.notes[note_id]

    def do_updateNoteFields(self, note):  # noqa: N802
        self._note(note["id"])["fields"].update(
            {k: v for k, v in note["fields"].items() if k in self.notes[note["id"]]["fields"]})

    def do_addTags(self, notes, tags):  # noqa: N802
        for note_id in notes:
            have = self._note(note_id)["tags"]
            have += [t for t in tags.split() if t.casefold() not in {h.casefold() for h in have}]

    def do_removeTags(self, notes, tags):  # noqa: N802
        gone = {t.casefold() for t in tags.split()}
        for note_id in notes:
            note = self._note(note_id)
            note["tags"] = [t for t in note["tags"] if t.casefold() not in gone]

    def do_deleteNotes(self, notes):  # noqa: N802
        for note_id in notes:
            self.notes.pop(note_id, None)

    def _add(self, note) -> int:
        if note["deckName"] not in self.decks:
            raise Exception("deck was not found: " + note["deckName"])
        first = next(iter(note["fields"].values()))
        if any(next(iter(n["fields"].values())) == first for n in self.notes.values()):
            raise Exception("cannot create note because it is a duplicate")
        self.next_id += 1
        self.notes[self.next_id] = {"modelName": note["modelName"], "fields": dict(note["fields"]),
                                    "tags": list(note.get("tags", [])), "deck": note["deckName"]}
        return self.next_id

    def do_addNote(self, note):  # noqa: N802
        return self._add(note)

    def do_addNotes(self, notes):  # noqa: N802
        results, errors = [], []
        for note in notes:
            try:
                results.append(self._add(note))
            except Exception as exc:  # noqa: BLE001
                results.append(None)
                errors.append(str(exc))
        if errors and self.strict_add_notes:
            raise Exception(str(errors))
        return results


# Anki's search syntax, as far as the sync uses it: `[-]"prefix:value"` terms, all of which must
# hold; `*` and `_` are wildcards unless escaped with a backslash
_TOKEN = re.compile(r'-?"(?:[^"\\]|\\.)*"|-?[^\s"]+')


def _search_term(token: str) -> tuple[bool, tuple[str, re.Pattern]]:
    negated = token.startswith("-")
    text = token[1:] if negated else token
    if text.startswith('"'):
        text = text[1:-1]
    prefix, sep, value = text.partition(":")
    if not sep or prefix not in ("note", "deck", "tag"):
        raise Exception(f"Invalid search: {token!r} (the fake knows note:, deck: and tag:)")
    pattern, chars = "", iter(value)
    for char in chars:
        if char == "\\":
            pattern += re.escape(next(chars, "\\"))
        else:
            pattern += {"*": ".*", "_": "."}.get(char, re.escape(char))
    # deck: and tag: also match what sits below (`Spanish` matches `Spanish::Food`)
    suffix = "(::.*)?" if prefix in ("deck", "tag") else ""
    return negated, (prefix, re.compile(f"(?is){pattern}{suffix}"))


def _matches(note: dict, term: tuple[str, re.Pattern]) -> bool:
    prefix, pattern = term
    if prefix == "note":
        return bool(pattern.fullmatch(note["modelName"]))
    if prefix == "deck":
        return bool(pattern.fullmatch(note["deck"]))
    return any(pattern.fullmatch(t) for t in note["tags"])


def openai_images(png: bytes, script: list[tuple[int, Any]] | None = None):
    """An OpenAI-compatible `/v1/images/generations`: scripted replies first, then a PNG."""
    queue = list(script or [])

    def handle(path: str, body: dict, headers: dict) -> tuple[int, Any]:
        if path != "/v1/images/generations":
            return 404, {"error": {"message": f"no route {path}", "type": "invalid_request_error"}}
        if queue:
            return queue.pop(0)
        return 200, {"created": 1, "data": [{"b64_json": base64.b64encode(png).decode()}]}

    return handle
