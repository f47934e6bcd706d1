"""Journey stage 4: one media file per output configuration, made offline by default.

`OutputConfig` is one `--output SPEC` (an image, a piece of music or a video, with its size,
length, tempo, file format and backend). `make_offline` renders it without any service, every
choice drawn from (seed, prompt): the same pair gives byte-identical PNG and WAV files.

- image: a procedural landscape (sky gradient, sun or moon, fractal-noise clouds, layered
  ridges, sometimes a lake). The prompt's hash picks the palette and the mood, the seed (with the
  prompt) the composition.
- music: a seeded score (key, mode, tempo, chord progression, a two-bar motif developed into
  phrases, bass, arpeggio or pad, sometimes drums) synthesised with numpy into 16-bit stereo
  WAV; MP3 through ffmpeg's libmp3lame.
- video: the landscape animated (ridges drifting with parallax, clouds, the sun rising or
  setting, ripples) and encoded by ffmpeg to H.264 yuv420p MP4.

ComfyUI, the production backend for images, is `providers/comfyui.py`.
"""

from __future__ import annotations

import colorsys
import hashlib
import math
import re
import shutil
import tempfile
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from stageflow_assets.core.errors import BadInputError
from stageflow_assets.core.paths import TEMP_MARK, atomic_path
from stageflow_assets.providers.process import run_tool

IMAGE_MODEL = "procedural-v1"
MUSIC_MODEL = "score-synth-v1"
VIDEO_MODEL = "procedural-v1-animated"
KINDS = ("image", "music", "video")
BACKENDS = ("offline", "comfyui", "images")  # images: the OpenAI-compatible endpoint (providers/images.py)
FORMATS = {"image": ("png",), "music": ("wav", "mp3"), "video": ("mp4",)}
MEDIA_TYPES = {"png": "image/png", "wav": "audio/wav", "mp3": "audio/mpeg", "mp4": "video/mp4"}
DEFAULT_SIZE = {"image": (512, 512), "video": (320, 240)}
DEFAULT_SECONDS = {"music": 8.0, "video": 3.0}
DEFAULT_FPS = 12
SIDES = {"image": (16, 4096), "video": (16, 1920)}
MAX_SECONDS = {"music": 600.0, "video": 60.0}
MIN_SECONDS = 0.5
FPS_RANGE = (1, 60)
TEMPO_RANGE = (40, 240)
SAMPLE_RATE = 44100
# raw frames are handed to ffmpeg in files of at most this size; a longer video is encoded
# in parts and joined (the disk never holds the whole raw video)
RAW_CHUNK_BYTES = 256 * 2**20
SYNTAX = ("KIND[:OPTION,...], KIND image|music|video, options WxH, Ns, fps=N, tempo=N, "
          "png|wav|mp3|mp4, offline|comfyui|images (e.g. image:1024x768, music:20s,tempo=96,mp3, "
          "video:640x360,4s,fps=24)")


