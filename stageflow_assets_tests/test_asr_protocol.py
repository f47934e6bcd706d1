"""One protocol for every ASR backend (providers/asr.py `ASRBackend`), and batched decoding.

Every backend is called through the protocol on real speech: transcription (WER against the
LibriVox references, word timings), hotwords, and Whisper's translate task (English from
Spanish speech). faster-whisper runs here; whisperX skips, saying why, without its extra.
"""

from __future__ import annotations

import inspect
import subprocess
from pathlib import Path

import dagster as dg
import jiwer
import pytest

from stageflow_assets.core.errors import ProviderError
from stageflow_assets.core.io_manager import StageManifestIOManager
from stageflow_assets.core.manifest import stage_manifest
from stageflow_assets.definitions import defs
from stageflow_assets.providers import whisper_models
from stageflow_assets.providers.asr import ASRBackend, Transcript, WhisperASR
from stageflow_assets.providers.asr_whisperx import WhisperXASR, asr_resource_from_env, whisperx_missing_reason
from stageflow_assets.providers.media import MediaTools
from stageflow_assets.subtitles import assets as subtitle_assets
from stageflow_assets.subtitles import stage_dirs, translators
from stageflow_assets.subtitles.partitions import subtitle_job_partitions
from stageflow_assets.subtitles.registry import register_video

# as test_asr_whisperx's per-clip WER test (hyphens as spaces: "cold-hearted" is two words of
# the reference), and its threshold
NORMALISE = jiwer.Compose([
    jiwer.ToLowerCase(), jiwer.SubstituteRegexes({r"-": " "}), jiwer.RemovePunctuation(),
    jiwer.RemoveMultipleSpaces(), jiwer.Strip(), jiwer.ReduceToListOfListOfWords(),
])
MAX_WER = 0.25
BACKENDS = (WhisperASR, WhisperXASR)
MISSING = whisperx_missing_reason()
SPANISH = "Buenos días a todos. Muchas gracias. La casa es grande y el jardín es bonito."


def _wer(reference: str, hypothesis: str) -> float:
    return jiwer.wer(reference, hypothesis, reference_transform=NORMALISE, hypothesis_transform=NORMALISE)


def _words(transcript: Transcript) -> list:
    return [w for s in transcript.segments for w in s.words]


def _check_words(transcript: Transcript) -> None:
    """Word timings on every segment with text, inside the audio, starts never going back."""
    words = _words(transcript)
    assert words, "no word timings"
    assert all(s.words for s in transcript.segments if s.text.strip()), "a segment without words"
    assert all(0 <= w.start <= w.end <= transcript.duration + 0.5 for w in words)
    starts = [w.start for w in words]
    assert starts == sorted(starts), "word starts go backwards"


# -- the protocol, without running a model -----------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS, ids=lambda cls: cls.__name__)
def test_every_backend_takes_the_protocols_call(backend):
    assert issubclass(backend, ASRBackend)
    protocol = inspect.signature(ASRBackend.transcribe).parameters
    own = inspect.signature(backend.transcribe).parameters
    assert list(own)[:len(protocol)] == list(protocol)
    assert [own[name].default for name in protocol] == [p.default for p in protocol.values()]
    assert all(p.default is not inspect.Parameter.empty for p in list(own.values())[len(protocol):])
    inspect.signature(backend.transcribe).bind(backend(), Path("x.wav"), language="es", task="translate",
                                               hotwords="house garden")
    resource = backend()  # every abstract method is implemented
    for name in ("parameters", "versions", "preload"):
        assert getattr(type(resource), name) is not getattr(ASRBackend, name), name
    assert resource.parameters()["word_timestamps"] is True


def test_assets_and_their_helpers_declare_the_protocol():
    """A whisperX resource is what the code says it takes, not only what Dagster lets in."""
    needing = [a for a in defs.assets if isinstance(a, dg.AssetsDefinition) and "asr" in a.required_resource_keys]
    assert {a.key.to_user_string() for a in needing} >= {"source_video", "transcript", "translation"}
    for asset in needing:
        body = asset.op.compute_fn.decorated_fn
        assert inspect.signature(body, eval_str=True).parameters["asr"].annotation is ASRBackend, asset.key
    for helper in (subtitle_assets.warm_whisper, translators.translate):
        assert inspect.signature(helper, eval_str=True).parameters["asr"].annotation is ASRBackend
    assert inspect.signature(asr_resource_from_env, eval_str=True).return_annotation is ASRBackend


