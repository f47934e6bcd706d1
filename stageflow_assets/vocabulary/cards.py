"""The note type, its ids and GUIDs, and what each note's fields say.

Ids are forever: Anki recognises a note type by `MODEL_ID`, a deck by its id and a note by its
GUID, so none of them may depend on content (research/anki.md §1.2). Every field is escaped
HTML: a word like `<script>` shows as text on the card.
"""

from __future__ import annotations

import hashlib
import html

import genanki

from stageflow_assets.core.hashing import sha256_json
from stageflow_assets.providers.anki import CardTemplate, NoteType
from stageflow_assets.vocabulary.models import WordAnalysis

# generated once with random.randrange(1 << 30, 1 << 31); never change it
MODEL_ID = 1873541629
MODEL_NAME = "Vocabulary (stageflow)"
GUID_NAMESPACE = "stageflow-vocab-v1"
# bump with any template/CSS change: Anki updates a note type on import only if it is newer
TEMPLATES_VERSION = 1
TEMPLATES_MOD = 1_767_225_600 + TEMPLATES_VERSION  # 2026-01-01 + version
FIELDS = ["Key", "Headword", "PartOfSpeech", "Meanings", "Examples", "IPA", "Audio",
          "Translation", "Image", "Production"]

_CSS = """.card { font-family: "Liberation Sans", sans-serif; font-size: 22px; text-align: center; }
.headword { font-size: 34px; font-weight: bold; }
.pos { color: #777; font-style: italic; }
.ipa { font-family: "Doulos SIL", "Charis SIL", serif; color: #345; }
.meanings, .examples { text-align: left; display: inline-block; }
.examples { color: #555; font-style: italic; }
.nightMode .ipa { color: #9bd; }"""
_DETAILS = """<div class="pos">{{PartOfSpeech}}</div>
{{#IPA}}<div class="ipa">/{{IPA}}/</div>{{/IPA}}
{{Audio}}
<div class="meanings">{{Meanings}}</div>
{{#Examples}}<div class="examples">{{Examples}}</div>{{/Examples}}
{{#Translation}}<div class="translation">{{Translation}}</div>{{/Translation}}
{{#Image}}<div class="image">{{Image}}</div>{{/Image}}"""
RECOGNITION = CardTemplate(
    name="Recognition",
    front='<div class="headword">{{Headword}}</div>',
    back='{{FrontSide}}<hr id="answer">' + _DETAILS,
)
# the production card exists only for notes whose `Production` field is filled (--reverse)
PRODUCTION = CardTemplate(
    name="Production",
    front='{{#Production}}<div class="pos">{{PartOfSpeech}}</div><div class="meanings">{{Meanings}}</div>'
          '{{#Translation}}<div class="translation">{{Translation}}</div>{{/Translation}}{{/Production}}',
    back='{{FrontSide}}<hr id="answer"><div class="headword">{{Headword}}</div>'
         '{{#IPA}}<div class="ipa">/{{IPA}}/</div>{{/IPA}}{{Audio}}',
)
NOTE_TYPE = NoteType(model_id=MODEL_ID, name=MODEL_NAME, fields=FIELDS, templates=[RECOGNITION, PRODUCTION],
                     css=_CSS, sort_field_index=1, mod=TEMPLATES_MOD)


def deck_id_for(name: str) -> int:
    """A deck id derived from the deck name only: the same name is the same deck, always."""
    digest = int(hashlib.sha256(name.encode("utf-8")).hexdigest()[:12], 16)
    return (1 << 30) + digest % (1 << 30)


def note_guid(language: str, headword: str, pos_hint: str | None) -> str:
    """Identity, not content: editing a meaning keeps the note, changing case keeps it too."""
    return genanki.guid_for(GUID_NAMESPACE, MODEL_ID, language.lower(), headword.casefold(), pos_hint or "")


def _list(items: list[str]) -> str:
    return "<ol>" + "".join(f"<li>{html.escape(i)}</li>" for i in items) + "</ol>" if items else ""


def note_fields(word: WordAnalysis, audio: str | None, image: str | None, reverse: bool) -> list[str]:
    """Field values in `FIELDS` order; media by basename only (what genanki packages)."""
    meanings = [s.definition for s in word.senses if s.definition]
    examples = [e for s in word.senses for e in s.examples][:3]
    if not meanings and word.note:
        meanings = [word.note]
    values = {
        "Key": word.key,
        "Headword": html.escape(word.headword),
        "PartOfSpeech": html.escape(word.part_of_speech or word.pos_hint or ""),
        "Meanings": _list(meanings),
        "Examples": _list(examples),
        "IPA": html.escape(word.ipa) if word.ipa_valid else "",
        "Audio": f"[sound:{audio}]" if audio else "",
        "Translation": html.escape(word.translation),
        "Image": f'<img src="{html.escape(image)}">' if image else "",
        "Production": "y" if reverse and meanings else "",
    }
    return [values[name] for name in FIELDS]


def content_hash(fields: list[str], tags: list[str]) -> str:
    return sha256_json({"fields": fields, "tags": sorted(tags), "templates": TEMPLATES_VERSION})[:16]
