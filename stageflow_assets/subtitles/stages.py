"""Where each subtitle stage lives on disk (`ROOT/subtitles/<job>/<dir>[/<lang>]`)."""

from stageflow_assets.core.stage import StageSpec

DOMAIN = "subtitles"
SOURCE_VIDEO = StageSpec(DOMAIN, "01_source_video")
AUDIO = StageSpec(DOMAIN, "02_audio")
TRANSCRIPT = StageSpec(DOMAIN, "03_transcript")
TRANSLATION = StageSpec(DOMAIN, "04_translation")
SUBTITLES = StageSpec(DOMAIN, "05_subtitles")
SUBTITLED_VIDEO = StageSpec(DOMAIN, "06_subtitled_video")