@pytest.mark.skipif(MISSING is None, reason="whisperx is installed: the real run is in the slow tests")
def test_english_subtitles_through_whisperx_reach_it_without_a_type_error(tmp_path):
    """whisperX's transcribe took no task or hotwords: translating raised TypeError. Without the
    extra the call now gets as far as saying the extra is missing, once (no retry can help)."""
    plan = translators.Plan(backend="whisper-translate", detail={"task": "translate"})
    with pytest.raises(ProviderError, match="whisperx is not installed") as raised:
        translators.translate(plan, [], "es", "en", {"casa": "house"}, apertium=None, claude=None,
                              asr=WhisperXASR(), audio=tmp_path / "audio.wav", build_cues=list)
    assert raised.value.retryable is False


def test_batch_size_comes_from_the_environment(monkeypatch):
    for name in ("STAGEFLOW_ASR_BACKEND", "STAGEFLOW_ASR_DEVICE", "STAGEFLOW_ASR_BATCH", "HF_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    default = asr_resource_from_env()
    assert isinstance(default, WhisperASR) and default.batch_size == 8
    assert default.parameters()["decoding"] == "batched" and default.parameters()["vad_filter"] is True

    monkeypatch.setenv("STAGEFLOW_ASR_BATCH", "1")
    one = asr_resource_from_env()
    assert one.batch_size == 1 and one.parameters()["decoding"] == "sequential"
    assert one.parameters()["vad_filter"] is False
    monkeypatch.setenv("STAGEFLOW_ASR_BATCH", "0")
    zero = asr_resource_from_env()
    assert zero.parameters() == one.parameters()  # 0 and 1 decode alike: one fingerprint
    assert zero.parameters() != default.parameters()  # batched or not: another transcript
    monkeypatch.setenv("STAGEFLOW_ASR_BATCH", "16")
    assert asr_resource_from_env().parameters()["batch_size"] == 16

    monkeypatch.setenv("STAGEFLOW_ASR_BACKEND", "whisperx")
    assert asr_resource_from_env().batch_size == 16
    monkeypatch.setenv("STAGEFLOW_ASR_BATCH", "0")
    assert asr_resource_from_env().batch_size == 1  # whisperX always batches: one chunk at a time

    monkeypatch.setenv("STAGEFLOW_ASR_BATCH", "eight")
    with pytest.raises(ValueError, match="STAGEFLOW_ASR_BATCH"):
        asr_resource_from_env()


def test_an_unknown_task_is_refused_before_any_model_loads():
    for backend in BACKENDS:
        with pytest.raises(ValueError, match="transcribe, translate"):
            backend().transcribe(Path("x.wav"), task="summarise")


# -- real speech through the protocol ------------------------------------------------------------
def _backend(name: str) -> ASRBackend:
    if name == "whisperx":
        if MISSING:
            pytest.skip(MISSING)
        return WhisperXASR()
    return WhisperASR(batch_size=8 if name == "faster-whisper batched" else 1)


BACKEND_NAMES = ["faster-whisper batched", "faster-whisper sequential",
                 pytest.param("whisperx", marks=pytest.mark.whisperx)]


@pytest.fixture(scope="module")
def spanish_wav(tmp_path_factory) -> Path:
    from stageflow_assets.demo import speech_wav

    return speech_wav(SPANISH, tmp_path_factory.mktemp("es") / "es.wav", voice="es", speed=130)


@pytest.mark.slow
@pytest.mark.shared_data
@pytest.mark.parametrize("name", BACKEND_NAMES)
def test_every_backend_through_the_protocol(name, librivox_clips, spanish_wav):
    asr: ASRBackend = _backend(name)

    for wav, reference in librivox_clips:  # transcription: WER and word timings on every clip
        heard = asr.transcribe(wav)
        assert heard.language == "en"
        assert _wer(reference, heard.text) <= MAX_WER, (wav.name, heard.text)
        _check_words(heard)

    # hotwords steer the decoder: the reference's "mister" instead of Whisper's usual "Mr."
    wav, reference = next(c for c in librivox_clips if "dashwood" in c[1])
    plain = asr.transcribe(wav, language="en")
    steered = asr.transcribe(wav, language="en", hotwords="Mister Dashwood")
    assert "Mr." in plain.text and "Mister" in steered.text, (plain.text, steered.text)
    assert _wer(reference, steered.text) < _wer(reference, plain.text)
    _check_words(steered)

    # Whisper's translate task: English from Spanish speech, the spoken language reported
    spoken = asr.transcribe(spanish_wav)
    english = asr.transcribe(spanish_wav, task="translate")
    assert spoken.language == english.language == "es"
    assert "casa" in spoken.text.lower()
    assert {"house", "garden"} <= set(english.text.lower().replace(".", " ").split()), english.text
    _check_words(english)


@pytest.fixture(scope="module")
def joined_clips(librivox_clips, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("joined")
    listing = out / "clips.txt"
    listing.write_text("".join(f"file '{wav}'\n" for wav, _ in librivox_clips))
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-f", "concat", "-safe", "0", "-i", str(listing),
                    "-c", "copy", str(out / "joined.wav")], check=True)
    return out / "joined.wav"


