"""Asset checks: the analysis is well-formed (ERROR), its IPA is IPA (ERROR or WARN, configurable),
the media exist and decode (ERROR: audio wholly decoded in process, images probed), and the deck
packages every file its cards reference (ERROR).

ERROR checks are blocking: a failed one stops the downstream stages of the run.
"""


import collections
import json
import re
import sqlite3
import tempfile
import time
import warnings
import zipfile
from pathlib import Path
from typing import Literal

import dagster as dg
from pydantic import ValidationError

from stageflow_assets.core.errors import StageError
from stageflow_assets.core.manifest import StageManifest
from stageflow_assets.core.stage_store import StageStore
from stageflow_assets.providers.audio_files import decode_audio
from stageflow_assets.providers.media import MediaTools
from stageflow_assets.vocabulary.assets import word_analysis
from stageflow_assets.vocabulary.deck_assets import anki_deck
from stageflow_assets.vocabulary.ipa import ipa_problems
from stageflow_assets.vocabulary.media_assets import card_images, pronunciation_audio
from stageflow_assets.vocabulary.models import AnalysisDoc
from stageflow_assets.vocabulary.partitions import word_list_partitions

ANALYSIS_SCHEMA_CHECK = "analysis_schema_valid"
IPA_CHECK = "ipa_valid"
AUDIO_FILES_CHECK = "audio_files_decodable"
IMAGE_FILES_CHECK = "image_files_decodable"
DECK_MEDIA_CHECK = "deck_media_complete"
_MEDIA_REF = re.compile(r"\[sound:([^\]]+)\]|<img src=\"([^\"]+)\"")


class VocabularyChecks(dg.ConfigurableResource):
    """How strict the quality checks are: invalid IPA blocks the deck (ERROR) or only warns."""

    ipa_severity: Literal["ERROR", "WARN"] = "WARN"


def _check(**kwargs):
    """A blocking check per `word_lists` partition (partitioned checks are a Dagster preview)."""
    def wrap(fn):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", dg.PreviewWarning)
            return dg.asset_check(blocking=True, partitions_def=word_list_partitions, **kwargs)(fn)
    return wrap


def _doc(paths, manifest: StageManifest) -> AnalysisDoc:
    return AnalysisDoc.model_validate_json(paths.absolute(manifest.output("analysis").path).read_text(encoding="utf-8"))


@_check(asset=word_analysis, name=ANALYSIS_SCHEMA_CHECK,
                description="analysis.json matches its schema; every row has a headword and a unique note key.")
def analysis_schema_valid(storage: StageStore, word_analysis: StageManifest) -> dg.AssetCheckResult:
    try:
        doc = _doc(storage.paths, word_analysis)
    except (ValidationError, ValueError, KeyError) as exc:
        return dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.ERROR,
                                   metadata={"error": str(exc)[:2000]})
    counts = collections.Counter(w.key for w in doc.words)  # not keys.count per key: n² for a long list
    dupes = sorted(k for k, n in counts.items() if n > 1)
    empty = [w.line for w in doc.words if not w.headword.strip()]
    return dg.AssetCheckResult(
        passed=bool(doc.words) and not dupes and not empty, severity=dg.AssetCheckSeverity.ERROR,
        metadata={"rows": len(doc.words), "duplicate_keys": dupes[:50], "empty_headword_lines": empty[:50],
                  "explanation": "rows must be non-empty, headwords non-blank, note keys unique"},
    )


@_check(asset=word_analysis, name=IPA_CHECK,
                description="Every IPA transcription uses IPA characters only (no `(en)` switches, no tone digits).")
def ipa_valid(storage: StageStore, vocab_checks: VocabularyChecks, word_analysis: StageManifest) -> dg.AssetCheckResult:
    doc = _doc(storage.paths, word_analysis)
    problems = {w.headword: ipa_problems(w.ipa) if w.ipa else ["no IPA"] for w in doc.words}
    problems = {h: p for h, p in problems.items() if p}
    return dg.AssetCheckResult(
        passed=not problems, severity=dg.AssetCheckSeverity[vocab_checks.ipa_severity],
        metadata={"checked": len(doc.words), "invalid": len(problems), "severity": vocab_checks.ipa_severity,
                  "problems": dg.MetadataValue.json(dict(list(problems.items())[:100])),
                  "explanation": "cards leave IPA blank where it is invalid; ERROR severity blocks the deck"},
    )


