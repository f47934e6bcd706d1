"""`daily_usage` for a day of real runs matches what the runs themselves recorded; the schedules
that read that day (usage, research bundle) ask for the right partition with the right run key;
`stageflow costs` reads the partitions and computes the rest live.

The day (see world.py): a video subtitled into Spanish with Claude translating, a deck explained
by Claude through Messages, a deck through a Message Batch, a poem journey (Claude), a journey
blocked at stage 1 (a failed run) and a deck run cancelled before it started.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import dagster as dg
import pytest

from stageflow_assets.core.days import day_window
from stageflow_assets.core.stage import JOB_TAG
from stageflow_assets.definitions import defs
from stageflow_assets.journey.bundle_assets import bundle_dir, research_bundle
from stageflow_assets.journey.schedules import nightly_research_bundle
from stageflow_assets.records.tracker import ITEMS_FILE, read_items
from stageflow_assets.usage.assets import daily_usage
from stageflow_assets.usage.collect import day_usage
from stageflow_assets.usage.figures import DayUsage
from stageflow_assets.usage.schedules import daily_usage_schedule
from stageflow_assets_tests.conftest import APERTIUM
from stageflow_assets_tests.records.readers import unzip
from stageflow_assets_tests.usage.world import BATCH_DECK, MESSAGES_DECK, make_world

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not APERTIUM.is_file(), reason="Apertium is not installed (make install)")]
UTC = timezone.utc


@pytest.fixture(scope="module")
def world(tmp_path_factory, speech_video):
    made = make_world(tmp_path_factory.mktemp("usage_world"), speech_video)
    yield made
    made.claude.stop()


@pytest.fixture(scope="module")
def today(world) -> str:
    """The day the world's runs ended on (UTC); a run that straddled midnight would split them."""
    with world.instance() as instance:
        ends = {datetime.fromtimestamp(r.end_time or r.update_timestamp.timestamp(), UTC).date()
                for r in instance.get_run_records()}
    if len(ends) != 1:
        pytest.skip(f"the world's runs ended on {len(ends)} days (midnight passed while it was made)")
    return ends.pop().isoformat()


def plain(metadata) -> dict:
    return {k: getattr(v, "value", v) for k, v in metadata.items()}


def materializations(instance, asset: str) -> list[dict]:
    records = instance.fetch_materializations(dg.AssetKey(asset), limit=100).records
    return [plain(r.asset_materialization.metadata) for r in records]


def expected(world) -> dict:
    """The day's figures as the runs recorded them, read here without the usage code."""
    jobs = {what: world.job(what) for what in world.results}
    with world.instance() as instance:
        runs = [r.dagster_run for r in instance.get_run_records()]
        audio = materializations(instance, "audio")
        translations = materializations(instance, "translation")
        analyses = materializations(instance, "word_analysis")
        batches = materializations(instance, "claude_batch_results")
        decks = materializations(instance, "anki_deck")
    items = [i for what in ("poem", "blocked")
             for p in (world.home / "journey" / jobs[what]).rglob(ITEMS_FILE) for i in read_items(p)]
    # the poem's rewrite, and the blocked journey's §86a match confirmed by Claude
    journey_usage = [i.metadata["usage"] for i in items if i.backend == "claude"]
    assert len(journey_usage) == 2
    messages = [t["llm_usage"] for t in translations] + [a["llm_usage"] for a in analyses] + journey_usage
    return {
        "jobs": jobs,
        "status": sorted((r.tags[JOB_TAG], r.status.value) for r in runs if JOB_TAG in r.tags),
        "media_seconds": sum(a["duration_s"] for a in audio),
        "notes": sum(d["notes"] for d in decks),
        "messages": messages,
        "batch": [b["llm_batch_usage"] for b in batches],
    }


