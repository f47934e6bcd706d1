"""Stage 4: the journey's media, one file per output configuration.

Offline, every output is made procedurally from (prompt, seed): the same pair gives the same
bytes. With `STAGEFLOW_COMFYUI_URL` set, images go to ComfyUI unless their spec says `offline`;
with `STAGEFLOW_IMAGES_URL` (the vocabulary domain's OpenAI-compatible images endpoint) and no
ComfyUI, they go there. A spec may name its backend: `image:offline`, `image:comfyui`, `image:images`.
"""


import dataclasses
import io
import os
import tempfile
import time
from pathlib import Path

import dagster as dg

from stageflow_assets.core.hashing import sha256_file
from stageflow_assets.core.manifest import StageManifest
from stageflow_assets.core.stage import PROVIDER_RETRY, StageWriter, one_line_failures, run_stage, stage_input
from stageflow_assets.core.stage_store import StageStore
from stageflow_assets.journey import stage_dirs
from stageflow_assets.journey.assets import refuse_after_block
from stageflow_assets.core.errors import BadInputError
from stageflow_assets.journey.offline_media import KINDS, GeneratedMedia, OutputConfig, make_offline
from stageflow_assets.journey.models import ClearanceDoc
from stageflow_assets.journey.partitions import journey_partitions
from stageflow_assets.journey.previews import media_preview
from stageflow_assets.journey.recording import StageRecording, next_seq_after
from stageflow_assets.journey.registry import load_journey
from stageflow_assets.journey.resources import JourneySettings
from stageflow_assets.providers.comfyui import ComfyUIResource
from stageflow_assets.providers.images import ImageGenerator
from stageflow_assets.records.models import FileRef


def output_config(spec: str, settings: JourneySettings) -> OutputConfig:
    """The spec's configuration; an image that names no backend takes the configured default."""
    config = OutputConfig.parse(spec)
    options = spec.partition(":")[2].lower().split(",")
    named = any(option in ("offline", "comfyui", "images") for option in options)
    if config.kind == "image" and settings.image_backend != "offline" and not named:
        config = dataclasses.replace(config, backend=settings.image_backend)
    return config


def from_image_api(images: ImageGenerator, config: OutputConfig, prompt: str, seed: int, dst_dir: str,
                   stem: str) -> GeneratedMedia:
    """An image from the OpenAI-compatible images endpoint, kept as PNG (a JPEG or WebP answer is
    converted losslessly from what was received). The endpoint takes no seed: it is recorded only."""
    from PIL import Image

    if not images.enabled:
        raise BadInputError(f"output {config.label()!r} asks for the images endpoint: set STAGEFLOW_IMAGES_URL "
                            "(and STAGEFLOW_IMAGES_API_KEY if it needs one), or use image:offline")
    width, height = config.size
    started = time.perf_counter()
    data, ext = images.generate(prompt, size=f"{width}x{height}")
    dst = Path(dst_dir) / f"{stem}.png"
    if ext == "png":
        dst.write_bytes(data)
    else:
        Image.open(io.BytesIO(data)).save(dst, format="PNG")
    return GeneratedMedia(
        path=dst, media_type="image/png",
        parameters={**images.parameters(), "prompt": prompt, "seed_recorded_only": seed,
                    "size": f"{width}x{height}", "received_format": ext},
        backend="openai-images", model=getattr(images, "model", None),
        duration_s=round(time.perf_counter() - started, 4))


def media_name(index: int, config: OutputConfig) -> str:
    return f"{index}.{config.kind}.{config.file_format}"


@dg.asset(
    partitions_def=journey_partitions, group_name=stage_dirs.DOMAIN, code_version="1", kinds={"python", "ffmpeg"},
    retry_policy=PROVIDER_RETRY, metadata=stage_dirs.MEDIA.metadata,
)
@one_line_failures
def journey_media(context: dg.AssetExecutionContext, storage: StageStore, comfyui: ComfyUIResource,
                  images: ImageGenerator, journey_settings: JourneySettings, output_clearance: StageManifest):
    """Stage 4: the journey's media, one file per output configuration (image, music, video).

    Named `<n>.<kind>.<format>` in the stage dir. Offline: a seeded procedural landscape (PNG),
    a synthesised score (WAV or MP3), the landscape animated (H.264 MP4); ComfyUI for images
    when configured. Each output is an `output_image|music|video` item with its file's sha256
    and every parameter passed to the generator.
    """
    paths = storage.paths
    job = load_journey(paths, str(context.partition_key))
    source = stage_input(paths, output_clearance, "clearance")
    stage_config = {"seed": job.seed, "outputs": job.outputs, "image_backend": journey_settings.image_backend}
    if journey_settings.image_backend == "comfyui" or any("comfyui" in spec for spec in job.outputs):
        stage_config["comfyui"] = comfyui.parameters()
    if journey_settings.image_backend == "images" or any("images" in spec for spec in job.outputs):
        stage_config["images"] = images.parameters()

    def work(out: StageWriter) -> None:
        clearance = ClearanceDoc.model_validate_json(source.path.read_text(encoding="utf-8"))
        if clearance.blocked:
            raise refuse_after_block(job.job, 3, clearance.blocked[0].summary)
        configs = [output_config(spec, journey_settings) for spec in job.outputs]
        made = []
        with StageRecording("4", next_seq_after(output_clearance), context.run.run_id).around(out) as rec, \
                tempfile.TemporaryDirectory(dir=out.directory, prefix=".scratch-") as scratch:
            rec.transition("3")
            for index, config in enumerate(configs, start=1):
                with out.timed(f"output_{index}"):
                    if config.backend == "comfyui":
                        media = comfyui.generate(config, clearance.text, job.seed, scratch, f"{index}")
                    elif config.backend == "images":
                        media = from_image_api(images, config, clearance.text, job.seed, scratch, f"{index}")
                    else:
                        media = make_offline(config, clearance.text, job.seed, scratch, f"{index}")
                name = media_name(index, config)
                target = out.output(name, kind=config.kind, fmt=config.file_format)
                os.replace(media.path, target)
                made.append((index, config.label(), name, target))
                rec.add(f"output_{config.kind}", output_index=index, content=config.label(),
                        files=[FileRef(path=paths.relative(out.directory / name),
                                       sha256=media.sha256 or sha256_file(target), bytes=target.stat().st_size,
                                       media_type=media.media_type)],
                        parameters=media.parameters, backend=media.backend, model=media.model,
                        duration_s=media.duration_s)
            rec.add("pipeline_complete", content=f"{len(made)} output(s)")
        out.details.update(outputs=len(made), media=[{"index": i, "output": label, "file": name}
                                                     for i, label, name, _ in made],
                           output_configs=[c.as_dict() for c in configs])
        out.preview = media_preview(made)

    result = run_stage(context, paths, stage_dirs.MEDIA, inputs=[source], config=stage_config, work=work)
    links = {f"output_{n}": dg.MetadataValue.path(str(paths.absolute(record.path)))
             for n, record in enumerate((r for r in result.value.outputs if r.kind in KINDS), start=1)}
    return dg.Output(result.value, metadata={**result.metadata, **links}, data_version=result.data_version)
