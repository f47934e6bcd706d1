"""Speech and IPA without a process per word, and an audio check that decodes every file in
process: the same bytes and transcriptions as the `espeak-ng` command, and every corrupt file
caught. All real: espeak-ng, libespeak-ng, PyAV's FFmpeg, Dagster."""

from __future__ import annotations

import subprocess
import wave
from pathlib import Path

import dagster as dg
import pytest

from stageflow_assets.core.errors import BadInputError
from stageflow_assets.core.io_manager import StageManifestIOManager
from stageflow_assets.core.stage_store import StageStore
from stageflow_assets.providers import tts as tts_module
from stageflow_assets.providers import translate as translate_module
from stageflow_assets.providers.audio_files import decode_audio
from stageflow_assets.providers.images import ImageGenerator
from stageflow_assets.providers.lexicon import WordNetLexicon, _find_line
from stageflow_assets.providers.media import MediaTools
from stageflow_assets.providers.translate import ApertiumTranslator
from stageflow_assets.providers.tts import EspeakTTS
from stageflow_assets.vocabulary.analysis import Analyser
from stageflow_assets.vocabulary.checks import AUDIO_FILES_CHECK, VOCABULARY_CHECKS, VocabularyChecks
from stageflow_assets.vocabulary.definitions import defs as vocabulary_defs
from stageflow_assets.vocabulary.optional_inputs import MANIFEST_IF_ANY, ManifestIfAny
from stageflow_assets.vocabulary.models import WordEntry
from stageflow_assets.vocabulary.partitions import word_list_partitions
from stageflow_assets.vocabulary.registry import register_word_list

WORDS = ["line", "ice cream", "borrow", "thought", "Mr. Smith", "hello, world", "well-being", "e.g.", "C#",
         "<script>alert(1)</script>", "naïve café", "a"]


def command_wav(text: str, path: Path, speed: int = 150) -> bytes:
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", str(speed), "-w", str(path)], input=text + "\n", text=True,
                   check=True, capture_output=True)
    return path.read_bytes()


def test_the_worker_speaks_the_commands_wav_byte_for_byte(tmp_path):
    """Each word in a fresh fork: the library's carried-over state never leaks into the next word."""
    tts = EspeakTTS()
    worker = tts._worker("speak", "en").ready()
    try:
        for round_ in range(2):  # the same words again, after all the others: still the same bytes
            for i, text in enumerate(WORDS):
                out = tmp_path / f"w{round_}_{i}.wav"
                assert worker.ask({"op": "speak", "text": text, "out": str(out), "timeout_s": 30}, 60) == {"ok": True}
                assert out.read_bytes() == command_wav(text, tmp_path / "command.wav"), text
    finally:
        worker.close()


def test_ipa_from_one_worker_is_what_the_command_prints():
    found = EspeakTTS().ipa_many(WORDS, "en")
    for text, ipa in zip(WORDS, found):
        printed = subprocess.run(["espeak-ng", "-q", "--ipa", "-v", "en-us"], input=text + "\n", text=True,
                                 capture_output=True, check=True).stdout
        assert ipa == " ".join(printed.split()), text


def test_mp3s_are_the_same_bytes_whatever_the_order_and_the_number_of_workers(tmp_path):
    words = ["apple", "bread", "borrow", "ice cream", "thought", "water", "cheese", "orange"]
    first = [(w, tmp_path / "a" / f"{i}.mp3") for i, w in enumerate(words)]
    second = [(w, tmp_path / "b" / f"{i}.mp3") for i, w in enumerate(words)][::-1]
    for jobs in (first, second):
        jobs[0][1].parent.mkdir()
    assert EspeakTTS(workers=2).synthesize_many(first, "en") == [""] * len(words)
    assert EspeakTTS(workers=1).synthesize_many(second, "en") == [""] * len(words)
    for (_, a), (_, b) in zip(first, second[::-1]):
        assert a.read_bytes() == b.read_bytes()
    for text, path in first:
        decoded = decode_audio(path, "mp3")
        command_wav(text, tmp_path / "ref.wav")
        with wave.open(str(tmp_path / "ref.wav")) as ref:
            seconds = ref.getnframes() / ref.getframerate()
        assert abs(decoded.seconds - seconds) < 0.06, text  # the whole word, within a frame of padding
    assert not list(tmp_path.glob("*/.*.wav"))  # no scratch WAVs left


