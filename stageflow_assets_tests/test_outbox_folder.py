"""The outbox folder as a stage directory: built beside its place, swapped in whole; a failure
leaves the last delivery; a notice of a failed job goes with the next success."""

import json
import os
import threading

import dagster as dg
import pytest

from stageflow_assets.core import paths as paths_module
from stageflow_assets.core.errors import BadInputError
from stageflow_assets.core.io_manager import StageManifestIOManager
from stageflow_assets.core.outbox import FAILED_NOTICE, read_failure_notice, write_failure_notice
from stageflow_assets.core.paths import StageSpec, replace_dir
from stageflow_assets.core.stage import FORCE_TAG, StageWriter, run_stage
from stageflow_assets.core.stage_store import StageStore

toy_jobs = dg.DynamicPartitionsDefinition(name="toy_outbox_jobs")
OUTBOX = StageSpec("toy", "outbox", outbox=True)


class DeliverConfig(dg.Config):
    files: list[str] = ["a.txt", "b.txt"]
    text: str = "v1"
    fail_after: int = -1  # fail once this many files are written


@dg.asset(partitions_def=toy_jobs, code_version="1", metadata=OUTBOX.metadata)
def toy_outbox(context: dg.AssetExecutionContext, config: DeliverConfig, storage: StageStore):
    def work(out: StageWriter) -> None:
        for i, name in enumerate(config.files):
            if i == config.fail_after:
                raise BadInputError("toy delivery failed half way")
            out.output(name, kind="text", fmt="txt").write_text(f"{config.text} {name}")

    return run_stage(context, storage.paths, OUTBOX, inputs=[], work=work,
                     config={"files": config.files, "text": config.text})


@pytest.fixture
def deliver(tmp_path):
    store = StageStore(home=str(tmp_path))
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(toy_jobs.name, ["job-1"])

        def run(tags=None, **config):
            return dg.materialize(
                [toy_outbox], instance=instance, partition_key="job-1", raise_on_error=False, tags=tags,
                resources={"storage": store, "io_manager": StageManifestIOManager(store=store)},
                run_config=dg.RunConfig({"toy_outbox": DeliverConfig(**config)}),
            )

        yield run, store.paths


def _names(folder):
    return sorted(p.name for p in folder.iterdir())


def test_the_outbox_folder_is_the_stage_dir_and_holds_the_outputs(deliver):
    run, paths = deliver
    assert run().success
    folder = paths.root / "outbox" / "toy" / "job-1"
    assert paths.dir_of(OUTBOX, "job-1") == folder
    assert _names(folder) == ["a.txt", "b.txt", "manifest.json", "stage.log"]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert [o["path"] for o in manifest["outputs"]] == ["outbox/toy/job-1/a.txt", "outbox/toy/job-1/b.txt"]
    assert "success" in (folder / "stage.log").read_text()
    assert _names(folder.parent) == ["job-1"]  # no staging folder left beside it
    assert not (paths.root / "toy").exists()  # nothing under the stage dirs


def test_a_new_delivery_replaces_the_folder_whole(deliver):
    run, paths = deliver
    folder = paths.dir_of(OUTBOX, "job-1")
    assert run().success
    assert run(files=["c.txt"], text="v2").success
    assert _names(folder) == ["c.txt", "manifest.json", "stage.log"]  # a.txt, b.txt went with the old one
    assert (folder / "c.txt").read_text() == "v2 c.txt"
    assert (folder / "stage.log").read_text().count("started") == 2  # the log goes on
    assert _names(folder.parent) == ["job-1"]


def test_a_failed_delivery_leaves_the_last_one_untouched(deliver):
    run, paths = deliver
    folder = paths.dir_of(OUTBOX, "job-1")
    assert run().success
    assert not run(files=["x.txt", "y.txt"], text="v2", fail_after=1).success
    assert (folder / "a.txt").read_text() == "v1 a.txt" and not (folder / "x.txt").exists()
    assert json.loads((folder / "manifest.failed.json").read_text())["errors"][0]["message"] == \
        "toy delivery failed half way"
    assert _names(folder.parent) == ["job-1"]  # its staging folder removed


def test_a_first_delivery_that_fails_shows_no_half_folder(deliver):
    run, paths = deliver
    assert not run(fail_after=1).success
    folder = paths.dir_of(OUTBOX, "job-1")
    assert not (folder / "a.txt").exists()  # only the failure's manifest and log
    assert _names(folder) == ["manifest.failed.json", "stage.log"]


def test_the_next_success_removes_a_failure_notice_delivered_or_reused(deliver):
    run, paths = deliver
    assert run().success
    write_failure_notice(paths, "toy", "job-1", "subtitles [es]: apertium failed", "run-1")
    assert read_failure_notice(paths, "toy", "job-1") == "subtitles [es]: apertium failed (run run-1)"
    assert run().success  # unchanged: reused, and the notice goes
    assert not (paths.dir_of(OUTBOX, "job-1") / FAILED_NOTICE).exists()
    write_failure_notice(paths, "toy", "job-1", "again", "run-2")
    assert run(tags={FORCE_TAG: "true"}).success  # delivered anew: the new folder has no notice
    assert read_failure_notice(paths, "toy", "job-1") is None


def test_a_late_notice_does_not_follow_a_later_delivery(deliver):
    run, paths = deliver
    assert run().success
    delivered = json.loads((paths.dir_of(OUTBOX, "job-1") / "manifest.json").read_text())["finished"]
    from datetime import datetime

    before = datetime.fromisoformat(delivered).timestamp() - 5
    assert write_failure_notice(paths, "toy", "job-1", "old failure", "run-0", failed_at=before) is False
    assert read_failure_notice(paths, "toy", "job-1") is None


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2-exchange", "rename-aside"])
def test_readers_never_see_a_half_folder(tmp_path, monkeypatch, exchange):
    """A reader opening the folder while it is replaced 200 times finds one version's files, all of
    them, whenever what it read was in place the whole time (with the fallback, the folder may be
    absent for an instant); an old folder read after it was swapped out is being removed."""
    if not exchange:
        monkeypatch.setattr(paths_module, "_exchange", lambda a, b: False)
    final = tmp_path / "outbox" / "job"
    names = sorted(f"f{i}.txt" for i in range(8))

    def build(version: int):
        staging = paths_module.staging_dir(final, f"{version:08d}")
        staging.mkdir(parents=True)
        for name in names:
            (staging / name).write_text(str(version))
        return staging

    replace_dir(build(0), final)
    half, seen, reads, stop = [], set(), threading.Semaphore(0), threading.Event()

    def read_once():
        try:
            fd = os.open(final, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:
            return
        try:
            inode = os.fstat(fd).st_ino
            listing = sorted(os.listdir(fd))
            versions = set()
            for name in listing:
                with open(os.open(name, os.O_RDONLY, dir_fd=fd), encoding="utf-8") as fh:
                    versions.add(fh.read())
            in_place = os.stat(final).st_ino == inode
        except FileNotFoundError:
            return
        finally:
            os.close(fd)
        if in_place:
            seen.update(versions)
            if listing != names or len(versions) != 1:
                half.append((listing, versions))
        reads.release()

    def reader():
        while not stop.is_set():
            read_once()

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for version in range(1, 201):
            assert reads.acquire(timeout=60)  # the reader has read since the last swap
            replace_dir(build(version), final)
    finally:
        stop.set()
        thread.join(timeout=60)
    assert half == []
    assert {(final / n).read_text() for n in names} == {"200"}
    assert sorted(p.name for p in final.parent.iterdir()) == ["job"]
    assert len(seen) > 1  # it read the folder in place across versions