def _as_tuples(segments) -> list:
    return [(round(s.start, 3), round(s.end, 3), s.text.strip(),
             [(round(w.start, 3), round(w.end, 3), w.word) for w in (s.words or [])]) for s in segments]


@pytest.mark.slow
@pytest.mark.shared_data
def test_batched_by_default_and_batch_size_1_decodes_sequentially(joined_clips):
    """The resource's result is faster-whisper's batched pipeline's by default, and its plain
    sequential decoding with batch_size 1 (or 0), call for call, with the same model."""
    from faster_whisper import BatchedInferencePipeline

    default = WhisperASR()
    model = whisper_models.load_model(default.model_path(), "cpu", "int8", 0, True)
    options = dict(beam_size=5, word_timestamps=True, language=None, task="transcribe", hotwords=None)
    batched, _ = BatchedInferencePipeline(model).transcribe(str(joined_clips), batch_size=8, vad_filter=True,
                                                            without_timestamps=True, **options)
    sequential, _ = model.transcribe(str(joined_clips), vad_filter=False, **options)
    batched, sequential = _as_tuples(batched), _as_tuples(sequential)
    assert batched != sequential  # the two paths are told apart on this audio

    assert _as_tuples(default.transcribe(joined_clips).segments) == batched
    for size in (1, 0):
        assert _as_tuples(WhisperASR(batch_size=size).transcribe(joined_clips).segments) == sequential


# -- the transcript asset takes any backend ----------------------------------------------------
@pytest.mark.parametrize("name", ["faster-whisper sequential", "whisperx"])
def test_the_transcript_asset_runs_the_backend_it_is_given(name, speech_video, store, instance):
    """faster-whisper sequential (its decoding in the fingerprint), and whisperX: transcribed
    where installed, else the step fails once, no retry, with the one line saying the extra is
    missing (Dagster injected it and the asset called it)."""
    asr = WhisperXASR() if name == "whisperx" else _backend(name)
    job = register_video(store.paths, speech_video).job
    instance.add_dynamic_partitions(subtitle_job_partitions.name, [job])
    result = dg.materialize(
        [subtitle_assets.source_video, subtitle_assets.audio, subtitle_assets.transcript],
        instance=instance, partition_key=job, raise_on_error=False,
        resources={"storage": store, "io_manager": StageManifestIOManager(store=store),
                   "media": MediaTools(), "asr": asr},
    )
    if name == "whisperx" and MISSING:
        (failure,) = result.get_step_failure_events()
        assert failure.step_key == "transcript"
        assert "whisperx is not installed" in failure.step_failure_data.user_failure_data.description
        assert not [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]  # no retry can help
        return
    assert result.success
    metadata = result.asset_materializations_for_node("transcript")[0].metadata
    assert "fox" in metadata["preview"].value.lower()
    manifest = stage_manifest(store.paths, stage_dirs.TRANSCRIPT, job)
    assert manifest.config == asr.parameters()
    assert manifest.config["backend"] == ("whisperx" if name == "whisperx" else "faster-whisper")
    if name != "whisperx":
        assert manifest.config["decoding"] == "sequential"
