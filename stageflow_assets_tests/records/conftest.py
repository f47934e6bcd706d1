"""A journey as its stages leave it on disk: record_items.jsonl per stage dir (written by the real
Tracker), a journey.json with its options, a PNG made with Pillow and a WAV."""

from __future__ import annotations

import json
import math
import struct
import wave
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from stageflow_assets.core.paths import StagePaths
from stageflow_assets.records.tracker import Tracker

PROMPT = "Ein Fuchs springt über den faulen Hund am Fluss"
CHAIN = [  # (from, to, text): six hops through Latin, Cyrillic, CJK and Greek scripts
    ("en", "es", "Un zorro salta sobre el perro perezoso junto al río."),
    ("es", "ru", "Лиса прыгает через ленивую собаку у реки."),
    ("ru", "zh", "狐狸在河边跳过了懒惰的狗。"),
    ("zh", "el", "Η αλεπού πηδά πάνω από τον τεμπέλικο σκύλο στο ποτάμι."),
    ("el", "is", "Refurinn stekkur yfir lata hundinn við ána."),
    ("is", "en", "The fox leaps over the idle dog by the stream."),
]
SECRET_KEY = "sk-live-abcdefghijklmnop1234"
SECRET_PASSWORD = "pa55word-do-not-print"
RUN_ID = "0f0e0d0c-0b0a-4909-8807-060504030201"


@dataclass
class Journey:
    paths: StagePaths
    key: str
    image: Path
    audio: Path


def _png(path: Path) -> None:
    image = Image.new("RGB", (64, 48))
    image.putdata([(x * 4, y * 5, (x + y) % 256) for y in range(48) for x in range(64)])
    image.save(path)


def _wav(path: Path, seconds: float = 0.25, rate: int = 8000) -> None:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        frames = (int(12000 * math.sin(2 * math.pi * 440 * n / rate)) for n in range(int(seconds * rate)))
        out.writeframes(b"".join(struct.pack("<h", f) for f in frames))


def write_journey(root: Path, key: str = "fuchs-journey-0001") -> Journey:
    paths = StagePaths(root)
    job = paths.job_dir("journey", key)
    dirs = {n: job / name for n, name in
            (("1", "01_translation"), ("2", "02_interception"), ("3", "03_output_safety"), ("4", "04_media"))}
    for directory in dirs.values():
        directory.mkdir(parents=True)
    (job / "journey.json").write_text(json.dumps({"prompt": PROMPT, "options": {
        "perspective": "stille_post", "iterations": len(CHAIN), "safety_level": "youth",
        "outputs": [{"kind": "image", "size": [64, 48]}, {"kind": "music", "seconds": 0.25}],
        "llm": {"base_url": f"https://researcher:{SECRET_PASSWORD}@llm.example.org/v1", "api_key": SECRET_KEY},
    }}), encoding="utf-8")

    t = Tracker(run_id=RUN_ID)
    t.add("pipeline_start", "1", parameters={"perspective": "stille_post"})
    t.add("user_input", "1", content=PROMPT, parameters={"language": "de"})
    t.add("translation", "1", content="A fox jumps over the lazy dog by the river", backend="openai-compatible",
          model="smollm2-135m", duration_s=0.41, parameters={
              "temperature": 0.2, "api_key": SECRET_KEY,
              "base_url": f"https://researcher:{SECRET_PASSWORD}@llm.example.org/v1"})
    t.add("safety_check", "1", content="passed: no listed term", parameters={"level": "youth"}, duration_s=0.002)
    t.write(dirs["1"])

    t2 = Tracker(start_seq=t.next_seq, run_id=RUN_ID)
    t2.add("stage_transition", "2", content="1 -> 2")
    for n, (src, dst, text) in enumerate(CHAIN, start=1):
        t2.add("interception_iteration", "2", stage_iteration=n, content=text, backend="apertium",
               model=f"{src}-{dst}", duration_s=0.25 + n / 100,
               parameters={"source_language": src, "target_language": dst})
    t2.add("interception_final", "2", content=CHAIN[-1][2])
    t2.write(dirs["2"])

    t3 = Tracker(start_seq=t2.next_seq, run_id=RUN_ID)
    for index in (0, 1):
        t3.add("output_safety_check", "3", output_index=index, content="passed", parameters={"level": "youth"})
    t3.write(dirs["3"])

    image = dirs["4"] / "0" / "image.png"
    audio = dirs["4"] / "1" / "music.wav"
    for path in (image, audio):
        path.parent.mkdir()
    _png(image)
    _wav(audio)
    t4 = Tracker(start_seq=t3.next_seq, run_id=RUN_ID)
    t4.add("output_image", "4", output_index=0, backend="procedural", duration_s=0.05,
           files=[{"path": paths.relative(image)}], parameters={"width": 64, "height": 48, "seed": 7})
    t4.add("output_music", "4", output_index=1, backend="pretty-midi", duration_s=0.08,
           files=[{"path": paths.relative(audio), "media_type": "audio/wav"}], parameters={"seed": 7, "tempo": 96})
    t4.add("pipeline_complete", "4")
    t4.write(dirs["4"])
    assert not (t.dropped or t2.dropped or t3.dropped or t4.dropped)
    return Journey(paths, key, image, audio)


@pytest.fixture
def journey(tmp_path) -> Journey:
    return write_journey(tmp_path / "stageflow")
