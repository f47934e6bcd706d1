"""`nightly_deck_sync` against the AnkiConnect loopback fake: only decks whose notes changed since
their last sync there are synced again, with `--sync`'s rules (the user's edit kept, a word that
left the list tagged); a deck whose sync fails stops no other and says why; nothing is asked of
an AnkiConnect that does not answer.

The decks are built and first synced through the real `stageflow vocab` CLI (WordNet, espeak-ng,
genanki), in a home of their own; the schedule is evaluated at a fixed time and its run requests
executed as the scheduler would submit them.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg
import pytest

from stageflow_assets.core.runs import outcome_of_finished
from stageflow_assets.core.stage import JOB_TAG, SOURCE_TAG
from stageflow_assets.core.stage_store import StageStore
from stageflow_assets.providers.anki_merge import REMOVED_TAG
from stageflow_assets.providers.ankiconnect import AnkiConnect
from stageflow_assets.vocabulary.registry import deck_key
from stageflow_assets.vocabulary.schedules import nightly_deck_sync
from stageflow_assets_tests.conftest import instance_with_env, run_cli
from stageflow_assets_tests.vocabulary.fakes import FakeAnki, FakeServer

AT = datetime(2026, 3, 4, 2, 30, tzinfo=timezone.utc)
DECKS = {"A": "Nightly::A", "B": "Nightly::B", "C": "Nightly::C"}
REFUSAL = "Deck name conflicts with existing filtered deck"


class RefusingAnki(FakeAnki):
    """The fake, refusing to create one deck (a filtered deck of that name exists in Anki)."""

    refused: str | None = None

    def do_createDeck(self, deck):  # noqa: N802 - AnkiConnect's action names
        if deck == self.refused:
            raise Exception(REFUSAL)
        return super().do_createDeck(deck)


class Home:
    def __init__(self, base: Path, server: FakeServer, fake: RefusingAnki) -> None:
        self.base, self.server, self.fake = base, server, fake
        self.env = {"STAGEFLOW_HOME": str(base / "stageflow"), "DAGSTER_HOME": str(base / "dagster"),
                    "STAGEFLOW_ANKICONNECT_URL": server.url, "STAGEFLOW_LEXICON": "wordnet",
                    "ANTHROPIC_API_KEY": "", "STAGEFLOW_IMAGES_URL": "", "STAGEFLOW_EVENT_SINK": ""}
        self.store = StageStore(home=self.env["STAGEFLOW_HOME"])

    def vocab(self, deck: str, words: list[str], *flags: str) -> None:
        path = self.base / f"{deck_key(DECKS[deck])}.txt"
        path.write_text("\n".join(words) + "\n", encoding="utf-8")
        result = run_cli("vocab", path, "--deck", DECKS[deck], *flags, env=self.env)
        assert result.returncode == 0, result.stderr[-3000:]

    def tick(self, url: str | None = None):
        from stageflow_assets.definitions import defs

        resources = {"storage": self.store, "ankiconnect": AnkiConnect(url=url or self.server.url, backoff_s=0.01)}
        # the context closed here, inside the instance: left to the garbage collector, the
        # instance it opens for its resources restores Dagster's current defs-state storage to
        # this closed instance's, and a later `resolve_job_def` fails on its dead weakref
        with instance_with_env(self.env) as instance, dg.build_schedule_context(
                instance=instance, scheduled_execution_time=AT, resources=resources,
                repository_def=defs.get_repository_def()) as context:
            return nightly_deck_sync.evaluate_tick(context)

    def execute(self, request: dg.RunRequest) -> str:
        """The request as a run of `anki_sync_job`, on this home's instance (as the daemon would)."""
        from stageflow_assets.core.io_manager import StageManifestIOManager
        from stageflow_assets.vocabulary.definitions import defs as vocabulary_defs
        from stageflow_assets_tests.swap_resources import with_resources

        defs = with_resources(vocabulary_defs, storage=self.store, io_manager=StageManifestIOManager(store=self.store),
                              ankiconnect=AnkiConnect(url=self.server.url, backoff_s=0.01))
        with instance_with_env(self.env) as instance:
            result = defs.resolve_job_def("anki_sync_job").execute_in_process(
                instance=instance, partition_key=request.partition_key, run_config=request.run_config,
                tags=request.tags, raise_on_error=False)
            return result.run_id

    def outcome(self, run_id: str):
        with instance_with_env(self.env) as instance:
            return outcome_of_finished(instance, run_id)

    def note(self, word: str) -> dict:
        (note,) = [n for n in self.fake.notes.values() if n["fields"]["Headword"] == word]
        return note


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    fake = RefusingAnki()
    with FakeServer(fake) as server:
        made = Home(tmp_path_factory.mktemp("nightly_sync"), server, fake)
        made.vocab("A", ["apple", "bread"], "--sync")
        made.vocab("B", ["cat", "dog"], "--sync")
        made.vocab("C", ["sun", "moon"])  # built, never synced
        yield made


