"""A deck is one run (list → analysis → media → deck → outbox); pushing it into Anki is a second, on request."""

import dagster as dg

from stageflow_assets.core.outbox import NO_NOTICE_TAG
from stageflow_assets.vocabulary.assets import word_analysis, word_list
from stageflow_assets.vocabulary.batch_assets import claude_batch, claude_batch_requests, claude_batch_results
from stageflow_assets.vocabulary.deck_assets import anki_deck, anki_sync
from stageflow_assets.vocabulary.media_assets import card_images, pronunciation_audio
from stageflow_assets.vocabulary.outbox_assets import deck_outbox

DOMAIN_TAGS = {"stageflow/domain": "vocabulary"}

vocabulary_deck_job = dg.define_asset_job(
    "vocabulary_deck_job",
    selection=dg.AssetSelection.assets(word_list, word_analysis, pronunciation_audio, card_images, anki_deck,
                                       deck_outbox),
    description="Parse a word list, analyse each word, speak it, build the Anki deck and deliver it to its outbox.",
    tags=DOMAIN_TAGS,
)
anki_sync_job = dg.define_asset_job(
    "anki_sync_job",
    selection=dg.AssetSelection.assets(anki_sync),
    description="Push a built deck into Anki (AnkiConnect) or into a collection file.",
    # a push that fails leaves the delivered deck as good as it was: no FAILED.txt beside it
    tags={**DOMAIN_TAGS, NO_NOTICE_TAG: "true"},
)
claude_batch_job = dg.define_asset_job(
    "claude_batch_job",
    selection=dg.AssetSelection.assets(word_list, claude_batch_requests, claude_batch),
    description="Parse a word list and submit the words to ask as one Claude Message Batch "
                "(claude_batch_sensor requests the ingestion when it ends).",
    tags=DOMAIN_TAGS,
)
claude_batch_ingest_job = dg.define_asset_job(
    "claude_batch_ingest_job",
    selection=dg.AssetSelection.assets(claude_batch_results, word_analysis, pronunciation_audio, card_images,
                                       anki_deck, deck_outbox),
    description="Ingest an ended Claude Message Batch (submitting a follow-up batch for expired/errored "
                "items while rounds remain, which skips the rest until it ends), then analyse (asking what "
                "still failed through Messages), speak and build the deck.",
    tags=DOMAIN_TAGS,
)
