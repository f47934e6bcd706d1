"""`subtitle_outbox`: a job's deliverables, where users pick them up."""

import shutil

import dagster as dg

from stageflow_assets.core.errors import BadInputError
from stageflow_assets.core.io_manager import FAN_IN
from stageflow_assets.core.manifest import StageManifest
from stageflow_assets.core.stage import (
    StageInput, StageWriter, one_line_failures, partition_parts, run_stage, stage_input,
)
from stageflow_assets.core.stage_store import StageStore
from stageflow_assets.subtitles import stage_dirs

from stageflow_assets.subtitles.automation import OUTBOX_CONDITION
from stageflow_assets.subtitles.partitions import job_language_partitions, subtitle_job_partitions

SUBTITLE_FORMATS = ("srt", "vtt", "ass")


@dg.asset(
    partitions_def=subtitle_job_partitions, group_name=stage_dirs.DOMAIN, code_version="1", kinds={"python"},
    automation_condition=OUTBOX_CONDITION, metadata=stage_dirs.OUTBOX.metadata,
    ins={"subtitles": dg.AssetIn(metadata={FAN_IN: True})},
)
@one_line_failures
def subtitle_outbox(
    context: dg.AssetExecutionContext, storage: StageStore, subtitled_video: StageManifest,
    subtitles: dict[str, StageManifest],
):
    """The job's deliverables in `$STAGEFLOW_HOME/outbox/subtitles/<job>/`: `<job>.<lang>.srt`,
    `.vtt` and `.ass` for every language the subtitled video carries, and `<job>.<mkv|mp4>`.

    The folder is this stage's directory: it is built beside its place and swapped in whole, so a
    reader sees the previous delivery or this one, never part of one. Materialized in the run that
    muxes the video (the CLI's, the inbox chain's, automation's).
    """
    paths = storage.paths
    job = str(context.partition_key)
    by_lang = {partition_parts(job_language_partitions.get_partition_key_from_str(k))[1]: m
               for k, m in subtitles.items()}
    languages = list(subtitled_video.config.get("languages") or [])
    container = subtitled_video.config.get("container", "mkv")
    missing = [lang for lang in languages if by_lang.get(lang) is None or by_lang[lang].status != "success"]
    delivered = subtitled_video.status == "success" and not missing
    deliverables: list[tuple[StageInput, str, str | None]] = []  # (what, name in the outbox, language)
    if delivered:
        deliverables.append((stage_input(paths, subtitled_video, "video"), f"{job}.{container}", None))
        deliverables += [(stage_input(paths, by_lang[lang], fmt), f"{job}.{lang}.{fmt}", lang)
                         for lang in languages for fmt in SUBTITLE_FORMATS]

    def work(out: StageWriter) -> None:
        if subtitled_video.status != "success":
            raise BadInputError(
                f"nothing to deliver for {job}: no subtitled video "
                f"({subtitled_video.details.get('skipped_reason', subtitled_video.status)})")
        if missing:
            raise BadInputError(f"the subtitles of {', '.join(missing)} changed or went since {job} was muxed: "
                                "materialize subtitled_video again", missing=missing)
        for source, name, lang in deliverables:
            shutil.copyfile(source.path, out.output(name, kind=source.kind, fmt=name.rsplit(".", 1)[1], language=lang))
        out.details.update(languages=languages, container=container, folder=str(out.directory),
                           files=[name for _, name, _ in deliverables])
        out.preview = "\n".join(f"- `{name}`" for _, name, _ in deliverables)

    return run_stage(
        context, paths, stage_dirs.OUTBOX, inputs=[source for source, _, _ in deliverables],
        config={"languages": languages, "container": container, "names": [n for _, n, _ in deliverables]},
        work=work,
    )