def requested(tick) -> dict[str, dg.RunRequest]:
    return {r.partition_key: r for r in tick.run_requests}


def test_nothing_synced_to_this_anki_or_nothing_changed_is_a_skip(home):
    elsewhere = home.tick(url="http://127.0.0.1:9")
    assert elsewhere.run_requests == [] and elsewhere.skip_message == (
        "no deck has been synced to AnkiConnect at http://127.0.0.1:9 yet (`stageflow vocab WORDS --deck NAME "
        "--sync` makes a deck's first sync; STAGEFLOW_ANKICONNECT_URL sets the URL)")
    quiet = home.tick()
    assert quiet.run_requests == []
    assert quiet.skip_message == f"2 deck(s) synced to {home.server.url}: none changed since its last sync"


def test_only_the_deck_whose_notes_changed_is_synced_again_with_the_sync_rules(home):
    apple = home.note("apple")
    apple["fields"]["Meanings"] = "my own words for apple"  # the user's edit in Anki
    home.vocab("A", ["apple", "cheese"])  # bread left the list, cheese came; rebuilt, not synced
    home.vocab("C", ["sun", "moon", "star"])  # changed, but never synced to this Anki
    assert "cheese" not in {n["fields"]["Headword"] for n in home.fake.notes.values()}

    first, second = home.tick(), home.tick()
    a = deck_key(DECKS["A"])
    assert list(requested(first)) == [a]
    (request,) = first.run_requests
    assert request.run_key == f"nightly_deck_sync:2026-03-04:{a}"
    assert request.run_config == {"ops": {"anki_sync": {"config": {"target": "ankiconnect", "prune": False}}}}
    assert request.tags[JOB_TAG] == a and request.tags[SOURCE_TAG] == "schedule"
    assert [(r.partition_key, r.run_key) for r in second.run_requests] == [(a, request.run_key)]

    calls_before = len(home.server.requests)
    run_id = home.execute(request)
    assert home.outcome(run_id).success
    decks_touched = {r["body"]["params"].get("deck") for r in home.server.requests[calls_before:]
                     if r["body"]["action"] == "createDeck"}
    assert decks_touched == {DECKS["A"]}  # B and C untouched
    assert home.note("cheese")["deck"] == DECKS["A"]
    assert REMOVED_TAG in home.note("bread")["tags"]  # kept with its reviews, tagged
    assert home.note("apple")["fields"]["Meanings"] == "my own words for apple"  # the user's edit kept

    after = home.tick()
    assert after.run_requests == [] and "none changed since its last sync" in after.skip_message


def test_a_deck_whose_sync_fails_stops_no_other_and_says_why(home):
    home.vocab("A", ["apple", "cheese", "grape"])
    home.vocab("B", ["cat", "dog", "fox"])
    home.fake.refused = DECKS["B"]
    tick = home.tick()
    a, b = deck_key(DECKS["A"]), deck_key(DECKS["B"])
    assert sorted(requested(tick)) == sorted([a, b])

    failed = home.execute(requested(tick)[b])  # B first: its failure must not keep A from syncing
    synced = home.execute(requested(tick)[a])
    outcome = home.outcome(failed)
    assert not outcome.success and f"AnkiConnect createDeck: {REFUSAL}" in outcome.error
    assert "\n" not in outcome.error
    assert home.outcome(synced).success and home.note("grape")["deck"] == DECKS["A"]
    assert "fox" not in {n["fields"]["Headword"] for n in home.fake.notes.values()}

    # B is still changed since its last (good) sync: asked again next night, A is not
    assert list(requested(home.tick())) == [b]
    home.fake.refused = None

    home.server.__exit__(None, None, None)  # Anki closed
    down = home.tick()
    assert down.run_requests == []
    assert down.skip_message.startswith(f"1 deck(s) changed, but not synced: AnkiConnect at {home.server.url} "
                                        "did not answer version after 1 tries")
    assert down.skip_message.endswith("(STAGEFLOW_ANKICONNECT_URL sets the URL)")
    assert os.environ.get("STAGEFLOW_ANKICONNECT_URL") != home.server.url  # the test process kept its own
