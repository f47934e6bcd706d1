"""Everything the vocabulary domain ships, with the resources it needs."""

import dagster as dg

from stageflow_assets.core.resources import SHARED
from stageflow_assets.vocabulary.assets import word_analysis, word_list
from stageflow_assets.vocabulary.batch_assets import claude_batch, claude_batch_requests, claude_batch_results
from stageflow_assets.vocabulary.checks import VOCABULARY_CHECKS
from stageflow_assets.vocabulary.deck_assets import anki_deck, anki_sync
from stageflow_assets.vocabulary.jobs import (
    anki_sync_job,
    claude_batch_ingest_job,
    claude_batch_job,
    vocabulary_deck_job,
)
from stageflow_assets.vocabulary.media_assets import card_images, pronunciation_audio
from stageflow_assets.vocabulary.outbox_assets import deck_outbox
from stageflow_assets.vocabulary.resources import vocabulary_resources
from stageflow_assets.vocabulary.schedules import nightly_deck_sync
from stageflow_assets.vocabulary.sensors import claude_batch_sensor, words_inbox_sensor

defs = dg.Definitions(
    assets=[word_list, claude_batch_requests, claude_batch, claude_batch_results, word_analysis,
            pronunciation_audio, card_images, anki_deck, anki_sync, deck_outbox],
    asset_checks=VOCABULARY_CHECKS,
    jobs=[vocabulary_deck_job, anki_sync_job, claude_batch_job, claude_batch_ingest_job],
    sensors=[words_inbox_sensor, claude_batch_sensor],
    schedules=[nightly_deck_sync],
    resources=vocabulary_resources(SHARED),
    executor=dg.in_process_executor,  # see stageflow_assets/definitions.py
)