def counting(monkeypatch) -> dict[str, list]:
    """Every tool process the providers start, by module."""
    started: dict[str, list] = {"tts.run_tool": [], "tts.start_tool": [], "translate.run_tool": []}

    def wrap(module, name):
        real = getattr(module, name)

        def counted(args, *a, **k):
            started[f"{module.__name__.rsplit('.', 1)[1]}.{name}"].append(list(args))
            return real(args, *a, **k)
        monkeypatch.setattr(module, name, counted)

    wrap(tts_module, "run_tool")
    wrap(tts_module, "start_tool")
    wrap(translate_module, "run_tool")
    return started


def test_speaking_a_list_starts_one_process_per_core_not_two_per_word(tmp_path, monkeypatch):
    started = counting(monkeypatch)
    words = [w for w in ("apple bread cheese water milk egg butter rice soup salt sugar coffee tea orange "
                              "lemon carrot potato tomato onion garlic").split()]
    issues = EspeakTTS(workers=2).synthesize_many([(w, tmp_path / f"{w}.mp3") for w in words], "en")
    assert issues == [""] * 20 and all((tmp_path / f"{w}.mp3").stat().st_size > 0 for w in words)
    assert started["tts.run_tool"] == [] and len(started["tts.start_tool"]) == 2


def test_analysing_a_list_runs_each_backend_once(tmp_path, monkeypatch):
    started = counting(monkeypatch)
    words = [WordEntry(line=i, headword=w) for i, w in enumerate(
        "apple bread cheese water milk egg butter rice soup salt sugar coffee tea orange lemon".split() + ["to borrow"])]
    analyser = Analyser(WordNetLexicon(), EspeakTTS(), ApertiumTranslator(), "en", "es", tmp_path / "cache")
    rows = analyser.analyse(words)
    assert all(r.ipa_valid and r.senses and r.translation for r in rows)
    # espeak-ng: the voice check and one IPA worker; Apertium: the list, then the one verb's
    # analysis, dictionary and generation
    assert len(started["tts.run_tool"]) == 1 and len(started["tts.start_tool"]) == 1
    assert len(started["translate.run_tool"]) == 4


# --- the audio check ----------------------------------------------------------------------------


