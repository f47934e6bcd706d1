"""Declarative automation chains a job's per-language runs and its mux without the CLI.

`stageflow_automation` (an AutomationConditionSensorDefinition over every asset, run by the
daemon under `make ui`) evaluates the assets' conditions; `evaluate_automation_conditions` is
the same evaluation in a test, against a real instance. Materializations are recorded as
runless events, partition by partition, exactly where a run would record them.
"""

from __future__ import annotations

import dagster as dg
import pytest
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,
)
from dagster._core.events import DagsterEvent, DagsterEventType, StepMaterializationData
from dagster._core.utils import make_new_run_id

from stageflow_assets.core.settings import configured_languages
from stageflow_assets.core.stage import SOURCE_TAG
from stageflow_assets.definitions import defs
from stageflow_assets.subtitles.partitions import subtitle_job_partitions

JOB = "talk-0123abcd"
OTHER_JOB = "other-89abcdef"
LANGS = configured_languages()
TRANSLATION, SUBTITLES, MUX, OUTBOX = (
    dg.AssetKey(k) for k in ("translation", "subtitles", "subtitled_video", "subtitle_outbox"))
AUTOMATED = (TRANSLATION, SUBTITLES, MUX, OUTBOX)


def multi(job: str, lang: str) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({"job": job, "lang": lang})


class Daemon:
    """Successive automation ticks against one instance, as the daemon runs them."""

    def __init__(self, instance: dg.DagsterInstance):
        self.instance = instance
        self.cursor = None

    def tick(self) -> dict[dg.AssetKey, set[str]]:
        result = dg.evaluate_automation_conditions(defs=defs, instance=self.instance, cursor=self.cursor)
        self.cursor = result.cursor
        self.last = result
        requested = {key: {str(p) for p in result.get_requested_partitions(key)} for key in AUTOMATED}
        assert result.total_requested == sum(map(len, requested.values()))
        return requested

    def materialized(self, asset: str, *partitions, checks_pass: bool = True, source: str | None = None) -> None:
        """A materialization plus the asset's own check results, as its step records them;
        with `source`, in a run tagged `stageflow/source=<source>` (as the CLI's runs are)."""
        checks = [c for c in defs.resolve_asset_graph().get(dg.AssetKey(asset)).check_keys]
        for partition in partitions:
            materialization = dg.AssetMaterialization(asset, partition=partition)
            if source is None:
                self.instance.report_runless_asset_event(materialization)
            else:
                run = self.instance.add_run(dg.DagsterRun(job_name="__test__", run_id=make_new_run_id(),
                                                          tags={SOURCE_TAG: source}))
                self.instance.report_dagster_event(run_id=run.run_id, dagster_event=DagsterEvent(
                    event_type_value=DagsterEventType.ASSET_MATERIALIZATION.value,
                    event_specific_data=StepMaterializationData(materialization), job_name="__test__"))
            record = self.instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[str(partition)]), limit=1
            ).records[0]
            target = AssetCheckEvaluationTargetMaterializationData(
                storage_id=record.storage_id, run_id=record.run_id, timestamp=record.timestamp
            )
            for check in checks:
                evaluation = dg.AssetCheckEvaluation(
                    asset_key=check.asset_key, check_name=check.name, passed=checks_pass,
                    partition=str(partition), metadata={}, target_materialization_data=target,
                )
                # runless check events share one run id and may not repeat per partition;
                # a run of its own per evaluation is what a real step would give them
                self.instance.report_dagster_event(
                    run_id=make_new_run_id(),
                    dagster_event=DagsterEvent(
                        event_type_value=DagsterEventType.ASSET_CHECK_EVALUATION.value,
                        event_specific_data=evaluation, job_name="__test__",
                    ),
                )


def nothing() -> dict[dg.AssetKey, set[str]]:
    return {key: set() for key in AUTOMATED}


@pytest.fixture
def daemon():
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(subtitle_job_partitions.name, [JOB, OTHER_JOB])
        yield Daemon(instance)


def test_automation_sensor_covers_every_automated_asset():
    (sensor,) = [s for s in defs.sensors if s.name == "stageflow_automation"]
    assert isinstance(sensor, dg.AutomationConditionSensorDefinition)
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    graph = defs.resolve_asset_graph()
    targeted = sensor.asset_selection.resolve(graph)
    for key in AUTOMATED:
        assert key in targeted
        assert graph.get(key).automation_condition is not None, key
    # the job-level chain is started by the inbox sensor or the CLI, never by automation
    for name in ("source_video", "audio", "transcript", "cues"):
        assert graph.get(dg.AssetKey(name)).automation_condition is None


SOURCE_ASSETS = ("source_video", "audio", "transcript", "cues")


def first_pass(daemon: Daemon, job: str = JOB, langs=LANGS, source: str = "cli") -> None:
    """A job's first pass, as whoever registered it made it (the CLI, the inbox chain)."""
    for asset in SOURCE_ASSETS:
        daemon.materialized(asset, job, source=source)
    for lang in langs:
        daemon.materialized("translation", multi(job, lang), source=source)
        daemon.materialized("subtitles", multi(job, lang), source=source)
    daemon.materialized("subtitled_video", job, source=source)
    daemon.materialized("subtitle_outbox", job, source=source)


