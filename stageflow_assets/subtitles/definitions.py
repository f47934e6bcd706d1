"""Everything the subtitle domain ships, with the resources it needs."""

import dagster as dg

from stageflow_assets.core.resources import SHARED
from stageflow_assets.subtitles.assets import audio, cues, source_video, transcript
from stageflow_assets.subtitles.jobs import (
    subtitle_language_job,
    subtitle_mux_job,
    subtitle_source_job,
)
from stageflow_assets.subtitles.mux_assets import subtitled_video
from stageflow_assets.subtitles.outbox_assets import subtitle_outbox
from stageflow_assets.subtitles.resources import subtitle_resources
from stageflow_assets.subtitles.subtitle_assets import subtitles
from stageflow_assets.subtitles.translation_assets import translation
from stageflow_assets.subtitles.sensors import inbox_chain_sensor, video_inbox_sensor

defs = dg.Definitions(
    assets=[source_video, audio, transcript, cues, translation, subtitles, subtitled_video, subtitle_outbox],
    jobs=[subtitle_source_job, subtitle_language_job, subtitle_mux_job],
    sensors=[video_inbox_sensor, inbox_chain_sensor],
    resources=subtitle_resources(SHARED),
    executor=dg.in_process_executor,  # see stageflow_assets/definitions.py
)