def test_the_day_matches_the_runs_own_metadata(world, today):
    want = expected(world)
    jobs = want["jobs"]
    with world.instance() as instance:
        usage = day_usage(instance, world.store.paths, today, "UTC")

    rows = {row.job: row for row in usage.jobs}
    assert set(rows) == set(jobs.values())
    assert {rows[j].domain for j in jobs.values()} == {"subtitles", "vocabulary", "journey"}
    got_status = sorted([(row.job, "SUCCESS") for row in usage.jobs for _ in range(row.runs_succeeded)]
                        + [(row.job, "FAILURE") for row in usage.jobs for _ in range(row.runs_failed)]
                        + [(row.job, "CANCELED") for row in usage.jobs for _ in range(row.runs_cancelled)])
    assert got_status == want["status"]
    video, messages_deck, batch_deck = (rows[jobs[w]] for w in ("video", "messages deck", "batch deck"))
    assert (video.runs_succeeded, video.runs_failed) == (3, 0)  # source, Spanish, mux
    assert (messages_deck.runs_succeeded, messages_deck.runs_cancelled) == (1, 1)
    assert batch_deck.runs_succeeded == 2  # submit, then ingest and build
    assert (rows[jobs["blocked"]].runs_failed, rows[jobs["poem"]].runs_succeeded) == (1, 1)

    # media minutes: the one transcript made, as long as its audio
    assert 2.0 < want["media_seconds"] < 30.0
    assert video.media_seconds == pytest.approx(want["media_seconds"], abs=1e-3)
    assert usage.total().media_seconds == pytest.approx(want["media_seconds"], abs=1e-3)
    # decks and words: both decks built, three notes each
    assert (usage.total().decks, usage.total().words) == (2, want["notes"]) == (2, 6)
    assert (messages_deck.decks, batch_deck.decks, video.decks) == (1, 1, 0)
    assert usage.total().journeys == 2

    # Claude: Messages (translation, lexicon, poem) and the batch apart, as the runs recorded them
    total = usage.total()
    messages_cost = sum(u["cost_usd"] for u in want["messages"])
    batch_cost = sum(u["cost_usd"] for u in want["batch"])
    assert total.claude_messages.cost_usd == pytest.approx(messages_cost, rel=1e-9) and messages_cost > 0
    assert total.claude_batch.cost_usd == pytest.approx(batch_cost, rel=1e-9) and batch_cost > 0
    assert total.claude_messages.input_tokens == sum(u["input_tokens"] for u in want["messages"])
    assert total.claude_batch.output_tokens == sum(u["output_tokens"] for u in want["batch"])
    # ... and as the fake served them: every Messages request it answered, every batch item
    assert total.claude_messages.requests == len(world.claude.calls()) > 0
    assert total.claude_batch.requests == sum(len(b.requests) for b in world.claude.batches.values()) == 3
    assert video.claude_messages.requests >= 1 and rows[jobs["poem"]].claude_messages.requests == 1
    assert rows[jobs["blocked"]].claude_messages.requests == 1
    assert batch_deck.claude_messages.requests == 0 and messages_deck.claude_batch.requests == 0

    # time per stage: each stage that ran, bounded by its runs' own wall time
    assert {"source_video", "audio", "transcript", "cues", "translation", "subtitles"} <= set(video.stage_seconds)
    assert {"word_analysis", "anki_deck"} <= set(messages_deck.stage_seconds)
    with world.instance() as instance:
        for row in usage.jobs:
            wall = sum((r.end_time or 0) - (r.start_time or r.end_time or 0)
                       for r in instance.get_run_records(filters=dg.RunsFilter(tags={JOB_TAG: row.job})))
            assert 0 < sum(row.stage_seconds.values()) <= wall + 1e-3, row.job