@dataclass(frozen=True)
class OutputConfig:
    """One requested output of a journey; unset fields take the kind's defaults."""

    kind: Literal["image", "music", "video"]
    width: int | None = None
    height: int | None = None
    seconds: float | None = None
    fps: int | None = None
    tempo: int | None = None
    format: str = ""
    backend: str = "offline"

    def __post_init__(self) -> None:
        problem = self._problem()
        if problem:
            raise BadInputError(f"output {self.kind!r}: {problem}", reason=problem)

    def _problem(self) -> str | None:
        kind = self.kind
        if kind not in KINDS:
            return f"unknown kind {kind!r} (image, music or video)"
        if self.backend not in BACKENDS:
            return f"unknown backend {self.backend!r} (offline, comfyui or images)"
        if self.backend != "offline" and kind != "image":
            return f"the {self.backend} backend makes images only"
        if self.format and self.format not in FORMATS[kind]:
            return f"{kind} is written as {' or '.join(FORMATS[kind])}, not {self.format}"
        sized = (self.width, self.height) != (None, None)
        if kind == "music" and sized:
            return "music takes no size"
        if sized and None in (self.width, self.height):
            return "give both width and height"
        if sized:
            low, high = SIDES[kind]
            if not all(low <= side <= high for side in (self.width, self.height)):
                return f"{kind} sides must be {low}-{high} pixels, not {self.width}x{self.height}"
        width, height = self.size
        if kind == "video" and (width % 2 or height % 2):
            return f"video sides must be even (H.264 yuv420p), not {width}x{height}"
        if self.backend == "comfyui" and (width % 8 or height % 8):
            return f"ComfyUI image sides must be multiples of 8, not {width}x{height}"
        if self.seconds is not None:
            if kind == "image":
                return "an image takes no length"
            if not MIN_SECONDS <= self.seconds <= MAX_SECONDS[kind]:
                return f"{kind} length must be {MIN_SECONDS:g}-{MAX_SECONDS[kind]:g} s, not {self.seconds:g} s"
        if self.fps is not None and (kind != "video" or not FPS_RANGE[0] <= self.fps <= FPS_RANGE[1]):
            return "fps is for video only" if kind != "video" else f"fps must be {FPS_RANGE[0]}-{FPS_RANGE[1]}, not {self.fps}"
        if self.tempo is not None and (kind != "music" or not TEMPO_RANGE[0] <= self.tempo <= TEMPO_RANGE[1]):
            return "tempo is for music only" if kind != "music" else f"tempo must be {TEMPO_RANGE[0]}-{TEMPO_RANGE[1]} bpm, not {self.tempo}"
        return None

    # ------------------------------------------------------------------ effective values
    @property
    def size(self) -> tuple[int, int]:
        """(width, height); (0, 0) for music."""
        if self.kind == "music":
            return (0, 0)
        if self.width is None:
            return DEFAULT_SIZE.get(self.kind, (0, 0))
        return (self.width, self.height or 0)

    @property
    def duration(self) -> float:
        """Seconds of music or video; 0 for an image."""
        return float(self.seconds if self.seconds is not None else DEFAULT_SECONDS.get(self.kind, 0.0))

    @property
    def frame_rate(self) -> int:
        return (self.fps or DEFAULT_FPS) if self.kind == "video" else 0

    @property
    def file_format(self) -> str:
        return self.format or FORMATS.get(self.kind, ("",))[0]

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.file_format]

    def label(self) -> str:
        """A short name: "image 512x512", "music 8 s wav", "video 320x240 3 s 12 fps"."""
        width, height = self.size
        if self.kind == "image":
            text = f"image {width}x{height}"
        elif self.kind == "music":
            text = f"music {self.duration:g} s {self.file_format}" + (f" {self.tempo} bpm" if self.tempo else "")
        else:
            text = f"video {width}x{height} {self.duration:g} s {self.frame_rate} fps"
        return text + (f" {self.backend}" if self.backend != "offline" else "")

    def as_dict(self) -> dict:
        """The effective settings (defaults filled in; None where a setting does not apply)."""
        width, height = self.size
        return {
            "kind": self.kind, "label": self.label(), "backend": self.backend,
            "format": self.file_format, "media_type": self.media_type,
            "width": width or None, "height": height or None,
            "seconds": self.duration if self.kind != "image" else None,
            "fps": self.frame_rate or None, "tempo": self.tempo,
        }

    @classmethod
    def parse(cls, spec: str) -> "OutputConfig":
        """An `--output SPEC` (see SYNTAX); BadInputError naming the spec when it is not one."""
        def bad(reason: str) -> BadInputError:
            return BadInputError(f"--output {spec!r}: {reason}; expected {SYNTAX}", spec=spec)

        kind, _, rest = spec.strip().lower().partition(":")
        if kind not in KINDS:
            raise bad(f"unknown kind {kind!r}" if kind else "no kind")
        fields: dict[str, object] = {}

        def put(name: str, value: object, option: str) -> None:
            if name in fields:
                raise bad(f"{option!r} repeats the {name}")
            fields[name] = value

        for option in (o.strip() for o in rest.split(",")) if rest.strip() else ():
            if match := re.fullmatch(r"(\d+)x(\d+)", option):
                put("size", (int(match[1]), int(match[2])), option)
            elif match := re.fullmatch(r"(\d+(?:\.\d+)?)s", option):
                put("seconds", float(match[1]), option)
            elif match := re.fullmatch(r"fps=(\d+)", option):
                put("fps", int(match[1]), option)
            elif match := re.fullmatch(r"(?:tempo=(\d+)|(\d+)bpm)", option):
                put("tempo", int(match[1] or match[2]), option)
            elif option in MEDIA_TYPES:
                put("format", option, option)
            elif option in BACKENDS:
                put("backend", option, option)
            else:
                raise bad(f"unknown option {option!r}" if option else "an empty option")
        width, height = fields.pop("size", (None, None))  # type: ignore[misc]
        try:
            return cls(kind=kind, width=width, height=height, **fields)  # type: ignore[arg-type]
        except BadInputError as exc:
            raise bad(exc.details["reason"]) from None