def test_a_jobs_first_pass_is_left_to_whoever_registered_it(daemon):
    """First materializations never count, tagged or not: the CLI or the inbox chain owns them
    (and a tick after one that saw no event cannot tell tagged updates apart)."""
    assert daemon.tick() == nothing()
    for asset in SOURCE_ASSETS:
        daemon.materialized(asset, JOB)
    assert daemon.tick() == nothing()
    assert daemon.tick() == nothing()


def test_transcript_redone_by_hand_requests_every_language_then_all_subtitles_request_the_mux(daemon):
    assert len(LANGS) >= 2, "the test needs at least two configured languages"
    *first, last = LANGS
    daemon.tick()
    first_pass(daemon, langs=first)  # the CLI was asked for all but the last configured language
    assert daemon.tick() == nothing()

    # the transcript made again from the UI (a new model, say)
    daemon.materialized("transcript", JOB)
    assert daemon.tick() == nothing()  # the cues are not redone yet: cues is what languages read

    daemon.materialized("cues", JOB)
    requested = daemon.tick()
    every_lang = {str(multi(JOB, lang)) for lang in LANGS}
    # one run per language: translation and subtitles share job × lang partitions, so the
    # subtitles of a language ride in the run that translates it
    assert requested[TRANSLATION] == every_lang
    assert requested[SUBTITLES] == every_lang
    # the mux is a different partitions definition (a different run): it must not start before
    # those runs have written every language, so it is not requested alongside them
    assert requested[MUX] == set()
    assert not any(OTHER_JOB in p for ps in requested.values() for p in ps)

    # the requests are remembered: the next tick does not repeat them
    assert daemon.tick() == nothing()

    # the language runs finish one by one; with a language still missing, no mux
    for lang in first:
        daemon.materialized("translation", multi(JOB, lang))
        daemon.materialized("subtitles", multi(JOB, lang))
    assert daemon.tick()[MUX] == set()
    daemon.materialized("translation", multi(JOB, last))
    assert daemon.tick()[MUX] == set()

    daemon.materialized("subtitles", multi(JOB, last))
    # the outbox is requested with the mux: the same partition, so the same run, after it
    assert daemon.tick() == {**nothing(), MUX: {JOB}, OUTBOX: {JOB}}
    assert daemon.tick() == nothing()


def test_mux_waits_for_a_language_that_never_arrives(daemon):
    *present, absent = LANGS
    daemon.tick()
    first_pass(daemon, langs=present)  # the CLI was asked for the others only
    daemon.tick()
    daemon.materialized("cues", JOB)  # made again from the UI: every configured language is asked for
    assert daemon.tick()[TRANSLATION] == {str(multi(JOB, lang)) for lang in LANGS}
    for lang in present:
        daemon.materialized("translation", multi(JOB, lang))
        daemon.materialized("subtitles", multi(JOB, lang))
    for _ in range(3):
        assert daemon.tick()[MUX] == set()


def test_new_transcript_retranslates_and_remuxes(daemon):
    """A re-run transcript (e.g. `--force`) flows down the same way: languages, then the mux."""
    for asset in ("source_video", "audio", "transcript", "cues"):
        daemon.materialized(asset, JOB)
    for lang in LANGS:
        daemon.materialized("translation", multi(JOB, lang))
        daemon.materialized("subtitles", multi(JOB, lang))
    daemon.materialized("subtitled_video", JOB)
    daemon.tick()  # settle: everything exists

    daemon.materialized("transcript", JOB)

    daemon.materialized("cues", JOB)
    requested = daemon.tick()
    assert requested[TRANSLATION] == {str(multi(JOB, lang)) for lang in LANGS}
    assert requested[MUX] == set()
    for lang in LANGS:
        daemon.materialized("translation", multi(JOB, lang))
        daemon.materialized("subtitles", multi(JOB, lang))
    assert daemon.tick()[MUX] == {JOB}


# Dagster's own multi-partition run tags (dagster/partition/job) trip its tag-key deprecation check
@pytest.mark.filterwarnings("ignore:Non-compliant tag keys:DeprecationWarning")
def test_language_requests_become_one_run_per_language(daemon):
    """How the daemon turns that tick's requests into work (Dagster's own builder, internal API
    pinned with dagster==1.13.27): one run per `job|lang` holding translation and subtitles, or,
    with the sensor's emit_backfills (the default, on here), one backfill of those partitions."""
    from dagster._core.definitions.automation_tick_evaluation_context import build_run_requests

    (sensor,) = [s for s in defs.sensors if s.name == "stageflow_automation"]
    daemon.tick()  # the daemon was already running when the video arrived
    first_pass(daemon)
    daemon.tick()
    daemon.materialized("cues", JOB)  # made again from the UI
    daemon.tick()
    subsets = daemon.last._requested_subsets
    graph = defs.resolve_asset_graph()

    runs = build_run_requests(subsets, graph, run_tags=None, emit_backfills=False)
    assert sorted((r.partition_key, set(r.asset_selection)) for r in runs) == sorted(
        (str(multi(JOB, lang)), {TRANSLATION, SUBTITLES}) for lang in LANGS
    )

    assert sensor.emit_backfills
    (backfill,) = build_run_requests(subsets, graph, run_tags=None, emit_backfills=True)
    target = backfill.asset_graph_subset
    assert set(target.asset_keys) == {TRANSLATION, SUBTITLES}
    for key in (TRANSLATION, SUBTITLES):
        assert set(target.get_partitions_subset(key).get_partition_keys()) == {
            str(multi(JOB, lang)) for lang in LANGS
        }


