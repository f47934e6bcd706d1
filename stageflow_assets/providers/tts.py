"""Offline pronunciation with espeak-ng: IPA transcriptions and spoken MP3s.

Both come from espeak-ng's own library in worker processes (`espeak_worker.py`), not from one
`espeak-ng` and one `ffmpeg` process per word: a deck's IPA from one worker, its speech from
`workers` of them (one per core), each forking a child per word that starts from the state a
fresh `espeak-ng` starts from and encodes the MP3 in process. A word's samples are therefore the
`espeak-ng -w` command's, byte for byte, and the MP3 is encoded with bitexact flags, so a file's
name can be a hash of what determines its bytes (text, voice, engine, encoder): the same word
always lands in the same file, which is what lets a stage reuse it and Anki deduplicate it.
"""

from __future__ import annotations

import collections
import functools
import hashlib
import importlib.metadata
import json
import queue
import subprocess
import sys
import threading
import wave
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dagster as dg

from stageflow_assets.core.errors import ProviderError
from stageflow_assets.providers.process import run_tool, start_tool, stop_process_group, tool_version

# ISO 639-1 → espeak-ng voice where the bare code is not the voice people expect
_VOICES = {"en": "en-us", "pt": "pt-br", "zh": "cmn", "fr": "fr-fr"}
ENCODER = "libmp3lame vbr q5 mono, espeak-ng's 22050 Hz, bitexact (PyAV)"
# bump when the synthesis or encoding changes, so old files get new names instead of lying
AUDIO_RECIPE = "2"
WORKER_SCRIPT = Path(__file__).with_name("espeak_worker.py")
# `-qscale:a 5` as ffmpeg's command line sets it
MP3_QUALITY = 5
FF_QP2LAMBDA = 118
IPA_BATCH = 250  # texts per request: a reply within the timeout even on a loaded machine


def _espeak_version(binary: str) -> str:
    out = tool_version(binary, "--version")  # "eSpeak NG text-to-speech: 1.51  Data at: ..."
    parts = out.split(":")[1].split() if ":" in out else out.split()
    return parts[0] if parts else "unknown"


@functools.lru_cache(maxsize=1)
def _encoder_version() -> str:
    # the PyAV wheel pins the FFmpeg and LAME it bundles; it cannot change under a running process
    return f"pyav {importlib.metadata.version('av')}"