@dataclass(frozen=True)
class GeneratedMedia:
    """One file stage 4 made, and what made it."""

    path: Path
    media_type: str
    parameters: dict
    backend: str
    model: str | None
    duration_s: float
    sha256: str = field(default="", compare=False)


def make_offline(config: OutputConfig, prompt: str, seed: int, dst_dir: Path, stem: str) -> GeneratedMedia:
    """Render `config` without any service into `dst_dir/stem.<format>` (written atomically).
    `config.backend` is not looked at: this is the offline generator whatever it says."""
    if not stem or Path(stem).name != stem:
        raise ValueError(f"not a plain file stem: {stem!r}")
    started = time.perf_counter()
    dst = Path(dst_dir) / f"{stem}.{config.file_format}"
    if config.kind == "image":
        parameters, model = _write_image(config, prompt, seed, dst), IMAGE_MODEL
    elif config.kind == "music":
        parameters, model = _write_music(config, prompt, seed, dst), MUSIC_MODEL
    else:
        parameters, model = _write_video(config, prompt, seed, dst), VIDEO_MODEL
    return GeneratedMedia(
        path=dst, media_type=config.media_type,
        parameters={"prompt": prompt, "seed": seed, **config.as_dict(), **parameters, "numpy": np.__version__},
        backend="offline", model=model, duration_s=round(time.perf_counter() - started, 4),
        sha256=hashlib.sha256(dst.read_bytes()).hexdigest())


def _rng(purpose: str, *parts: object) -> np.random.Generator:
    """A generator seeded from a hash of `parts`: the same parts, the same numbers (for one numpy
    version; its version goes into the parameters)."""
    text = "\x00".join([purpose, *map(str, parts)])
    return np.random.default_rng(int.from_bytes(hashlib.sha256(text.encode()).digest(), "big"))


# ---------------------------------------------------------------------------- images / video
_MOOD_WORDS = {
    "night": ("night", "nacht", "moon", "mond", "star", "stern", "dark", "dunkel"),
    "dusk": ("sunset", "dusk", "evening", "abend", "sonnenuntergang", "twilight", "dämmerung"),
    "dawn": ("dawn", "sunrise", "morning", "morgen", "sonnenaufgang"),
    "day": ("day", "noon", "mittag", "bright", "sunny", "sonnig"),
}
_WATER_WORDS = ("sea", "lake", "ocean", "river", "water", "meer", "see", "ozean", "fluss", "wasser", "strand", "beach")
# (sky top lightness, horizon lightness, sky saturation, sun lightness, glow strength)
_MOODS = {"dawn": (0.45, 0.78, 0.55, 0.85, 0.55), "day": (0.52, 0.84, 0.55, 0.95, 0.35),
          "dusk": (0.22, 0.58, 0.75, 0.70, 0.75), "night": (0.05, 0.17, 0.45, 0.88, 0.25)}


def _smoothstep(x: np.ndarray) -> np.ndarray:
    return x * x * (3 - 2 * x)


def _noise2d(rng: np.random.Generator, height: int, width: int, cell: float, octaves: int) -> np.ndarray:
    """Fractal value noise in [0, 1]: random grids, `cell` pixels apart, smoothly interpolated."""
    out = np.zeros((height, width), np.float32)
    amp, norm = 1.0, 0.0
    for _ in range(octaves):
        ys = np.arange(height, dtype=np.float32) / max(cell, 1.0)
        xs = np.arange(width, dtype=np.float32) / max(cell, 1.0)
        y0, x0 = ys.astype(np.int32), xs.astype(np.int32)
        fy, fx = _smoothstep(ys - y0)[:, None], _smoothstep(xs - x0)[None, :]
        grid = rng.random((int(y0[-1]) + 2, int(x0[-1]) + 2), dtype=np.float32)
        across = grid[:, x0] + (grid[:, x0 + 1] - grid[:, x0]) * fx  # along x on the grid's rows first
        out += amp * (across[y0] + (across[y0 + 1] - across[y0]) * fy)
        norm += amp
        amp, cell = amp * 0.5, cell / 2
    return out / norm