def test_failed_blocking_qc_keeps_the_daemon_from_muxing(daemon):
    daemon.tick()
    first_pass(daemon)
    daemon.tick()
    daemon.materialized("cues", JOB)  # made again from the UI
    daemon.tick()
    *first, last = LANGS
    for lang in first:
        daemon.materialized("translation", multi(JOB, lang))
        daemon.materialized("subtitles", multi(JOB, lang))
    daemon.materialized("translation", multi(JOB, last))
    daemon.materialized("subtitles", multi(JOB, last), checks_pass=False)
    assert daemon.tick()[MUX] == set()
    daemon.materialized("subtitles", multi(JOB, last))
    assert daemon.tick()[MUX] == {JOB}


def test_chained_work_on_a_brand_new_instance_is_left_alone(daemon):
    """The first tick of a new home sees no event at all; Dagster's all_new_updates_have_run_tags
    cannot tell the next tick's updates apart then (it needs the previous tick's event id)."""
    assert daemon.tick() == nothing()  # the daemon is up before the first videos arrive
    for asset in SOURCE_ASSETS:  # two videos at once: neither is the asset's latest partition for long
        daemon.materialized(asset, JOB, source="inbox")
        daemon.materialized(asset, OTHER_JOB, source="inbox")
    assert daemon.tick() == nothing()
    for lang in LANGS:
        for job in (JOB, OTHER_JOB):
            daemon.materialized("translation", multi(job, lang), source="inbox")
            daemon.materialized("subtitles", multi(job, lang), source="inbox")
    assert daemon.tick() == nothing()


def test_a_language_updated_alone_is_not_delivered_without_its_mux(daemon):
    for asset in ("source_video", "audio", "transcript", "cues"):
        daemon.materialized(asset, JOB)
    for lang in LANGS:
        daemon.materialized("translation", multi(JOB, lang))
        daemon.materialized("subtitles", multi(JOB, lang))
    daemon.materialized("subtitled_video", JOB)
    daemon.materialized("subtitle_outbox", JOB)
    daemon.tick()  # settle: everything exists

    daemon.materialized("subtitled_video", JOB)  # muxed again outside automation (the UI)
    assert daemon.tick() == {**nothing(), OUTBOX: {JOB}}  # delivered
    daemon.materialized("subtitle_outbox", JOB)
    assert daemon.tick() == nothing()

    daemon.materialized("subtitles", multi(JOB, LANGS[0]))  # one language again (the UI)
    requested = daemon.tick()
    assert requested[MUX] == {JOB}  # the mux first, the outbox with it: never the language alone
    assert requested[OUTBOX] == {JOB}


def test_work_the_cli_submits_is_not_chained_again_by_the_daemon(daemon):
    """`make ui` beside the CLI: the CLI's runs into the languages asked for are all there is."""
    for asset in ("source_video", "audio", "transcript", "cues"):
        daemon.materialized(asset, JOB, source="cli")
    assert daemon.tick() == nothing()  # no other configured language is translated
    daemon.materialized("translation", multi(JOB, LANGS[0]), source="cli")
    daemon.materialized("subtitles", multi(JOB, LANGS[0]), source="cli")
    assert daemon.tick() == nothing()
    daemon.materialized("subtitled_video", JOB, source="cli")
    assert daemon.tick() == nothing()
    # a forced re-run through the CLI later: still nothing for the daemon
    daemon.materialized("cues", JOB, source="cli")
    assert daemon.tick() == nothing()

    # the inbox chains its own runs (inbox_chain_sensor): automation leaves them alone too
    daemon.materialized("cues", JOB, source="inbox")
    assert daemon.tick() == nothing()
    for lang in LANGS:
        daemon.materialized("translation", multi(JOB, lang), source="inbox")
        daemon.materialized("subtitles", multi(JOB, lang), source="inbox")
    assert daemon.tick() == nothing()
    daemon.materialized("subtitled_video", JOB, source="inbox")
    assert daemon.tick() == nothing()

    # work started without stageflow (materialized from the UI): automation chains it
    daemon.materialized("cues", JOB)
    requested = daemon.tick()
    assert requested[TRANSLATION] == {str(multi(JOB, lang)) for lang in LANGS}

