"""whisperX, the production ASR backend (optional extra: `make whisperx`; run: pytest -m whisperx).

The first tests need no extra: which resource and which concurrency pool the environment picks.
The `whisperx` ones transcribe real speech and skip, saying why, where `import whisperx` fails.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import jiwer
import pysubs2
import pytest

from stageflow_assets.providers.asr import Transcript
from stageflow_assets.providers.asr_whisperx import whisperx_missing_reason
from stageflow_assets_tests.conftest import run_cli

# as test_e2e_subtitles, plus hyphens as spaces: the references write "cold hearted", Whisper
# "cold-hearted", and RemovePunctuation alone would make that two errors per word on a 3 s clip
NORMALISE = jiwer.Compose([
    jiwer.ToLowerCase(), jiwer.SubstituteRegexes({r"-": " "}), jiwer.RemovePunctuation(), jiwer.RemoveMultipleSpaces(), jiwer.Strip(),
    jiwer.ReduceToListOfListOfWords(),
])

MISSING = whisperx_missing_reason()


def needs_whisperx(test):
    """Marked `whisperx`, and skipped with the import error where the extra is absent."""
    return pytest.mark.whisperx(pytest.mark.skipif(MISSING is not None, reason=MISSING or "")(test))


# -- selection, without the extra ------------------------------------------------------------
def _fresh_process(code: str, **env: str) -> dict:
    """Definitions are read at import time: import them in a clean process with this env."""
    clean = {k: v for k, v in os.environ.items()
             if k not in ("STAGEFLOW_ASR_BACKEND", "STAGEFLOW_ASR_DEVICE", "HF_TOKEN")}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**clean, **env}, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


PROBE = """
import json
from stageflow_assets.definitions import defs
from stageflow_assets.subtitles.assets import transcript
asr = defs.resources["asr"]
print(json.dumps({"cls": type(asr).__name__, "device": asr.device, "pool": transcript.op.pool}))
"""


@pytest.mark.parametrize(
    ("env", "cls", "device", "pool"),
    [
        ({}, "WhisperASR", "cpu", None),
        ({"STAGEFLOW_ASR_BACKEND": "whisperx"}, "WhisperXASR", "cpu", None),
        ({"STAGEFLOW_ASR_BACKEND": "whisperx", "STAGEFLOW_ASR_DEVICE": "cuda"}, "WhisperXASR", "cuda", "gpu"),
    ],
)
def test_definitions_pick_asr_backend_and_gpu_pool(env, cls, device, pool):
    got = _fresh_process(PROBE, **env)
    assert got["cls"] == cls
    assert got["device"] == device
    assert got["pool"] == pool


def test_selection_helpers(monkeypatch):
    from stageflow_assets.providers import asr_whisperx as sel
    from stageflow_assets.providers.asr import WhisperASR

    monkeypatch.delenv("STAGEFLOW_ASR_BACKEND", raising=False)
    monkeypatch.delenv("STAGEFLOW_ASR_DEVICE", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    assert isinstance(sel.asr_resource_from_env(), WhisperASR)
    assert sel.transcript_pool() is None
    assert [sel.pool_for_device(d) for d in ("cpu", "cuda", "cuda:1")] == [None, "gpu", "gpu"]
    monkeypatch.setenv("STAGEFLOW_ASR_DEVICE", "cuda:1")
    assert sel.transcript_pool() == "gpu"
    on_gpu = sel.asr_resource_from_env()  # faster-whisper follows the device too
    assert isinstance(on_gpu, WhisperASR) and on_gpu.device == "cuda"
    monkeypatch.setenv("STAGEFLOW_ASR_DEVICE", "cpu")

    monkeypatch.setenv("STAGEFLOW_ASR_BACKEND", "whisperx")
    chosen = sel.asr_resource_from_env()
    assert isinstance(chosen, sel.WhisperXASR) and not chosen.diarize  # no token: no diarization
    params = chosen.parameters()
    assert params["backend"] == "whisperx" and params["compute_type"] == "int8"
    assert params["diarize"] is False

    monkeypatch.setenv("STAGEFLOW_ASR_BACKEND", "whisper-cpp")
    with pytest.raises(ValueError, match="STAGEFLOW_ASR_BACKEND"):
        sel.asr_resource_from_env()


def test_hf_token_is_never_in_the_fingerprint(monkeypatch):
    from stageflow_assets.providers.asr_whisperx import WhisperXASR

    asr = WhisperXASR(hf_token="hf_secret_value")
    assert asr.diarize
    assert "hf_secret_value" not in json.dumps(asr.parameters())


def test_aligned_words_get_times_where_wav2vec2_gave_none():
    """Words wav2vec2 can't time (numbers, symbols) take their neighbours' times, in order."""
    from stageflow_assets.providers.asr_whisperx import _from_aligned

    [segment] = _from_aligned([{
        "start": 1.0, "end": 4.0, "text": " It cost £13.60 today.",
        "words": [
            {"word": "It", "start": 1.0, "end": 1.2, "score": 0.9},
            {"word": "cost", "start": 1.3, "end": 1.6, "score": 0.8},
            {"word": "£13.60"},
            {"word": "today.", "start": 3.0, "end": 3.5, "score": 0.7},
        ],
    }], "en")
    starts = [w.start for w in segment.words]
    assert starts == sorted(starts)
    assert segment.words[2].start == 1.6 and segment.words[2].end == 3.0
    assert all(w.end >= w.start for w in segment.words)
    assert segment.text == "It cost £13.60 today."


# -- real speech, with the extra -----------------------------------------------------------------
@pytest.fixture(scope="module")
def whisperx_asr():
    from stageflow_assets.providers.asr_whisperx import WhisperXASR

    return WhisperXASR()


def _check_words(transcript: Transcript) -> None:
    words = [w for s in transcript.segments for w in s.words]
    assert words, "no word timings"
    assert all(s.words for s in transcript.segments if s.text.strip()), "a segment without words"
    assert all(0 <= w.start <= w.end <= transcript.duration + 0.5 for w in words)
    starts = [w.start for w in words]
    assert starts == sorted(starts), "word starts go backwards"


@needs_whisperx
@pytest.mark.slow
@pytest.mark.shared_data
@pytest.mark.parametrize("index", [0, 1, 2])
def test_librivox_clips_wer_and_word_timings(whisperx_asr, librivox_clips, index, record_property):
    if index >= len(librivox_clips):
        pytest.skip(f"only {len(librivox_clips)} LibriVox clips")
    wav, reference = librivox_clips[index]
    began = time.perf_counter()
    result = whisperx_asr.transcribe(wav)
    took = time.perf_counter() - began
    wer = jiwer.wer(reference, result.text, reference_transform=NORMALISE,
                    hypothesis_transform=NORMALISE)
    record_property("wer", round(wer, 4))
    print(f"\n{wav.name}: {result.duration:.1f}s audio in {took:.1f}s, WER {wer:.3f}, "
          f"{len(result.segments)} segments, alignment: {result.alignment}")
    assert result.language == "en"
    assert wer <= 0.25, (wer, result.text)
    _check_words(result)
    # the alignment path is recorded, and is honest about what is on this machine
    local = whisperx_asr.local_alignment_languages()
    if "en" in local:
        assert result.alignment == "wav2vec2"
    else:
        assert result.alignment == "whisper-word-timestamps (no alignment model for en)"
        assert result.align_model is None
    assert result.diarization == "off"
    # it round-trips through the plain Transcript the rest of the pipeline reads
    again = Transcript.model_validate_json(result.model_dump_json())
    assert [len(s.words) for s in again.segments] == [len(s.words) for s in result.segments]


@needs_whisperx
@pytest.mark.slow
@pytest.mark.shared_data
def test_language_without_alignment_model_does_not_crash(whisperx_asr, librivox_clips):
    """Welsh has no wav2vec2 model in whisperX at all (its ValueError case): Whisper times it."""
    wav, _ = min(librivox_clips, key=lambda clip: clip[0].stat().st_size)  # forcing a wrong
    result = whisperx_asr.transcribe(wav, language="cy")  # language makes Whisper slow
    assert result.language == "cy"
    assert result.alignment == "whisper-word-timestamps (no alignment model for cy)"
    _check_words(result)


@needs_whisperx
def test_no_alignment_model_anywhere_here_is_reported(tmp_path):
    """An empty `align_model_dir` (the offline case): nothing is downloaded, nothing aligns."""
    from stageflow_assets.providers.asr_whisperx import WhisperXASR

    empty = WhisperXASR(align_model_dir=str(tmp_path))
    assert empty.local_alignment_languages() == []
    assert empty._aligner("en") == "no alignment model for en"
    assert empty._aligner("xx") == "no alignment model for xx"
    assert not list(tmp_path.iterdir()), "something was downloaded"


def _tiny_untrained_wav2vec2(directory: Path) -> Path:
    """A 150 kB wav2vec2 CTC model with random weights and a letter vocabulary, built here.

    No aligner can be downloaded on this machine: this one exercises the wav2vec2 code path
    (loading from a local dir, whisperX's forced alignment, our conversion), not timing quality.
    """
    import torch
    from transformers import (Wav2Vec2Config, Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor,
                              Wav2Vec2ForCTC, Wav2Vec2Processor)

    chars = ["<pad>", "<s>", "</s>", "<unk>", "|", *"abcdefghijklmnopqrstuvwxyz'"]
    directory.mkdir()
    (directory / "vocab.json").write_text(json.dumps({c: i for i, c in enumerate(chars)}))
    tokenizer = Wav2Vec2CTCTokenizer(str(directory / "vocab.json"), word_delimiter_token="|")
    extractor = Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0,
                                         do_normalize=True, return_attention_mask=False)
    Wav2Vec2Processor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(directory)
    torch.manual_seed(0)
    config = Wav2Vec2Config(vocab_size=len(chars), hidden_size=32, num_hidden_layers=1,
                            num_attention_heads=2, intermediate_size=64, conv_dim=(32,) * 7,
                            num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
                            pad_token_id=0)
    Wav2Vec2ForCTC(config).save_pretrained(directory)
    return directory


@needs_whisperx
@pytest.mark.slow
@pytest.mark.shared_data
def test_wav2vec2_alignment_path_with_a_local_model(librivox_clips, tmp_path, monkeypatch):
    import nltk

    from stageflow_assets.providers.asr_whisperx import WhisperXASR

    model_dir = _tiny_untrained_wav2vec2(tmp_path / "w2v")
    asr = WhisperXASR(align_models={"en": str(model_dir)}, align_model_dir=str(tmp_path / "cache"))
    assert asr.local_alignment_languages() == ["en"]
    wav, reference = librivox_clips[0]

    # without nltk's punkt_tab (absent here; whisperX would try to download it) it falls back
    if not asr._punkt_available("en"):
        result = asr.transcribe(wav)
        assert result.alignment == "whisper-word-timestamps (no nltk punkt_tab data for en)"
        # an empty punkt_tab: nltk's default sentence splitter, enough for whisperX
        punkt = tmp_path / "nltk" / "tokenizers" / "punkt_tab" / "english"
        punkt.mkdir(parents=True)
        for name in ("collocations.tab", "sent_starters.txt", "abbrev_types.txt", "ortho_context.tab"):
            (punkt / name).touch()
        monkeypatch.setattr(nltk.data, "path", [str(tmp_path / "nltk"), *nltk.data.path])

    result = asr.transcribe(wav)
    assert result.alignment == "wav2vec2"
    assert result.align_model == str(model_dir)
    wer = jiwer.wer(reference, result.text, reference_transform=NORMALISE,
                    hypothesis_transform=NORMALISE)
    assert wer <= 0.25, (wer, result.text)
    _check_words(result)
    assert len([w for s in result.segments for w in s.words]) == len(result.text.split())
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").iterdir())


@needs_whisperx
@pytest.mark.slow
@pytest.mark.shared_data
def test_subtitles_cli_with_whisperx_backend(librivox_video, tmp_path):
    video, reference = librivox_video
    out = tmp_path / "out"
    result = run_cli("subtitles", video, "--lang", "es", "--out", out,
                     env={"STAGEFLOW_ASR_BACKEND": "whisperx"})
    assert result.returncode == 0, result.stderr[-3000:]
    job = result.value("job")[0]
    assert {f"{job}.es.srt", f"{job}.es.vtt", f"{job}.mkv"} <= {p.name for p in out.iterdir()}
    srt = pysubs2.load(str(out / f"{job}.es.srt"))
    assert len(srt) > 0 and all(e.end > e.start for e in srt)

    stage = Path(os.environ["STAGEFLOW_HOME"]) / "subtitles" / job / "03_transcript"
    manifest = json.loads((stage / "manifest.json").read_text())
    assert manifest["config"]["backend"] == "whisperx"
    assert "whisperx" in manifest["provider_versions"]
    transcript = json.loads((stage / "transcript.json").read_text())
    assert transcript["backend"] == "whisperx"
    assert transcript["alignment"].startswith(("wav2vec2", "whisper-word-timestamps"))
    hypothesis = " ".join(s["text"] for s in transcript["segments"])
    wer = jiwer.wer(reference, hypothesis, reference_transform=NORMALISE,
                    hypothesis_transform=NORMALISE)
    print(f"\nCLI whisperx: WER {wer:.3f}, alignment: {transcript['alignment']}")
    assert wer <= 0.25, (wer, hypothesis)


