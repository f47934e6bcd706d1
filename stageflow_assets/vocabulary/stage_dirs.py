"""Where each vocabulary stage lives on disk (`ROOT/vocabulary/<job>/<dir>`)."""

from stageflow_assets.core.paths import StageSpec

DOMAIN = "vocabulary"
WORD_LIST = StageSpec(DOMAIN, "01_word_list")
WORD_ANALYSIS = StageSpec(DOMAIN, "02_word_analysis")
PRONUNCIATION_AUDIO = StageSpec(DOMAIN, "03_pronunciation_audio")
CARD_IMAGES = StageSpec(DOMAIN, "04_card_images")
ANKI_DECK = StageSpec(DOMAIN, "05_anki_deck")
ANKI_SYNC = StageSpec(DOMAIN, "06_anki_sync")
# the Message Batches path (Claude lexicon, long lists): between the list and the analysis
CLAUDE_BATCH_REQUESTS = StageSpec(DOMAIN, "01a_claude_batch_requests")
CLAUDE_BATCH = StageSpec(DOMAIN, "01b_claude_batch")
CLAUDE_BATCH_RESULTS = StageSpec(DOMAIN, "01c_claude_batch_results")
# the deliverable: `ROOT/outbox/vocabulary/<job>/`, where users pick it up
OUTBOX = StageSpec(DOMAIN, "outbox", outbox=True)