def _noise1d(rng: np.random.Generator, length: int, cell: float, octaves: int) -> np.ndarray:
    out = np.zeros(length, np.float32)
    amp, norm = 1.0, 0.0
    for _ in range(octaves):
        xs = np.arange(length, dtype=np.float32) / max(cell, 1.0)
        x0 = xs.astype(np.int32)
        grid = rng.random(int(x0[-1]) + 2, dtype=np.float32)
        out += amp * (grid[x0] + (grid[x0 + 1] - grid[x0]) * _smoothstep(xs - x0))
        norm += amp
        amp, cell = amp * 0.5, cell / 2
    return out / norm


def _hls(hue: float, light: float, sat: float) -> np.ndarray:
    return np.array(colorsys.hls_to_rgb(hue % 1.0, min(max(light, 0.0), 1.0), min(max(sat, 0.0), 1.0)), np.float32)


def _lerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    return a + (b - a) * t


@dataclass
class _Ridge:
    heights: np.ndarray  # top edge (row) per column, over width + scroll span
    color: np.ndarray
    speed: float         # pixels per second


class _Landscape:
    """A seeded landscape that can be rendered at any moment of `seconds` (0: a still)."""

    def __init__(self, prompt: str, seed: int, width: int, height: int, seconds: float = 0.0) -> None:
        words = set(re.findall(r"\w+", prompt.lower()))
        prng = _rng("palette", prompt)            # the prompt alone: same prompt, same mood
        crng = _rng("composition", seed, prompt)  # the seed varies the picture
        self.width, self.height = width, height
        self.mood = next((m for m, ws in _MOOD_WORDS.items() if words & set(ws)),
                         str(prng.choice(list(_MOODS))))
        scheme = str(prng.choice(["analogous", "complementary", "triadic"]))
        hue = (0.58 + (prng.random() - 0.5) * 0.6 + crng.normal(0, 0.02)) % 1.0
        offset = {"analogous": 0.08, "complementary": 0.5, "triadic": 0.33}[scheme]
        top_l, horizon_l, sat, sun_l, self.glow = _MOODS[self.mood]
        warm = 0.07 if self.mood in ("dawn", "dusk") else hue
        self.sky_top = _hls(hue, top_l, sat)
        horizon = _hls(_mix_hue(hue, warm, 0.7), horizon_l, sat * 0.9)
        self.sun_color = _hls(0.12 if self.mood != "night" else hue, sun_l, 0.9 if self.mood != "night" else 0.15)
        self.cloud_color = _lerp(horizon, np.float32([1, 1, 1]), np.float32(0.35 if self.mood != "night" else 0.05))
        self.water = bool(words & set(_WATER_WORDS)) or bool(prng.random() < 0.3)

        rows = np.arange(height, dtype=np.float32)[:, None]
        self.rows, self.cols = rows, np.arange(width, dtype=np.float32)
        horizon_row = height * crng.uniform(0.45, 0.62)
        t = np.clip(rows / horizon_row, 0, 1)[..., None] ** 1.4
        self.sky = np.broadcast_to(_lerp(self.sky_top, horizon, t), (height, width, 3)).astype(np.float32)
        radius = math.hypot(width, height)
        ys, xs = rows - height / 2, self.cols[None, :] - width / 2
        self.vignette = (1 - 0.35 * ((xs ** 2 + ys ** 2) / (radius / 2) ** 2)).astype(np.float32)[..., None]

        self.sun_x = width * crng.uniform(0.15, 0.85)
        self.sun_y = horizon_row * crng.uniform(0.25, 0.8)
        self.sun_r = min(width, height) * crng.uniform(0.04, 0.09)
        self.sun_speed = height * 0.015 * {"dawn": -1, "dusk": 1}.get(self.mood, 0.3)
        self.water_line = int(height * crng.uniform(0.68, 0.8)) if self.water else height
        self.water_color = _lerp(self.sky_top, horizon, np.float32(0.5)) * np.float32(0.8)

        drift = width * crng.uniform(0.015, 0.04)  # nearest ridge, pixels per second
        span = int(math.ceil(drift * seconds)) + 2
        self.cloud_speed = width * 0.012
        self.cloud_cover = crng.uniform(0.48, 0.62)
        self.clouds = _noise2d(crng, height, width + int(self.cloud_speed * seconds) + 2, width * 0.35, 5)
        self.cloud_fade = np.clip(1.2 - rows / horizon_row, 0, 1) * np.float32(0.9)

        count = int(crng.integers(3, 6))
        self.texture = _noise2d(crng, height, width + span, width * 0.08, 3)  # rock and grass, shared
        ridge_hue = (hue + offset) % 1.0
        bottom = self.water_line if self.water else height
        self.ridges: list[_Ridge] = []
        for i in range(count):
            depth = i / max(count - 1, 1)  # 0: far, 1: near
            base = horizon_row + (bottom - horizon_row) * (0.05 + 0.55 * depth)
            amp = height * (0.22 - 0.1 * depth) * crng.uniform(0.6, 1.2)
            profile = _noise1d(crng, width + span, width * crng.uniform(0.25, 0.6), 5)
            if crng.random() < 0.5:  # mountains rather than hills
                profile = 1 - np.abs(2 * profile - 1)
            near = _hls(ridge_hue, 0.12 + 0.15 * (1 - depth) * (self.mood != "night"), 0.45)
            color = _lerp(horizon, near, np.float32(0.35 + 0.65 * depth))
            self.ridges.append(_Ridge(base - amp * profile, color, drift * (0.25 + 0.75 * depth)))

        self.stars = None
        if self.mood == "night":
            n = width * height // 700
            self.stars = (crng.integers(0, width, n), (crng.random(n) ** 1.5 * horizon_row).astype(int),
                          crng.uniform(0.3, 1.0, n).astype(np.float32), crng.uniform(0, 6.3, n))

        self.info = {"mood": self.mood, "scheme": scheme, "hue": round(hue, 4), "ridges": count,
                     "water": self.water, "sun": [round(self.sun_x, 1), round(self.sun_y, 1), round(self.sun_r, 1)]}

    def render(self, t: float = 0.0) -> np.ndarray:
        """The picture `t` seconds in, as (height, width, 3) uint8."""
        width, height = self.width, self.height
        img = self.sky.copy()
        if self.stars is not None:
            xs, ys, bright, phase = self.stars
            twinkle = (bright * (0.75 + 0.25 * np.sin(phase + t * 3.0))).astype(np.float32)[:, None]
            img[ys, xs] = _lerp(img[ys, xs], np.float32([1, 1, 0.95]), twinkle)
        sun_y = self.sun_y + self.sun_speed * t
        dist = np.sqrt((self.cols[None, :] - self.sun_x) ** 2 + (self.rows - sun_y) ** 2)
        glow = np.exp(-((dist / (self.sun_r * 5)) ** 2)) * np.float32(self.glow)
        img = _lerp(img, self.sun_color, glow[..., None])
        img = _lerp(img, self.sun_color, np.clip(self.sun_r - dist + 0.5, 0, 1)[..., None])

        shift = int(self.cloud_speed * t)
        clouds = self.clouds[:, shift:shift + width]
        alpha = np.clip((clouds - self.cloud_cover) / 0.12, 0, 1) * self.cloud_fade
        shade = self.cloud_color * (0.75 + 0.4 * clouds[..., None])
        img = _lerp(img, shade, alpha[..., None])

        for ridge in self.ridges:
            offset = ridge.speed * t
            top = np.interp(self.cols + offset, np.arange(ridge.heights.size), ridge.heights).astype(np.float32)
            first = min(max(int(top.min()), 0), self.water_line)  # rows above it keep the sky
            band = slice(first, self.water_line)
            mask = np.clip(self.rows[band] - top[None, :] + 0.5, 0, 1)[..., None]
            tex = self.texture[band, int(offset):int(offset) + width, None]
            img[band] = _lerp(img[band], ridge.color * (0.88 + 0.24 * tex), mask)

        if self.water_line < height:
            line = self.water_line
            k = np.arange(height - line)
            src = np.clip(line - 1 - k, 0, height - 1)
            wobble = (np.sin(k * 0.45 + t * 2.5) * (0.5 + k * 0.05)).astype(np.int32)
            cols = np.clip(np.arange(width)[None, :] + wobble[:, None], 0, width - 1)
            depth = (0.3 + 0.4 * k / max(height - line, 1)).astype(np.float32)[:, None, None]
            img[line:] = _lerp(img[src[:, None], cols] * np.float32(0.8), self.water_color, depth)
        img *= self.vignette
        return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def _mix_hue(a: float, b: float, t: float) -> float:
    """The hue a `t` of the way to b, the short way round the circle."""
    delta = ((b - a + 0.5) % 1.0) - 0.5
    return (a + delta * t) % 1.0


