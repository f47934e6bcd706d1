"""The stage runtime on a toy asset: reuse, force, failure that leaves the last good output."""

import json
import os
import signal
import time

import dagster as dg
import pytest

from stageflow_assets.core.errors import BadInputError
from stageflow_assets.core.io_manager import StageManifestIOManager
from stageflow_assets.core.paths import StageSpec
from stageflow_assets.core.stage import FORCE_TAG, StageWriter, run_stage
from stageflow_assets.core.stage_store import StageStore

toy_jobs = dg.DynamicPartitionsDefinition(name="toy_jobs")
SPEC = StageSpec("toy", "01_echo")
CALLS: list[str] = []
STOPPED: list[str] = []  # the work that a Ctrl-C stopped


class EchoConfig(dg.Config):
    text: str = "hello"
    fail_after_partial_write: bool = False
    interrupt: bool = False


@dg.asset(partitions_def=toy_jobs, code_version="1", metadata=SPEC.metadata)
def echo(context: dg.AssetExecutionContext, config: EchoConfig, storage: StageStore):
    def work(out: StageWriter) -> None:
        CALLS.append(config.text)
        out.output("echo.txt", kind="text", fmt="txt").write_text(config.text)
        if config.fail_after_partial_write:
            raise BadInputError(f"toy input {config.text!r} is bad: give another", text=config.text)
        if config.interrupt:
            STOPPED.append(config.text)
            raise KeyboardInterrupt  # a Ctrl-C in the middle of the work
        out.details["chars"] = len(config.text)

    return run_stage(context, storage.paths, SPEC, inputs=[], config={"text": config.text}, work=work)


@pytest.fixture
def env(tmp_path):
    store = StageStore(home=str(tmp_path))
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("toy_jobs", ["job-1"])
        CALLS.clear()
        STOPPED.clear()

        def run(text="hello", fail=False, tags=None, interrupt=False):
            return dg.materialize(
                [echo], instance=instance, partition_key="job-1", raise_on_error=False, tags=tags,
                resources={"storage": store, "io_manager": StageManifestIOManager(store=store)},
                run_config=dg.RunConfig({"echo": EchoConfig(text=text, fail_after_partial_write=fail,
                                                            interrupt=interrupt)}),
            )

        yield run, tmp_path / "toy" / "job-1" / "01_echo", instance


def _latest(instance):
    return instance.get_latest_materialization_event(dg.AssetKey("echo")).asset_materialization


def test_success_writes_outputs_manifest_log_and_metadata(env):
    run, stage_dir, instance = env
    assert run().success
    manifest = json.loads((stage_dir / "manifest.json").read_text())
    assert manifest["status"] == "success" and manifest["reused"] is False
    assert manifest["outputs"][0]["path"] == "toy/job-1/01_echo/echo.txt"
    assert (stage_dir / "echo.txt").read_text() == "hello"
    assert "started" in (stage_dir / "stage.log").read_text()
    materialization = _latest(instance)
    assert materialization.metadata["chars"].value == 5
    assert materialization.tags["dagster/data_version"]


def test_unchanged_inputs_reuse_and_force_recomputes(env):
    run, stage_dir, instance = env
    first = run()
    version = _latest(instance).tags["dagster/data_version"]
    assert run().success
    assert CALLS == ["hello"]  # the second run did no work
    assert _latest(instance).metadata["reused"].value is True
    assert _latest(instance).metadata["reused_from_run"].value == first.run_id
    assert _latest(instance).tags["dagster/data_version"] == version
    assert run(tags={FORCE_TAG: "true"}).success
    assert CALLS == ["hello", "hello"]
    assert run(text="changed").success
    assert _latest(instance).tags["dagster/data_version"] != version


def test_failure_keeps_last_good_outputs_and_records_the_error(env):
    run, stage_dir, _ = env
    assert run("good").success
    good_manifest = (stage_dir / "manifest.json").read_bytes()
    result = run("bad", fail=True)
    assert not result.success
    failure = [e for e in result.all_events if e.is_step_failure][0].step_failure_data
    assert failure.user_failure_data.description == "toy input 'bad' is bad: give another"
    assert (stage_dir / "manifest.json").read_bytes() == good_manifest
    assert (stage_dir / "echo.txt").read_text() == "good"
    failed = json.loads((stage_dir / "manifest.failed.json").read_text())
    assert failed["status"] == "failed"
    assert failed["errors"][0]["details"] == {"text": "bad"}
    assert sorted(p.name for p in stage_dir.iterdir()) == [
        "echo.txt", "manifest.failed.json", "manifest.json", "stage.log"
    ]
    assert run("good again").success
    assert not (stage_dir / "manifest.failed.json").exists()


def test_a_second_interrupt_during_the_failure_record_leaves_it_whole(env, monkeypatch):
    """Ctrl-C stops the work; a moment later the run watcher interrupts the run again (it repeats
    its interrupt while the run is CANCELING). Landing while the step writes its failure record,
    that second interrupt must not leave a temporary file or a missing manifest.failed.json."""
    import stageflow_assets.core.stage as stage

    run, stage_dir, instance = env
    remove_temps = stage._remove_temps
    interrupted = []

    def remove_temps_interrupted(directory):
        if STOPPED and not interrupted:  # the failure record, after the work was stopped
            os.kill(os.getpid(), signal.SIGINT)  # the watcher's interrupt, while the record is written
            time.sleep(0.3)  # the interrupt's handler runs meanwhile
            interrupted.append(True)
        remove_temps(directory)

    monkeypatch.setattr(stage, "_remove_temps", remove_temps_interrupted)
    result = run("stopped", interrupt=True)
    assert not result.success and interrupted
    assert sorted(p.name for p in stage_dir.iterdir()) == ["manifest.failed.json", "stage.log"]
    failed = json.loads((stage_dir / "manifest.failed.json").read_text())
    assert failed["status"] == "failed" and failed["errors"][0]["type"] == "Interrupted"
    assert instance.get_run_by_id(result.run_id).status == dg.DagsterRunStatus.CANCELED
