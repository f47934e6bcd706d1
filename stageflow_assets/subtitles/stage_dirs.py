"""Where each subtitle stage lives on disk (`ROOT/subtitles/<job>/<dir>[/<lang>]`)."""

from stageflow_assets.core.paths import StageSpec

DOMAIN = "subtitles"
SOURCE_VIDEO = StageSpec(DOMAIN, "01_source_video")
AUDIO = StageSpec(DOMAIN, "02_audio")
TRANSCRIPT = StageSpec(DOMAIN, "03_transcript")
CUES = StageSpec(DOMAIN, "04_cues")
TRANSLATION = StageSpec(DOMAIN, "05_translation")
SUBTITLES = StageSpec(DOMAIN, "06_subtitles")
SUBTITLED_VIDEO = StageSpec(DOMAIN, "07_subtitled_video")
# the deliverables: `ROOT/outbox/subtitles/<job>/`, where users pick them up
OUTBOX = StageSpec(DOMAIN, "outbox", outbox=True)
