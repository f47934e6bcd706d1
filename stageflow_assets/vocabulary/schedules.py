"""`nightly_deck_sync`: each deck whose notes changed since its last sync, synced into Anki again.

The sync is `anki_sync` itself, with `--sync`'s settings (no prune): fields merged three ways, so
the user's edits in Anki stay; words that left the list are tagged `stageflow::removed`. Only
decks already synced to this AnkiConnect are synced again (a deck never pushed there stays out
of the user's Anki), and only when the deck's notes (`notes.json`) differ from those its last
sync pushed. Each deck is its own run: one deck's failed sync stops no other, and its run says
why. Stopped by default: turn it on in the UI (Automation → Schedules) or with
`dagster schedule start nightly_deck_sync`.
"""

from __future__ import annotations

import dagster as dg

from stageflow_assets.core.days import TIMEZONE, day_of
from stageflow_assets.core.errors import StageError
from stageflow_assets.core.manifest import stage_manifest
from stageflow_assets.core.paths import StagePaths
from stageflow_assets.core.settings import schedule_cron
from stageflow_assets.core.stage import JOB_TAG, SOURCE_TAG
from stageflow_assets.core.stage_store import StageStore
from stageflow_assets.providers.ankiconnect import AnkiConnect
from stageflow_assets.vocabulary import stage_dirs
from stageflow_assets.vocabulary.jobs import anki_sync_job
from stageflow_assets.vocabulary.partitions import word_list_partitions
from stageflow_assets.vocabulary.resources import ANKICONNECT_URL_ENV

RUN_KEY = "nightly_deck_sync:{day}:{deck}"
PROBE_TIMEOUT_S = 5.0


def _same_url(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")


def decks_to_sync(paths: StagePaths, decks: list[str], url: str) -> tuple[list[str], list[str]]:
    """(decks last synced to AnkiConnect at `url`, those of them whose notes changed since)."""
    synced, changed = [], []
    for deck in decks:
        last = stage_manifest(paths, stage_dirs.ANKI_SYNC, deck)
        if last is None or last.config.get("target") != "ankiconnect" or not _same_url(
                str(last.config.get("where", "")), url):
            continue
        synced.append(deck)
        built = stage_manifest(paths, stage_dirs.ANKI_DECK, deck)
        if built is None or built.status != "success":
            continue
        pushed = next((r.sha256 for r in last.inputs if r.kind == "notes"), None)
        notes = built.outputs_of("notes")
        if notes and notes[0].sha256 != pushed:
            changed.append(deck)
    return synced, changed


def unreachable(ankiconnect: AnkiConnect) -> str | None:
    """Why AnkiConnect does not answer, or None when it does (one try, no retries)."""
    probe = AnkiConnect(url=ankiconnect.url, api_key=ankiconnect.api_key, timeout_s=PROBE_TIMEOUT_S,
                        max_retries=0, breaker=ankiconnect.breaker)
    try:
        probe.invoke("version")
    except StageError as exc:
        return exc.message
    return None


@dg.schedule(
    name="nightly_deck_sync",
    cron_schedule=schedule_cron("deck_sync", "30 2 * * *"),
    job=anki_sync_job,
    execution_timezone=TIMEZONE,
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Nightly (02:30, STAGEFLOW_TIMEZONE): syncs into Anki (AnkiConnect) again every deck whose "
                "notes changed since its last sync there, with --sync's rules (removed words tagged, your "
                "edits kept); one run per deck, so a failed sync stops no other. Skips when no deck changed "
                "or AnkiConnect does not answer.",
)
def nightly_deck_sync(context: dg.ScheduleEvaluationContext, storage: StageStore, ankiconnect: AnkiConnect):
    url = ankiconnect.url
    decks = list(context.instance.get_dynamic_partitions(word_list_partitions.name))
    synced, changed = decks_to_sync(storage.paths, decks, url)
    if not synced:
        return dg.SkipReason(f"no deck has been synced to AnkiConnect at {url} yet (`stageflow vocab WORDS "
                             f"--deck NAME --sync` makes a deck's first sync; {ANKICONNECT_URL_ENV} sets the URL)")
    if not changed:
        return dg.SkipReason(f"{len(synced)} deck(s) synced to {url}: none changed since its last sync")
    problem = unreachable(ankiconnect)
    if problem is not None:
        return dg.SkipReason(f"{len(changed)} deck(s) changed, but not synced: {problem} "
                             f"({ANKICONNECT_URL_ENV} sets the URL)")
    day = day_of(context.scheduled_execution_time, TIMEZONE)
    config = {"ops": {"anki_sync": {"config": {"target": "ankiconnect", "prune": False}}}}
    return [dg.RunRequest(partition_key=deck, run_key=RUN_KEY.format(day=day, deck=deck), run_config=config,
                          tags={JOB_TAG: deck, SOURCE_TAG: "schedule"})
            for deck in changed]