def _write_image(config: OutputConfig, prompt: str, seed: int, dst: Path) -> dict:
    from PIL import Image, PngImagePlugin

    width, height = config.size
    scene = _Landscape(prompt, seed, width, height)
    info = PngImagePlugin.PngInfo()
    info.add_text("Software", f"stageflow_assets {IMAGE_MODEL}")
    info.add_text("Comment", f"seed {seed}")
    with atomic_path(dst) as tmp:
        Image.fromarray(scene.render(0.0), "RGB").save(tmp, format="PNG", pnginfo=info, compress_level=6)
    return {"generator": IMAGE_MODEL, "scene": scene.info}


def _write_video(config: OutputConfig, prompt: str, seed: int, dst: Path) -> dict:
    width, height = config.size
    fps = config.frame_rate
    frames = max(1, round(config.duration * fps))
    scene = _Landscape(prompt, seed, width, height, seconds=frames / fps)
    per_part = max(1, RAW_CHUNK_BYTES // (width * height * 3))
    encode = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p"]
    dst.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{dst.name}{TEMP_MARK}frames-", dir=dst.parent) as work, \
            atomic_path(dst) as tmp:
        parts = []
        for first in range(0, frames, per_part):
            raw = Path(work) / "frames.rgb"
            with raw.open("wb") as out:
                for n in range(first, min(first + per_part, frames)):
                    out.write(scene.render(n / fps).tobytes())
            whole = per_part >= frames
            part = tmp if whole else Path(work) / f"part{len(parts):04d}.h264"
            _ffmpeg(["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-framerate", str(fps),
                     "-i", raw, *encode, "-f", "mp4" if whole else "h264", part], timeout_s=60 + frames * 0.5)
            parts.append(part)
        if len(parts) > 1:  # H.264 streams joined end to end are one stream; muxed without re-encoding
            joined = Path(work) / "joined.h264"
            with joined.open("wb") as out:
                for part in parts:
                    with part.open("rb") as src:
                        shutil.copyfileobj(src, out)
                    part.unlink()
            _ffmpeg(["-f", "h264", "-framerate", str(fps), "-i", joined, "-c", "copy", "-f", "mp4", tmp],
                    timeout_s=60 + frames * 0.05)
    return {"generator": VIDEO_MODEL, "frames": frames, "codec": "h264", "encoder": "libx264",
            "pix_fmt": "yuv420p", "crf": 20, "preset": "veryfast", "parts": len(parts), "scene": scene.info}


def _ffmpeg(args: list, timeout_s: float) -> None:
    run_tool(["ffmpeg", "-nostdin", "-v", "error", "-y", *args[:-1], "-map_metadata", "-1",
              "-fflags", "+bitexact", args[-1]], timeout_s=timeout_s)


# ---------------------------------------------------------------------------- music
# name: (the scale in semitones, the scale degrees the melody may use; None: all)
_MODES: dict[str, tuple[tuple[int, ...], tuple[int, ...] | None]] = {
    "major": ((0, 2, 4, 5, 7, 9, 11), None),
    "minor": ((0, 2, 3, 5, 7, 8, 10), None),
    "dorian": ((0, 2, 3, 5, 7, 9, 10), None),
    "mixolydian": ((0, 2, 4, 5, 7, 9, 10), None),
    "major pentatonic": ((0, 2, 4, 5, 7, 9, 11), (0, 1, 2, 4, 5)),
    "minor pentatonic": ((0, 2, 3, 5, 7, 8, 10), (0, 2, 3, 4, 6)),
}
# chord roots as scale degrees (0 = the tonic), one chord per bar
_PROGRESSIONS = ((0, 4, 5, 3), (0, 5, 3, 4), (5, 3, 0, 4), (0, 3, 4, 3), (0, 3, 0, 4), (1, 4, 0, 0), (0, 6, 5, 4))
_NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
# voice: (harmonic amplitudes, attack s, release s, decay time constant s or 0 for sustained, gain, pan -1..1)
_VOICES = {
    "lead": ((1.0, 0.35, 0.15, 0.05), 0.012, 0.10, 0.0, 0.30, 0.25),
    "bass": ((1.0, 0.0, 0.11, 0.0, 0.04), 0.008, 0.06, 0.0, 0.34, 0.0),
    "arp": ((1.0, 0.5, 0.3, 0.2), 0.004, 0.05, 0.22, 0.16, -0.35),
    "pad": ((1.0, 0.25, 0.08), 0.30, 0.40, 0.0, 0.08, -0.1),
}


@dataclass(frozen=True)
class _Note:
    start: float  # seconds
    length: float
    pitch: int    # MIDI note number; for drums 0
    voice: str


@dataclass
class _Score:
    notes: list[_Note]
    info: dict


def _score(prompt: str, seed: int, seconds: float, tempo: int | None) -> _Score:
    """The notes of `seconds` of music: a motif developed over a looping chord progression."""
    rng = _rng("music", seed, prompt)
    key = int(rng.integers(0, 12))
    mode = str(rng.choice(list(_MODES)))
    scale, melodic = _MODES[mode]
    tempo = tempo or int(rng.integers(72, 133))
    progression = _PROGRESSIONS[int(rng.integers(len(_PROGRESSIONS)))]
    accompaniment = str(rng.choice(["arpeggio", "pad"]))
    drums = bool(rng.random() < 0.6)
    beat = 60.0 / tempo
    bars = math.ceil(seconds / (4 * beat))

    def pitch(degree: int, base: int) -> int:
        octave, index = divmod(degree, 7)
        return base + key + 12 * octave + scale[index]

    def motif() -> list[tuple[int, int, int]]:
        """(eighth-note slot, length in eighths, degree above the chord root) over two bars."""
        notes, slot, degree = [], 0, int(rng.choice([0, 2, 4]))
        while slot < 16:
            length = int(rng.choice([1, 1, 2, 2, 2, 3, 4]))
            if slot % 8 == 0:  # strong beats land on a chord tone
                degree = min((0, 2, 4, 7), key=lambda d: abs(d - degree))
            if melodic is not None and degree % 7 not in melodic:
                degree += 1 if (degree + 1) % 7 in melodic else -1
            if slot == 0 or rng.random() > 0.15:  # else a rest
                notes.append((slot, min(length, 16 - slot), degree))
            slot += length
            degree = int(np.clip(degree + rng.choice([-2, -1, -1, 0, 1, 1, 2, 3, -3]), -3, 9))
        return notes

    first, second = motif(), motif()
    notes: list[_Note] = []
    for bar in range(bars):
        start = bar * 4 * beat
        root = progression[bar % len(progression)]
        chord = [pitch(root + step, 48) for step in (0, 2, 4)]
        phrase = (bar // 2) % 4  # A A B A, two bars each
        tune = second if phrase == 2 else first
        for slot, length, degree in tune:
            if (slot < 8) == (bar % 2 == 0):
                variation = 1 if phrase == 1 and slot >= 12 else 0
                at = start + (slot % 8) * beat / 2
                notes.append(_Note(at, length * beat / 2, pitch(root + degree + variation, 60), "lead"))
        for half in (0, 2):
            notes.append(_Note(start + half * beat, 2 * beat * 0.9, pitch(root, 36), "bass"))
        if accompaniment == "arpeggio":
            cycle = chord + [chord[0] + 12]
            notes += [_Note(start + i * beat / 2, beat / 2, cycle[i % 4], "arp") for i in range(8)]
        else:
            notes += [_Note(start, 4 * beat, p, "pad") for p in chord]
        if drums:
            notes += [_Note(start + b * beat, 0.3, 0, "kick") for b in (0, 2)]
            notes += [_Note(start + i * beat / 2, 0.05, 0, "hat") for i in range(8)]
    info = {"key": _NOTE_NAMES[key], "mode": mode, "tempo": tempo, "time_signature": "4/4",
            "progression": [int(d) + 1 for d in progression], "accompaniment": accompaniment,
            "drums": drums, "bars": bars}
    notes = [n for n in notes if n.start < seconds]
    return _Score(notes, {**info, "notes": len(notes)})


def _voice(note: _Note, samples: int, noise: np.ndarray) -> np.ndarray:
    """One note as mono samples (`samples` long, release included)."""
    t = np.arange(samples, dtype=np.float32) / SAMPLE_RATE
    if note.voice == "kick":  # a falling sine
        phase = 2 * np.pi * (45 * t + 75 * 0.04 * (1 - np.exp(-t / 0.04)))
        return (np.sin(phase) * np.exp(-t / 0.12) * 0.55).astype(np.float32)
    if note.voice == "hat":  # a short burst of brightened noise
        burst = np.diff(noise[: samples + 1])
        return (burst * np.exp(-t / 0.012) * 0.05).astype(np.float32)
    harmonics, attack, release, decay, gain, _ = _VOICES[note.voice]
    freq = 440.0 * 2 ** ((note.pitch - 69) / 12)
    wave_ = np.zeros(samples, np.float32)
    for k, amp in enumerate(harmonics, start=1):
        if amp and k * freq < SAMPLE_RATE / 2:
            wave_ += np.float32(amp) * np.sin(np.float32(2 * np.pi * k * freq) * t)
    envelope = np.minimum(t / attack, 1.0)
    if decay:
        envelope *= np.exp(-t / decay)
    hold = note.length
    envelope *= np.clip(1 - (t - hold) / release, 0, 1)
    return (wave_ * envelope * np.float32(gain / sum(harmonics))).astype(np.float32)


def _render(score: _Score, seconds: float, seed: int, prompt: str) -> np.ndarray:
    """The score as (2, samples) float32 in [-1, 1]: voices panned, an echo, normalised."""
    total = int(round(seconds * SAMPLE_RATE))
    wet = np.zeros((2, total), np.float32)
    dry = np.zeros((2, total), np.float32)
    noise = _rng("noise", seed, prompt).uniform(-1, 1, SAMPLE_RATE).astype(np.float32)
    cache: dict[tuple, np.ndarray] = {}
    for note in score.notes:
        release = _VOICES[note.voice][2] if note.voice in _VOICES else 0.0
        samples = int((note.length + release) * SAMPLE_RATE)
        key = (note.voice, note.pitch, samples)
        if key not in cache:
            cache[key] = _voice(note, samples, noise)
        sound = cache[key]
        i = int(note.start * SAMPLE_RATE)
        n = min(samples, total - i)
        pan = _VOICES[note.voice][5] if note.voice in _VOICES else 0.0
        target = dry if note.voice in ("kick", "hat") else wet
        target[0, i:i + n] += sound[:n] * np.float32(math.cos((pan + 1) * math.pi / 4))
        target[1, i:i + n] += sound[:n] * np.float32(math.sin((pan + 1) * math.pi / 4))
    delay = int(0.75 * 60 / score.info["tempo"] * SAMPLE_RATE)
    mix = wet.copy()
    for tap in range(1, 4):  # a ping-pong echo: each repeat on the other side
        d = delay * tap
        if d < total:
            source = wet[::-1] if tap % 2 else wet
            mix[:, d:] += source[:, :total - d] * np.float32(0.32 ** tap)
    mix += dry
    peak = float(np.abs(mix).max())
    if peak > 0:
        mix *= np.float32(0.89 / peak)
    fade_in, fade_out = int(0.01 * SAMPLE_RATE), int(min(1.0, seconds / 4) * SAMPLE_RATE)
    mix[:, :fade_in] *= np.linspace(0, 1, fade_in, dtype=np.float32)
    mix[:, total - fade_out:] *= np.linspace(1, 0, fade_out, dtype=np.float32)
    return mix


def _write_music(config: OutputConfig, prompt: str, seed: int, dst: Path) -> dict:
    seconds = config.duration
    score = _score(prompt, seed, seconds, config.tempo)
    pcm = (np.round(_render(score, seconds, seed, prompt) * 32767).astype("<i2")).T.tobytes()
    parameters = {"generator": MUSIC_MODEL, "duration_s": seconds, "tempo": score.info["tempo"],
                  "sample_rate": SAMPLE_RATE, "channels": 2, "sample_width_bits": 16, "score": score.info}
    with atomic_path(dst) as tmp:
        wav = tmp if config.file_format == "wav" else tmp.with_name(tmp.name + ".wav")
        try:
            with wave.open(str(wav), "wb") as out:
                out.setnchannels(2)
                out.setsampwidth(2)
                out.setframerate(SAMPLE_RATE)
                out.writeframes(pcm)
            if config.file_format == "mp3":
                _ffmpeg(["-f", "wav", "-i", wav, "-c:a", "libmp3lame", "-b:a", "192k", "-f", "mp3", tmp],
                        timeout_s=60 + seconds)
                parameters.update(codec="mp3", encoder="libmp3lame", bitrate="192k")
        finally:
            if wav != tmp:
                wav.unlink(missing_ok=True)
    return parameters