def corrupt(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "cut short":
        path.write_bytes(data[: len(data) * 2 // 3])
    elif how == "zeroed middle":
        path.write_bytes(data[:1200] + b"\0" * 800 + data[2000:])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "not mp3":
        command_wav("cat", path)


@pytest.mark.parametrize("how,reason", [("cut short", "cut short"), ("zeroed middle", "does not decode"),
                                        ("empty", "empty"), ("not mp3", "codec pcm_s16le")])
def test_decode_audio_catches_what_a_header_read_passes(tmp_path, how, reason):
    path = tmp_path / "x.mp3"
    EspeakTTS().synthesize("butterfly", "en", path)
    assert decode_audio(path, "mp3").seconds > 0.3
    corrupt(path, how)
    with pytest.raises(BadInputError, match=reason):
        decode_audio(path, "mp3")


def test_the_audio_check_blocks_the_deck_on_corrupt_files_and_runs_no_tool(tmp_path, monkeypatch):
    """An encoder that damages four of five files: the blocking check names each and the deck is
    not built; no ffprobe (nor any ffmpeg) runs, the check decodes in process."""
    damage = {"apple": "cut short", "butterfly": "zeroed middle", "water": "empty", "cheese": "not mp3"}
    tts = EspeakTTS()
    names = {tts.media_name(word, "en"): how for word, how in damage.items()}
    real_encode = tts_module.encode_mp3

    def damaging_encode(pcm: bytes, rate: int, target: Path) -> None:
        real_encode(pcm, rate, target)
        how = names.get(target.name[1:].removesuffix(".partial"))
        if how == "not mp3":
            with wave.open(str(target), "wb") as out:
                out.setnchannels(1), out.setsampwidth(2), out.setframerate(rate), out.writeframes(pcm)
        elif how:
            corrupt(target, how)

    started: list[list[str]] = []
    real_popen = subprocess.Popen

    class RecordingPopen(real_popen):
        def __init__(self, args, *more, **kwargs):
            started.append([str(a) for a in args])
            super().__init__(args, *more, **kwargs)

    monkeypatch.setattr(tts_module, "encode_mp3", damaging_encode)
    monkeypatch.setattr(subprocess, "Popen", RecordingPopen)
    store = StageStore(home=str(tmp_path / "home"))
    words = tmp_path / "list.txt"
    words.write_text("apple\nbutterfly\nwater\ncheese\norange\n", encoding="utf-8")
    job = register_word_list(store.paths, words, "Check Deck").job
    assets = [d for d in vocabulary_defs.assets if d.key.to_user_string() not in ("anki_sync", "deck_outbox")]
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(word_list_partitions.name, [job])
        result = dg.materialize(
            [*assets, *VOCABULARY_CHECKS], partition_key=job, instance=instance, raise_on_error=False,
            selection=dg.AssetSelection.assets("word_list", "word_analysis", "pronunciation_audio", "anki_deck"),
            resources={"storage": store, "io_manager": StageManifestIOManager(store=store),
                       MANIFEST_IF_ANY: ManifestIfAny(store=store),
                       "lexicon": WordNetLexicon(), "tts": tts, "translator": ApertiumTranslator(),
                       "images": ImageGenerator(), "media": MediaTools(), "vocab_checks": VocabularyChecks()})
    evaluation = {e.check_name: e for e in result.get_asset_check_evaluations()}[AUDIO_FILES_CHECK]
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR
    bad = evaluation.metadata["bad"].value
    by_how = {how: bad.get(name, "") for name, how in names.items()}
    assert len(bad) == 4 and evaluation.metadata["files"].value == 5  # `orange` is intact
    assert "cut short" in by_how["cut short"] and "does not decode" in by_how["zeroed middle"]
    assert "empty" in by_how["empty"] and "pcm_s16le" in by_how["not mp3"]
    assert "anki_deck" not in {e.step_key for e in result.get_step_success_events()}  # blocked
    # the tools' own command lines (after setpriv's `--`), Dagster's log tailers aside
    commands = [args[args.index("--") + 1:] if "--" in args else args for args in started]
    tools = [Path(c[1]).name if Path(c[0]).name.startswith("python") else Path(c[0]).name for c in commands]
    assert not {"ffprobe", "ffmpeg"} & set(tools), tools
    ours = [t for t in tools if t in ("espeak-ng", "espeak_worker.py")]
    # two voice checks, one IPA worker, two speech workers: for five words, as for five thousand
    assert sorted(ours) == ["espeak-ng", "espeak-ng", "espeak_worker.py", "espeak_worker.py", "espeak_worker.py"]


def test_find_line_in_a_sorted_file(tmp_path):
    import mmap

    path = tmp_path / "index"
    path.write_bytes(b"  1 header line\n  2 header\na x\nab y\nb_c z\nbc w\nzz last")
    with path.open("rb") as fh:
        data = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    for key, line in [(b"a", b"a x"), (b"ab", b"ab y"), (b"b_c", b"b_c z"), (b"bc", b"bc w"), (b"zz", b"zz last")]:
        assert _find_line(data, key) == line
    for missing in (b"0", b"aa", b"b", b"zzz"):
        assert _find_line(data, missing) is None


def test_wordnet_index_search_matches_a_full_read():
    """The binary search answers every lemma of a sample as reading the whole index does."""
    index = WordNetLexicon()
    from stageflow_assets.providers.lexicon import _load

    loaded = _load(index.wordnet_dir)
    rows = [l for l in Path("/usr/share/wordnet/index.verb").read_text().splitlines() if not l.startswith("  ")]
    for line in rows[::37]:
        parts = line.split()
        p_cnt = int(parts[3])
        assert loaded.entry(parts[0])["verb"] == ([int(o) for o in parts[6 + p_cnt:]], int(parts[5 + p_cnt]))
    assert loaded.entry("xyzzy") == {} and loaded.version == "3.0"
