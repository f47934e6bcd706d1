"""`stageflow forget KEY`: a job's stage dirs, outbox folder and partition go; nothing else.

The key may be a video's (subtitles), a deck's (vocabulary) or a journey's; every domain that
has it forgets it. Its runs stay in the instance's history (the UI still lists them) unless
`runs` is set. Nothing is forgotten while one of its runs is queued or going: its files would be
written again under a partition that no longer exists.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from stageflow_assets.core.keys import KEY_PATTERN
from stageflow_assets.core.paths import StagePaths, remove_staging_dirs
from stageflow_assets.core.stage import JOB_TAG

ACTIVE = (dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
          dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING)
# the tags a run of a job carries: stageflow's own (set by whoever launched it, or by the stage
# runtime), and Dagster's partition tags (a run automation makes has only those)
_RUN_TAGS = (JOB_TAG, "dagster/partition", "dagster/partition/job")


class ForgetError(Exception):
    """Nothing was forgotten: one line saying why."""


class UnknownKey(ForgetError):
    pass


class KeyInUse(ForgetError):
    pass


@dataclass(frozen=True)
class Domain:
    name: str  # its directory under STAGEFLOW_HOME
    partitions: str  # its dynamic partitions definition
    noun: str


@dataclass
class Forgotten:
    lines: list[str] = field(default_factory=list)  # `forgot: ...` / `kept: ...`, in order


def domains() -> list[Domain]:
    from stageflow_assets.journey.partitions import journey_partitions
    from stageflow_assets.subtitles.partitions import subtitle_job_partitions
    from stageflow_assets.vocabulary.partitions import word_list_partitions

    return [Domain("subtitles", subtitle_job_partitions.name, "video"),
            Domain("vocabulary", word_list_partitions.name, "deck"),
            Domain("journey", journey_partitions.name, "journey")]


def runs_of(instance: dg.DagsterInstance, key: str) -> list[dg.DagsterRun]:
    found: dict[str, dg.DagsterRun] = {}
    for tag in _RUN_TAGS:
        for record in instance.get_run_records(filters=dg.RunsFilter(tags={tag: key})):
            found.setdefault(record.dagster_run.run_id, record.dagster_run)
    return list(found.values())


def _places(paths: StagePaths, domain: Domain, key: str) -> list[tuple[str, Path]]:
    return [("stage dirs", paths.job_dir(domain.name, key)), ("outbox", paths.outbox_dir(domain.name, key))]


def forget(instance: dg.DagsterInstance, paths: StagePaths, key: str, runs: bool = False) -> Forgotten:
    if not KEY_PATTERN.match(key):
        raise UnknownKey(f"{key!r} is not a stageflow key (lower-case letters, digits, '.', '_', '-'): "
                         "give the key from a `job:` or `journey:` line")
    owners = [d for d in domains() if instance.has_dynamic_partition(d.partitions, key)
              or any(path.exists() for _, path in _places(paths, d, key))]
    if not owners:
        raise UnknownKey(f"{key}: no video, deck or journey has this key (the `job:` or `journey:` line of the "
                         "command that made it names it)")
    history = runs_of(instance, key)
    going = [run for run in history if run.status in ACTIVE]
    if going:
        run = going[0]
        raise KeyInUse(f"{key}: run {run.run_id} ({run.job_name}) is {run.status.value}; wait for it to end "
                       "or terminate it (make ui), then forget the key")
    done = Forgotten()
    for domain in owners:
        if instance.has_dynamic_partition(domain.partitions, key):
            # first, so no sensor or automation tick starts work for it while its files go
            instance.delete_dynamic_partition(domain.partitions, key)
            done.lines.append(f"forgot: partition {domain.partitions}/{key} ({domain.noun})")
        for what, path in _places(paths, domain, key):
            remove_staging_dirs(path)  # a delivery a killed run left half built
            if path.exists():
                shutil.rmtree(path)
                done.lines.append(f"forgot: {path} ({what})")
    if runs:
        for run in history:
            instance.delete_run(run.run_id)
        done.lines.append(f"forgot: {len(history)} run(s) and their event logs")
    elif history:
        done.lines.append(f"kept: {len(history)} run(s) in the instance's history (--runs deletes them)")
    return done
