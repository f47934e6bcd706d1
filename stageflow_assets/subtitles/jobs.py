"""A video is several runs, because one run targets one partitions definition:
the job-level chain, one run per language, then the mux. The stage runtime tags every run
that touches a job with `stageflow/job`, whoever launched it."""

import dagster as dg

from stageflow_assets.subtitles.assets import audio, cues, source_video, transcript
from stageflow_assets.subtitles.mux_assets import subtitled_video
from stageflow_assets.subtitles.outbox_assets import subtitle_outbox
from stageflow_assets.subtitles.subtitle_assets import subtitles
from stageflow_assets.subtitles.translation_assets import translation

DOMAIN_TAGS = {"stageflow/domain": "subtitles"}

subtitle_source_job = dg.define_asset_job(
    "subtitle_source_job",
    selection=dg.AssetSelection.assets(source_video, audio, transcript, cues),
    description="Probe, demux and transcribe one video, and cut its cues.",
    tags=DOMAIN_TAGS,
)
subtitle_language_job = dg.define_asset_job(
    "subtitle_language_job",
    selection=dg.AssetSelection.assets(translation, subtitles),
    description="Translate one video's cues into one language and write its subtitle files.",
    tags=DOMAIN_TAGS,
)
subtitle_mux_job = dg.define_asset_job(
    "subtitle_mux_job",
    selection=dg.AssetSelection.assets(subtitled_video, subtitle_outbox),
    description="Mux a video's subtitle tracks into an MKV and deliver the files to its outbox folder.",
    tags=DOMAIN_TAGS,
)
