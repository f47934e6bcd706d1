"""`inbox_chain_sensor` against a real (SQLite) instance: runs are recorded as the daemon records
them (created with the request's tags, then RUN_SUCCESS or a failure), and each tick is the
sensor's own evaluation. What the chain looks like end to end, through the daemon, is in
test_inbox_outbox.py."""

from __future__ import annotations

import dagster as dg
import pytest
from dagster._core.events import DagsterEvent, DagsterEventType
from dagster._core.utils import make_new_run_id

from stageflow_assets.core.settings import configured_languages
from stageflow_assets.core.stage import JOB_TAG, SOURCE_TAG
from stageflow_assets.definitions import defs
from stageflow_assets.subtitles.partitions import job_language_partitions, subtitle_job_partitions
from stageflow_assets.subtitles.sensors import CHAIN_TAG, inbox_chain_sensor

JOB = "talk-0123abcd"
LANGS = configured_languages()


class Chain:
    def __init__(self, instance: dg.DagsterInstance):
        self.instance = instance
        self.cursor = None

    def tick(self) -> list[dg.RunRequest]:
        context = dg.build_sensor_context(instance=self.instance, cursor=self.cursor, definitions=defs)
        result = inbox_chain_sensor(context)
        if isinstance(result, dg.SkipReason):
            return []
        self.cursor = result.cursor or self.cursor
        return list(result.run_requests or [])

    def ended(self, job_name: str, tags: dict[str, str], success: bool = True) -> dg.DagsterRun:
        run = self.instance.add_run(dg.DagsterRun(job_name=job_name, run_id=make_new_run_id(), tags=tags))
        if success:
            self.instance.report_dagster_event(run_id=run.run_id, dagster_event=DagsterEvent(
                event_type_value=DagsterEventType.RUN_SUCCESS.value, job_name=job_name))
        else:
            self.instance.report_run_failed(run)
        return run

    def source(self, source: str = "inbox", job: str = JOB, success: bool = True) -> dg.DagsterRun:
        return self.ended("subtitle_source_job", {JOB_TAG: job, SOURCE_TAG: source, "dagster/partition": job}, success)

    def launched(self, request: dg.RunRequest, success: bool = True) -> dg.DagsterRun:
        """The run the daemon makes of a request: its tags plus the partition's."""
        defs_ = job_language_partitions if request.job_name == "subtitle_language_job" else subtitle_job_partitions
        tags = {**request.tags, **defs_.get_tags_for_partition_key(str(request.partition_key))}
        return self.ended(request.job_name, tags, success)


@pytest.fixture
def chain(instance):
    instance.add_dynamic_partitions(subtitle_job_partitions.name, [JOB, "other-89abcdef"])
    return Chain(instance)


def test_the_first_tick_starts_from_now(chain):
    chain.source()  # succeeded before the sensor existed: what ran then chained it
    assert chain.tick() == []
    assert chain.cursor is not None
    assert chain.tick() == []


def test_source_then_every_language_then_the_mux(chain):
    assert len(LANGS) >= 2
    chain.tick()
    source = chain.source()
    languages = chain.tick()
    assert sorted((r.job_name, str(r.partition_key)) for r in languages) == sorted(
        ("subtitle_language_job", f"{JOB}|{lang}") for lang in LANGS)
    assert {r.tags[SOURCE_TAG] for r in languages} == {"inbox"}
    assert {r.tags[CHAIN_TAG] for r in languages} == {source.run_id}
    assert len({r.run_key for r in languages}) == len(LANGS)
    assert chain.tick() == []  # each success is read once

    *first, last = languages
    for request in first:
        chain.launched(request)
    assert chain.tick() == []  # a language still going: no mux
    chain.launched(last)
    (mux,) = chain.tick()
    assert (mux.job_name, mux.partition_key) == ("subtitle_mux_job", JOB)
    assert mux.tags[CHAIN_TAG] == source.run_id and mux.tags[SOURCE_TAG] == "inbox"
    assert chain.tick() == []


def test_languages_ending_together_request_one_mux(chain):
    chain.tick()
    chain.source()
    for request in chain.tick():
        chain.launched(request)
    assert [r.job_name for r in chain.tick()] == ["subtitle_mux_job"]


def test_a_failed_language_holds_the_mux_until_it_succeeds(chain):
    chain.tick()
    chain.source()
    first, *others = chain.tick()
    chain.launched(first, success=False)  # e.g. its blocking QC check failed
    for request in others:
        chain.launched(request)
    assert chain.tick() == []
    assert chain.tick() == []
    chain.launched(first)  # re-executed (same tags), and it passed
    assert [r.job_name for r in chain.tick()] == ["subtitle_mux_job"]


def test_runs_the_cli_or_the_ui_made_are_not_chained(chain):
    chain.tick()
    chain.source(source="cli")
    chain.ended("subtitle_source_job", {JOB_TAG: JOB, "dagster/partition": JOB})  # launched from the UI
    chain.source(success=False)
    assert chain.tick() == []


def test_two_videos_chain_apart(chain):
    chain.tick()
    chain.source(job=JOB)
    chain.source(job="other-89abcdef")
    requests = chain.tick()
    assert sorted(str(r.partition_key) for r in requests) == sorted(
        f"{job}|{lang}" for job in (JOB, "other-89abcdef") for lang in LANGS)
    for request in requests:
        if str(request.partition_key).startswith(JOB):
            chain.launched(request)
    assert [(r.job_name, r.partition_key) for r in chain.tick()] == [("subtitle_mux_job", JOB)]
