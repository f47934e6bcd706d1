"""espeak-ng as one long-lived process: IPA for many words, and each word's speech in a fork.

The `espeak-ng` command is a thin shell around libespeak-ng; starting it costs a process, its
libraries and its voice data for every word (and the MP3 another process, ffmpeg). Speaking
many words in one process is no answer either: the library keeps synthesis state between
utterances (its pitch-flutter index, a function static nothing resets), so the second word a
process speaks comes out a sample or two different from the same word spoken first, and a
file's bytes would depend on the words spoken before it. The command is deterministic only
because each run speaks once.

So this worker loads the library and the voice once, never speaks itself, and forks a child
per word: every child starts from the state a fresh `espeak-ng -w` starts from and writes the
WAV that command would write, byte for byte, for a fork (a few milliseconds) instead of a
process start. The worker imports nothing big: the larger a process, the slower its forks
(PyAV's libraries double the cost), so the MP3 is encoded by the caller.

IPA comes from espeak-ng's phoneme trace while it synthesises quietly, exactly as
`espeak-ng -q --ipa` does. That synthesis moves the state above, so a worker is started for
one job: `ipa` (answers transcriptions) or `speak` (forks speech), never both.

Standalone on purpose (stdlib and ctypes only): it runs as a script, without the package's
imports. Requests and replies are JSON lines on stdin/stdout:
  ready   → {"ready": true, "voice": bool, "rate": 22050, "version": "1.51"}
  {"op": "ipa", "texts": [...]}                       → {"ipa": [...]}
  {"op": "speak", "text": "...", "out": "/x.wav", "timeout_s": 60} → {"ok": true} | {"ok": false, "error": "..."}
"""

from __future__ import annotations

import ctypes
import json
import math
import os
import signal
import sys
import wave

AUDIO_OUTPUT_SYNCHRONOUS = 2
INITIALIZE_DONT_EXIT = 0x8000  # report errors instead of exit() inside the library
# the command's flags for text it reads: espeakCHARS_AUTO | espeakPHONEMES | espeakENDPAUSE
SYNTH_FLAGS = 0x0000 | 0x0100 | 0x1000
POS_CHARACTER = 1
PARAM_RATE = 1
PHONEMES_IPA = 0x02
# the command reads stdin line by line into a 1000-byte buffer and hands the library all of it
LINE_BYTES = 1000

CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class VoiceSelector(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("languages", ctypes.c_char_p), ("identifier", ctypes.c_char_p),
                ("gender", ctypes.c_ubyte), ("age", ctypes.c_ubyte), ("variant", ctypes.c_ubyte),
                ("xx1", ctypes.c_ubyte), ("score", ctypes.c_int), ("spare", ctypes.c_void_p)]