class _Worker:
    """One `espeak_worker.py` process, asked one JSON line at a time."""

    def __init__(self, mode: str, voice: str, speed: int, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.proc = start_tool([sys.executable, str(WORKER_SCRIPT), mode, voice, str(speed)])
        self.lines: queue.Queue[bytes | None] = queue.Queue()
        self.stderr: collections.deque[str] = collections.deque(maxlen=20)
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._drain, daemon=True).start()
        self.voice_found: bool | None = None

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def _drain(self) -> None:
        for line in self.proc.stderr:
            self.stderr.append(line.decode("utf-8", "replace").strip())

    def ready(self) -> _Worker:
        hello = self.receive(self.timeout_s)
        if not hello.get("ready"):
            raise ProviderError(f"espeak-ng could not start: {hello.get('error', 'no reason given')}")
        self.voice_found = bool(hello.get("voice"))
        return self

    def ask(self, request: dict, timeout_s: float) -> dict:
        self.send(request)
        return self.receive(timeout_s)

    def send(self, request: dict) -> None:
        try:
            self.proc.stdin.write(json.dumps(request, ensure_ascii=False).encode("utf-8") + b"\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError):
            pass  # it died: the next receive says so, with its stderr

    def receive(self, timeout_s: float) -> dict:
        try:
            line = self.lines.get(timeout=timeout_s)
        except queue.Empty:
            self.close()
            raise ProviderError(f"espeak-ng timed out after {timeout_s:g}s") from None
        if line is None:
            self.proc.wait(timeout=10)
            why = self.stderr[-1] if self.stderr else f"exit {self.proc.returncode}"
            raise ProviderError(f"espeak-ng worker ended unexpectedly: {why}", stderr="\n".join(self.stderr))
        return json.loads(line)

    def close(self) -> None:
        """End it; children it forked die with it (one process group)."""
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()  # a worker between requests exits on end of input
                self.proc.wait(timeout=2)
            except (OSError, ValueError, subprocess.TimeoutExpired):  # then by signal
                stop_process_group(self.proc, grace_s=1)
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                pipe.close()
            except OSError:
                pass


class EspeakTTS(dg.ConfigurableResource):
    """espeak-ng for IPA (`-q --ipa`) and speech, encoded to MP3 (LAME through PyAV)."""

    espeak: str = "espeak-ng"
    timeout_s: float = 60
    speed_wpm: int = 150
    workers: int = 2  # speech processes at once: one per core

    def voice_for(self, language: str) -> str:
        return _VOICES.get(language.lower(), language.lower())

    def parameters(self, language: str) -> dict[str, object]:
        return {"engine": "espeak-ng", "voice": self.voice_for(language), "speed_wpm": self.speed_wpm,
                "encoder": ENCODER, "recipe": AUDIO_RECIPE}

    def versions(self) -> dict[str, str]:
        return {"espeak-ng": _espeak_version(self.espeak), "encoder": _encoder_version()}

    def has_voice(self, language: str) -> bool:
        result = run_tool([self.espeak, "-q", "--ipa", "-v", self.voice_for(language)],
                          timeout_s=self.timeout_s, input_text="a\n", check=False)
        return result.returncode == 0

    def _worker(self, mode: str, language: str) -> _Worker:
        return _Worker(mode, self.voice_for(language), self.speed_wpm, self.timeout_s)

    def ipa(self, text: str, language: str) -> str:
        """espeak-ng's IPA for `text`, one line."""
        return self.ipa_many([text], language)[0]

    def ipa_many(self, texts: list[str], language: str) -> list[str]:
        """What `espeak-ng -q --ipa` prints for each text, on one line each, from one process."""
        if not texts:
            return []
        worker = self._worker("ipa", language)
        try:
            if not worker.ready().voice_found:
                raise ProviderError(f"espeak-ng has no voice {self.voice_for(language)!r}")
            found: list[str] = []
            for start in range(0, len(texts), IPA_BATCH):
                chunk = texts[start:start + IPA_BATCH]
                found += worker.ask({"op": "ipa", "texts": chunk}, self.timeout_s)["ipa"]
            return found
        finally:
            worker.close()

    def media_name(self, text: str, language: str) -> str:
        versions = self.versions()
        recipe = "|".join([text, self.voice_for(language), str(self.speed_wpm), ENCODER, AUDIO_RECIPE,
                           versions["espeak-ng"], versions["encoder"]])
        digest = hashlib.sha256(recipe.encode("utf-8")).hexdigest()[:16]
        return f"tts_{self.voice_for(language)}_{digest}.mp3"

    def synthesize(self, text: str, language: str, target: Path) -> None:
        """Speak `text` into the MP3 `target`."""
        issue = self.synthesize_many([(text, target)], language)[0]
        if issue:
            raise ProviderError(issue, text=text[:200])

    def synthesize_many(self, jobs: list[tuple[str, Path]], language: str) -> list[str]:
        """Speak each text into its MP3 path, `workers` at a time: per job "" when it worked,
        else why not (one word espeak-ng cannot speak is that word's problem, not the batch's).

        Each worker's thread encodes the previous word's WAV while the worker speaks the next.
        """
        if not jobs:
            return []
        issues = [""] * len(jobs)
        # started here, in the step's thread: they die with it (the parent-death signal)
        workers = [self._worker("speak", language) for _ in range(max(1, min(self.workers, len(jobs))))]
        try:
            for worker in workers:
                if not worker.ready().voice_found:
                    raise ProviderError(f"espeak-ng has no voice {self.voice_for(language)!r}")
            todo = iter(range(len(jobs)))
            lock = threading.Lock()

            def encode(index: int) -> None:
                text, target = jobs[index]
                wav = _wav_beside(target)
                try:
                    encode_mp3_from_wav(wav, target)
                except (OSError, ValueError, EOFError, wave.Error) as exc:
                    issues[index] = f"MP3 encoding failed for {text[:40]!r}: {exc}"
                finally:
                    wav.unlink(missing_ok=True)

            def serve(worker: _Worker) -> None:
                spoken: int | None = None  # the word whose WAV waits to be encoded
                while True:
                    with lock:
                        index = next(todo, None)
                    if index is not None:
                        text, target = jobs[index]
                        worker.send({"op": "speak", "text": text, "out": str(_wav_beside(target)),
                                     "timeout_s": self.timeout_s})
                    if spoken is not None:
                        encode(spoken)
                    if index is None:
                        return
                    answer = worker.receive(self.timeout_s + 10)
                    spoken = index if answer.get("ok") else None
                    if not answer.get("ok"):
                        issues[index] = answer.get("error") or f"no speech for {jobs[index][0][:40]!r}"

            pool = ThreadPoolExecutor(len(workers), thread_name_prefix="espeak")
            try:
                for future in [pool.submit(serve, w) for w in workers]:
                    future.result()
            except BaseException:
                for worker in workers:  # the threads waiting on them return at once
                    worker.close()
                raise
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
        finally:
            for worker in workers:
                worker.close()
            for _, target in jobs:
                _wav_beside(target).unlink(missing_ok=True)
        return issues


def _wav_beside(target: Path) -> Path:
    return target.with_name(f".{target.name}.wav")


def encode_mp3(pcm: bytes, rate: int, target: Path) -> None:
    """Mono 16-bit PCM → MP3: LAME VBR quality 5 (what `ffmpeg -qscale:a 5` asks for:
    global_quality = 5 × FF_QP2LAMBDA with the qscale flag), no version strings, no timestamps."""
    import av

    with av.open(str(target), "w", format="mp3", options={"fflags": "+bitexact"}) as container:
        stream = container.add_stream("libmp3lame", rate=rate, options={
            "flags": "+bitexact+qscale", "global_quality": str(MP3_QUALITY * FF_QP2LAMBDA)})
        stream.layout = "mono"
        frame = av.AudioFrame(format="s16p", layout="mono", samples=len(pcm) // 2)
        frame.planes[0].update(pcm)
        frame.sample_rate = rate
        frame.pts = 0
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def encode_mp3_from_wav(wav: Path, target: Path) -> None:
    with wave.open(str(wav), "rb") as source:
        if (source.getnchannels(), source.getsampwidth()) != (1, 2):
            raise ValueError(f"{wav.name}: not 16-bit mono")
        rate, pcm = source.getframerate(), source.readframes(source.getnframes())
    if not pcm:
        raise ValueError(f"{wav.name}: no samples")
    encode_mp3(pcm, rate, target)