def test_daily_usage_materializes_the_day_with_plots_and_tables(world, today):
    with world.instance() as instance:
        result = dg.materialize([daily_usage], partition_key=today, instance=instance,
                                resources={"storage": world.store})
        assert result.success
        (meta,) = [plain(m.metadata) for m in result.asset_materializations_for_node("daily_usage")]
        again = day_usage(instance, world.store.paths, today, "UTC")
    usage = DayUsage.model_validate(meta["usage"])
    # the run of daily_usage itself ended today too, and is no stageflow job: not counted
    assert usage == again
    total = usage.total()
    for name in ("runs", "runs_succeeded", "runs_failed", "runs_cancelled", "words", "decks", "journeys"):
        assert isinstance(meta[name], int) and meta[name] == getattr(total, name), name
    assert (meta["runs"], meta["runs_failed"], meta["runs_cancelled"]) == (9, 1, 1)
    assert meta["media_minutes"] == pytest.approx(total.media_seconds / 60, abs=1e-3)
    assert meta["claude_usd"] == pytest.approx(meta["claude_messages_usd"] + meta["claude_batch_usd"])
    assert meta["claude_requests"] == total.claude_messages.requests + total.claude_batch.requests
    for table in ("by_domain", "by_job", "stage_seconds_by_stage"):
        assert meta[table].startswith("| "), table
    assert [line.split(" | ")[0] for line in meta["by_domain"].splitlines()[2:]] == [
        "| journey", "| subtitles", "| vocabulary"]
    assert "| subtitles | transcript |" in meta["stage_seconds_by_stage"]


def test_the_usage_schedule_asks_for_yesterday_once_and_skips_a_day_without_runs(world, today):
    repo = defs.get_repository_def()
    day = datetime.fromisoformat(today).date()
    after = datetime.combine(day + timedelta(days=1), datetime.min.time(), UTC) + timedelta(minutes=10)
    with world.instance() as instance:
        def evaluate(when: datetime):
            with dg.build_schedule_context(instance=instance, scheduled_execution_time=when,
                                           resources={"storage": world.store}, repository_def=repo) as context:
                return daily_usage_schedule.evaluate_tick(context)

        ticks = [evaluate(after) for _ in range(2)]
        quiet = evaluate(after - timedelta(days=1))
    for tick in ticks:  # evaluated twice: the same request, whose run key the scheduler runs once
        (request,) = tick.run_requests
        assert (request.partition_key, request.run_key) == (today, f"daily_usage:{today}")
    assert quiet.run_requests == [] and quiet.skip_message == (
        f"no stageflow run ended on {day - timedelta(days=1)} (UTC): nothing to count")


def test_the_research_bundle_of_the_day(world, today, tmp_path):
    repo = defs.get_repository_def()
    day = datetime.fromisoformat(today).date()
    after = datetime.combine(day + timedelta(days=1), datetime.min.time(), UTC) + timedelta(minutes=20)
    with world.instance() as instance:
        tick = nightly_research_bundle.evaluate_tick(dg.build_schedule_context(
            instance=instance, scheduled_execution_time=after, repository_def=repo))
        quiet = nightly_research_bundle.evaluate_tick(dg.build_schedule_context(
            instance=instance, scheduled_execution_time=after - timedelta(days=1), repository_def=repo))
        (request,) = tick.run_requests
        assert (request.partition_key, request.run_key) == (today, f"research_bundle:{today}")
        assert quiet.run_requests == [] and quiet.skip_message == (
            f"no journey ran on {day - timedelta(days=1)} (UTC): no bundle to write")
        result = dg.materialize([research_bundle], partition_key=today, instance=instance,
                                resources={"storage": world.store})
        assert result.success

    folder = bundle_dir(world.store.paths, today)
    assert folder == world.home / "outbox" / "records" / today
    poem, blocked = world.job("poem"), world.job("blocked")
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["index.html", "index.json", f"{poem}.crate.zip", f"{blocked}.crate.zip"])
    index = json.loads((folder / "index.json").read_text())
    assert index["day"] == today and index["timezone"] == "UTC"
    assert {e["journey"]: e["status"] for e in index["journeys"]} == {poem: "success", blocked: "blocked"}
    html = (folder / "index.html").read_text()
    assert f'href="{poem}.crate.zip"' in html and f'href="{blocked}.crate.zip"' in html
    from rocrate.rocrate import ROCrate

    for entry in index["journeys"]:
        crate = folder / entry["crate"]
        assert entry["bytes"] == crate.stat().st_size
        read = ROCrate(unzip(crate, tmp_path / entry["journey"]))
        assert read.root_dataset["name"] == f"{entry['title']} (journey {entry['journey']})"