class Espeak:
    """libespeak-ng set up as `espeak-ng -v VOICE -s SPEED` sets it up."""

    def __init__(self, voice: str, speed: int) -> None:
        lib = self.lib = ctypes.CDLL("libespeak-ng.so.1")
        libc = self.libc = ctypes.CDLL("libc.so.6")
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Info.argtypes = [ctypes.c_void_p]
        lib.espeak_Info.restype = ctypes.c_char_p
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByProperties.argtypes = [ctypes.POINTER(VoiceSelector)]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetPhonemeTrace.argtypes = [ctypes.c_int, ctypes.c_void_p]
        lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                     ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        libc.open_memstream.restype = ctypes.c_void_p
        libc.open_memstream.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_size_t)]
        libc.fclose.argtypes = [ctypes.c_void_p]
        libc.free.argtypes = [ctypes.c_void_p]
        self.rate = lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, None, INITIALIZE_DONT_EXIT)
        if self.rate <= 0:
            raise RuntimeError("libespeak-ng did not initialise (is espeak-ng-data installed?)")
        self.version = (lib.espeak_Info(None) or b"unknown").decode("utf-8", "replace")
        self.chunks: list[bytes] = []
        self.collect = True
        self._callback = CALLBACK(self._on_samples)  # kept referenced: the library holds the pointer
        lib.espeak_SetSynthCallback(self._callback)
        self.voice_found = self._set_voice(voice)
        if speed > 0:
            lib.espeak_SetParameter(PARAM_RATE, speed, 0)

    def _set_voice(self, name: str) -> bool:
        if self.lib.espeak_SetVoiceByName(name.encode()) == 0:
            return True
        # as the command does: a language name when no voice file has that name
        selector = VoiceSelector(languages=name.encode())
        return self.lib.espeak_SetVoiceByProperties(ctypes.byref(selector)) == 0

    def _on_samples(self, wav, count, _events) -> int:
        if self.collect and wav and count > 0:
            self.chunks.append(ctypes.string_at(wav, count * 2))
        return 0

    def _synth(self, text: str) -> None:
        line = (text + "\n").encode("utf-8")
        if len(line) >= LINE_BYTES:
            raise ValueError(f"{len(line)} bytes is longer than espeak-ng reads as one line")
        buffer = ctypes.create_string_buffer(line, LINE_BYTES)
        self.lib.espeak_Synth(buffer, LINE_BYTES, 0, POS_CHARACTER, 0, SYNTH_FLAGS, None, None)
        self.lib.espeak_Synchronize()

    def pcm(self, text: str) -> bytes:
        """16-bit mono samples at `self.rate`, as `espeak-ng -w` writes them after the header."""
        self.chunks, self.collect = [], True
        self._synth(text)
        return b"".join(self.chunks)

    def ipa(self, text: str) -> str:
        """What `espeak-ng -q --ipa` prints for the line `text`, on one line."""
        data, size = ctypes.c_void_p(), ctypes.c_size_t()
        trace = self.libc.open_memstream(ctypes.byref(data), ctypes.byref(size))
        self.lib.espeak_SetPhonemeTrace(PHONEMES_IPA, trace)
        self.collect = False
        try:
            self._synth(text)
        finally:
            self.lib.espeak_SetPhonemeTrace(0, None)
            self.libc.fclose(trace)
        try:
            out = ctypes.string_at(data, size.value).decode("utf-8", "replace")
        finally:
            self.libc.free(data)
        return " ".join(out.split())


def write_wav(pcm: bytes, rate: int, path: str) -> None:
    """The WAV `espeak-ng -w` writes: a 44-byte PCM header, then the samples."""
    with wave.open(path, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm)


def speak(engine: Espeak, text: str, out: str, timeout_s: float) -> dict:
    """Speak `text` into the WAV `out` in a forked child (see the module docstring for why)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns, never touches the parent's stdout
        code = 1
        try:
            os.close(read_end)
            signal.alarm(max(1, math.ceil(timeout_s)))  # a hung synthesis dies instead of hanging the worker
            pcm = engine.pcm(text)
            if not pcm:
                os.write(write_end, f"espeak-ng produced no audio for {text[:40]!r}".encode())
            else:
                write_wav(pcm, engine.rate, out)
                code = 0
        except BaseException as exc:  # noqa: BLE001 - reported to the parent, whatever it was
            os.write(write_end, f"{type(exc).__name__}: {exc}"[:500].encode("utf-8", "replace"))
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        message = pipe.read().decode("utf-8", "replace")
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        signal_number = os.WTERMSIG(status)
        why = f"timed out after {timeout_s:g}s" if signal_number == signal.SIGALRM else f"killed by signal {signal_number}"
        return {"ok": False, "error": f"espeak-ng {why} for {text[:40]!r}"}
    if os.WEXITSTATUS(status) != 0 or message:
        return {"ok": False, "error": message or f"speech for {text[:40]!r} failed"}
    return {"ok": True}


def ipa_or_blank(engine: Espeak, text: str) -> str:
    try:
        return engine.ipa(text)
    except ValueError:  # longer than a line: no transcription, which the caller reports
        return ""


def reply(message: dict) -> None:
    sys.stdout.buffer.write(json.dumps(message, ensure_ascii=False).encode("utf-8") + b"\n")
    sys.stdout.buffer.flush()


def main(argv: list[str]) -> int:
    mode, voice, speed = argv[1], argv[2], int(argv[3])
    try:
        engine = Espeak(voice, speed)
    except (OSError, RuntimeError) as exc:
        reply({"ready": False, "error": str(exc)})
        return 1
    reply({"ready": True, "voice": engine.voice_found, "rate": engine.rate, "version": engine.version})
    for line in sys.stdin.buffer:
        request = json.loads(line)
        op = request.get("op")
        if op == "ipa" and mode == "ipa":
            reply({"ipa": [ipa_or_blank(engine, text) for text in request["texts"]]})
        elif op == "speak" and mode == "speak":
            reply(speak(engine, request["text"], request["out"], float(request.get("timeout_s", 60))))
        else:
            reply({"error": f"a {mode} worker does not answer {op!r}"})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
