"""Where each journey stage lives on disk (`ROOT/journey/<journey>/<dir>`)."""

from stageflow_assets.core.paths import StageSpec

DOMAIN = "journey"
PROMPT = StageSpec(DOMAIN, "01_prompt")
INTERCEPTION = StageSpec(DOMAIN, "02_interception")
OUTPUT_CLEARANCE = StageSpec(DOMAIN, "03_output_clearance")
MEDIA = StageSpec(DOMAIN, "04_media")
ALL = (PROMPT, INTERCEPTION, OUTPUT_CLEARANCE, MEDIA)
# the research record's JSON export, written when a journey's run ends (not a stage: no asset owns it)
RECORD_DIR = "record"