def fields(value: str) -> dict[str, str]:
    """`name=value` pairs of a ledger line's value (its first word is a day or a job key)."""
    return dict(part.split("=", 1) for part in value.split()[1:])


def test_costs_reads_final_days_from_daily_usage_and_computes_the_rest_live(world, today):
    from stageflow_assets.usage.figures import ClaudeFigures, JobFigures

    yesterday = (datetime.fromisoformat(today).date() - timedelta(days=1)).isoformat()
    # a day counted earlier (the figures stand for runs this instance no longer has): the ledger
    # must take them from the partition, not recount the day from the event log
    counted = DayUsage(day=yesterday, timezone="UTC", jobs=[JobFigures(
        domain="vocabulary", job="old-deck", runs_succeeded=1,
        claude_messages=ClaudeFigures(requests=4, input_tokens=400, output_tokens=200, cost_usd=1.25),
        claude_batch=ClaudeFigures(requests=2, input_tokens=100, output_tokens=50, cost_usd=0.5))])
    with world.instance() as instance:
        instance.report_runless_asset_event(dg.AssetMaterialization(
            "daily_usage", partition=yesterday, metadata={"usage": dg.MetadataValue.json(counted.model_dump(mode="json"))}))
        live = day_usage(instance, world.store.paths, today, "UTC").total()
    assert day_window(yesterday, "UTC")[1] < datetime.now(UTC)

    result = world.cli("costs", "--since", yesterday)
    assert result.returncode == 0, result.stderr
    assert result.value("since") == [yesterday] and result.value("until") == [today]
    assert result.value("days") == ["2 (1 from daily_usage, 1 computed live)"]
    days = {v.split()[0]: fields(v) for v in result.value("day")}
    assert set(days) == {yesterday, today}
    assert (days[yesterday]["messages_usd"], days[yesterday]["batch_usd"], days[yesterday]["usd"]) == (
        "1.250000", "0.500000", "1.750000")
    assert days[today]["messages_requests"] == str(live.claude_messages.requests)
    assert float(days[today]["messages_usd"]) == pytest.approx(live.claude_messages.cost_usd, abs=1e-6)
    assert float(days[today]["batch_usd"]) == pytest.approx(live.claude_batch.cost_usd, abs=1e-6)
    jobs = {v.split()[0]: fields(v) for v in result.value("job")}
    assert jobs["old-deck"]["domain"] == "vocabulary" and jobs["old-deck"]["messages_requests"] == "4"
    assert {world.job(w) for w in ("video", "messages deck", "batch deck", "poem", "blocked")} <= set(jobs)
    (total,) = [fields("total " + v) for v in result.value("total")]
    assert float(total["usd"]) == pytest.approx(1.75 + live.claude_usd, abs=1e-5)
    assert int(total["batch_requests"]) == 2 + live.claude_batch.requests
    assert all(len(line.split(": ", 1)) == 2 for line in result.stdout.splitlines())

    deck = world.job("batch deck")
    one = world.cli("costs", "--job", deck)
    assert one.returncode == 0, one.stderr
    assert one.value("since") == [today] and one.value("job") == [deck]
    (total,) = [fields("total " + v) for v in one.value("total")]
    assert (total["messages_requests"], total["batch_requests"]) == ("0", "3")
    assert float(total["batch_usd"]) == pytest.approx(float(jobs[deck]["batch_usd"]), abs=1e-6)

    unknown = world.cli("costs", "--job", "no-such-job")
    assert unknown.returncode == 2 and unknown.error_lines == [
        "stageflow: error: --job no-such-job: no run of that job in this instance "
        "(`stageflow events` lists the jobs' runs)"]