def _media_result(storage: StageStore, media: MediaTools, manifest: StageManifest, kind: str,
                  codecs: set[str]) -> dg.AssetCheckResult:
    if manifest.status == "skipped":
        return dg.AssetCheckResult(passed=True, metadata={"skipped": manifest.details.get("skipped_reason", "")})
    bad: dict[str, str] = {}
    records = manifest.outputs_of(kind)
    for record in records:
        path = storage.paths.absolute(record.path)
        try:
            probe = media.probe(path)
            stream = probe.streams[0] if probe.streams else None
            if stream is None or stream.codec not in codecs:
                bad[path.name] = f"codec {stream.codec if stream else 'none'}, expected {'/'.join(sorted(codecs))}"
        except StageError as exc:
            bad[path.name] = exc.message
    return dg.AssetCheckResult(
        passed=not bad, severity=dg.AssetCheckSeverity.ERROR,
        metadata={"files": len(records), "bad": dg.MetadataValue.json(bad),
                  "explanation": f"every {kind} file exists and ffprobe decodes it"},
    )


@_check(asset=pronunciation_audio, name=AUDIO_FILES_CHECK,
                description="Every MP3 exists and decodes completely: MP3 audio, every frame, as long as its header says.")
def audio_files_decodable(storage: StageStore, pronunciation_audio: StageManifest) -> dg.AssetCheckResult:
    if pronunciation_audio.status == "skipped":
        return dg.AssetCheckResult(passed=True, metadata={"skipped": pronunciation_audio.details.get("skipped_reason", "")})
    bad: dict[str, str] = {}
    seconds = 0.0
    records = pronunciation_audio.outputs_of("audio")
    started = time.perf_counter()
    # in process, no tool per file: a full decode costs ~1 ms a word (providers/audio_files.py)
    for record in records:
        path = storage.paths.absolute(record.path)
        try:
            seconds += decode_audio(path, "mp3").seconds
        except StageError as exc:
            bad[path.name] = exc.message
    return dg.AssetCheckResult(
        passed=not bad, severity=dg.AssetCheckSeverity.ERROR,
        metadata={"files": len(records), "bad": dg.MetadataValue.json(bad), "decoded_seconds": round(seconds, 3),
                  "check_s": round(time.perf_counter() - started, 3),
                  "explanation": "every audio file exists and decodes completely as MP3 (every frame, "
                                 "as many samples as its header announces)"},
    )


@_check(asset=card_images, name=IMAGE_FILES_CHECK,
                description="Every image exists and ffprobe decodes it (passes when images are off).")
def image_files_decodable(storage: StageStore, media: MediaTools, card_images: StageManifest):
    return _media_result(storage, media, card_images, "image", {"png", "mjpeg", "webp"})


def deck_media_problems(apkg: Path) -> tuple[int, list[str]]:
    """(notes, problems): every `[sound:x]` / `<img src="x">` must be a packaged media file."""
    with zipfile.ZipFile(apkg) as zf, tempfile.TemporaryDirectory() as tmp:
        packaged = set(json.loads(zf.read("media")).values())
        db = Path(zf.extract("collection.anki2", tmp))
        with sqlite3.connect(db) as con:
            rows = con.execute("select flds from notes").fetchall()
    referenced = {a or b for (flds,) in rows for a, b in _MEDIA_REF.findall(flds)}
    return len(rows), sorted(f"{name} is referenced but not packaged" for name in referenced - packaged)


@_check(asset=anki_deck, name=DECK_MEDIA_CHECK,
                description="Every media file a card references is inside the .apkg.")
def deck_media_complete(storage: StageStore, anki_deck: StageManifest) -> dg.AssetCheckResult:
    notes, problems = deck_media_problems(storage.paths.absolute(anki_deck.output("apkg").path))
    return dg.AssetCheckResult(
        passed=notes > 0 and not problems, severity=dg.AssetCheckSeverity.ERROR,
        metadata={"notes": notes, "problems": problems[:100],
                  "explanation": "a missing media file shows as a broken sound/image on the card"},
    )


VOCABULARY_CHECKS = [analysis_schema_valid, ipa_valid, audio_files_decodable, image_files_decodable, deck_media_complete]
