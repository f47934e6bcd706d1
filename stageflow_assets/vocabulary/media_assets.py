"""Media for the cards: spoken headwords (espeak-ng → MP3) and, when switched on, images.

Media files are named by content hash and kept in the stage dir; a file the previous run
already made under the same name is copied instead of made again.
"""


import hashlib
import os
import shutil

import dagster as dg

from stageflow_assets.core.errors import ProviderError
from stageflow_assets.core.hashing import sha256_json
from stageflow_assets.core.manifest import StageManifest
from stageflow_assets.core.paths import write_text_atomic
from stageflow_assets.core.stage import PROVIDER_RETRY, StageWriter, one_line_failures, run_stage, stage_input
from stageflow_assets.core.stage_store import StageStore
from stageflow_assets.providers.breaker import CircuitOpenError
from stageflow_assets.providers.images import ImageGenerator
from stageflow_assets.providers.tts import EspeakTTS
from stageflow_assets.vocabulary import stage_dirs
from stageflow_assets.vocabulary.analysis import CACHE_DIR

from stageflow_assets.vocabulary.models import AnalysisDoc, AudioDoc, AudioItem, ImageDoc, ImageItem
from stageflow_assets.vocabulary.partitions import word_list_partitions


def _reuse(out: StageWriter, name: str) -> bool:
    """Copy last run's file of the same (content-hash) name into this run's output, if any."""
    previous = out.directory / name
    if not previous.is_file() or previous.stat().st_size == 0:
        return False
    shutil.copyfile(previous, out.output(name, kind=_kind(name), fmt=name.rsplit(".", 1)[-1]))
    return True


def _kind(name: str) -> str:
    return "audio" if name.endswith(".mp3") else "image"


@dg.asset(
    partitions_def=word_list_partitions, group_name=stage_dirs.DOMAIN, code_version="2",
    kinds={"espeakng", "ffmpeg"}, retry_policy=PROVIDER_RETRY, metadata=stage_dirs.PRONUNCIATION_AUDIO.metadata,
)
@one_line_failures
def pronunciation_audio(
    context: dg.AssetExecutionContext, storage: StageStore, tts: EspeakTTS, word_analysis: StageManifest,
):
    """One MP3 per headword, spoken by espeak-ng, named `tts_<voice>_<hash>.mp3` after what
    decides its bytes; `audio.json` maps each note key to its file. A headword with a marker is
    spoken as the word after it (`to borrow` → `borrow`, as its IPA).

    Unchanged words reuse last run's file; a word espeak-ng cannot speak is listed, not fatal.
    Speech runs in `tts.workers` espeak-ng processes at once (one per core).
    """
    paths = storage.paths
    source = stage_input(paths, word_analysis, "analysis")
    doc = AnalysisDoc.model_validate_json(source.path.read_text(encoding="utf-8"))

    def work(out: StageWriter) -> None:
        if not tts.has_voice(doc.language):
            out.skip(f"espeak-ng has no voice for {doc.language}: cards carry no audio")
            return
        # what is spoken: the headword, or the word after its marker (`to borrow` → `borrow`)
        names = {w.key: tts.media_name(w.lookup_form or w.headword, doc.language) for w in doc.words}
        to_make: dict[str, str] = {}  # file name → text, each file once however many words share it
        reused: set[str] = set()
        for word in doc.words:
            name = names[word.key]
            if name in to_make or name in reused:
                continue
            if _reuse(out, name):
                reused.add(name)
            else:
                to_make[name] = word.lookup_form or word.headword
        jobs = [(text, out.directory / f".{name}.partial") for name, text in to_make.items()]
        with out.timed("synthesize"):
            issues = tts.synthesize_many(jobs, doc.language)
        failed_files: dict[str, str] = {}
        for (name, _), (_, scratch), issue in zip(to_make.items(), jobs, issues):
            if issue:
                scratch.unlink(missing_ok=True)
                failed_files[name] = issue
            else:
                os.replace(scratch, out.output(name, kind="audio", fmt="mp3"))
        items = [AudioItem(key=w.key, headword=w.headword, issue=failed_files[names[w.key]])
                 if names[w.key] in failed_files else AudioItem(key=w.key, headword=w.headword, file=names[w.key])
                 for w in doc.words]
        result = AudioDoc(language=doc.language, voice=tts.voice_for(doc.language), items=items)
        out.output("audio.json", kind="audio_index", fmt="json").write_text(result.model_dump_json(indent=1), encoding="utf-8")
        failed = {i.headword: i.issue for i in items if i.issue}
        made = len(to_make) - len(failed_files)
        out.details.update(files=made + len(reused), synthesized=made, reused_files=len(reused), failed=failed,
                           speech_workers=min(tts.workers, len(jobs)))
        if failed:
            out.warnings.append(f"{len(failed)} word(s) have no audio: {', '.join(list(failed)[:10])}")

    return run_stage(
        context, paths, stage_dirs.PRONUNCIATION_AUDIO, inputs=[source], config=tts.parameters(doc.language),
        provider_versions=tts.versions(), work=work,
    )


@dg.asset(
    partitions_def=word_list_partitions, group_name=stage_dirs.DOMAIN, code_version="1",
    kinds={"http"}, retry_policy=PROVIDER_RETRY, metadata=stage_dirs.CARD_IMAGES.metadata,
)
@one_line_failures
def card_images(
    context: dg.AssetExecutionContext, storage: StageStore, images: ImageGenerator, word_analysis: StageManifest,
):
    """One picture per headword from the configured image API, named by its content hash.

    Off by default: the stage is then recorded as skipped and the cards say they have no image.
    """
    paths = storage.paths
    source = stage_input(paths, word_analysis, "analysis")
    doc = AnalysisDoc.model_validate_json(source.path.read_text(encoding="utf-8"))
    params = images.parameters()

    def work(out: StageWriter) -> None:
        if not images.enabled:
            out.skip("images are off (configure an image backend to turn them on)")
            return
        cache = out.directory / CACHE_DIR
        items, made, reused, claimed = [], 0, 0, set()
        for word in doc.words:
            prompt = images.prompt_for(word.headword, word.senses[0].definition if word.senses else "")
            key = sha256_json({"prompt": prompt, **params})[:24]
            remembered = cache / f"{key}.txt"
            name = remembered.read_text().strip() if remembered.is_file() else ""
            if name and (name in claimed or _reuse(out, name)):
                reused += 1
            else:
                try:
                    data, ext = images.generate(prompt)
                except CircuitOpenError:
                    raise  # the API is down: the step fails (or waits), not each word in turn
                except ProviderError as exc:
                    items.append(ImageItem(key=word.key, headword=word.headword, issue=exc.message))
                    continue
                name = f"img_{hashlib.sha256(data).hexdigest()[:16]}.{ext}"
                if name not in claimed:
                    out.output(name, kind="image", fmt=ext).write_bytes(data)
                write_text_atomic(remembered, name)
                made += 1
            claimed.add(name)
            items.append(ImageItem(key=word.key, headword=word.headword, file=name))
        result = ImageDoc(enabled=True, backend=str(params.get("backend")), items=items)
        out.output("images.json", kind="image_index", fmt="json").write_text(result.model_dump_json(indent=1), encoding="utf-8")
        out.details.update(files=len(claimed), generated=made, reused_files=reused,
                           failed={i.headword: i.issue for i in items if i.issue},
                           breaker=images.breaker_state())

    return run_stage(context, paths, stage_dirs.CARD_IMAGES, inputs=[source], config=params, work=work)
