"""The outbox: each job's deliverables in `$STAGEFLOW_HOME/outbox/<domain>/<job>/`, and the notice
of a job that failed.

The folder is the stage directory of each domain's outbox asset (`StageSpec(outbox=True)`): the
stage runtime builds it beside its place and swaps it in whole when the job's last stage
succeeds. A job whose run fails gets `FAILED.txt` there instead, one line: what failed, why, and
the run to inspect. The old deliverables, if any, stay beside it (the last good version); the
next success replaces the folder, notice included.

Who writes the notice: the CLI for the runs it executes (it waits for them), and the
`outbox_failure_notice` sensor for every other run of the code location (inbox, automation,
UI), which the daemon launches.
"""

from __future__ import annotations

import time

import dagster as dg

from stageflow_assets.core.events import one_line, step_error
from stageflow_assets.core.manifest import MANIFEST_NAME, read_manifest
from stageflow_assets.core.paths import StagePaths, write_text_atomic
from stageflow_assets.core.stage import JOB_TAG

FAILED_NOTICE = "FAILED.txt"
DOMAIN_TAG = "stageflow/domain"
OUTBOX_DOMAINS = ("subtitles", "vocabulary")  # the domains with an outbox asset
NO_NOTICE_TAG = "stageflow/no_failure_notice"  # a job whose failures say nothing about deliveries


def write_failure_notice(paths: StagePaths, domain: str, job: str, message: str, run_id: str | None = None,
                         failed_at: float | None = None) -> bool:
    """`FAILED.txt` in the job's outbox folder; not when the outbox was delivered after `failed_at`
    (a notice read late, e.g. by a sensor, must not follow a later success). True if written."""
    directory = paths.outbox_dir(domain, job)
    delivered = read_manifest(directory / MANIFEST_NAME)
    if failed_at is not None and delivered is not None and delivered.finished is not None \
            and delivered.finished.timestamp() > failed_at:
        return False
    line = one_line(message, "the run failed")
    write_text_atomic(directory / FAILED_NOTICE, f"{line} (run {run_id})\n" if run_id else f"{line}\n")
    return True


def read_failure_notice(paths: StagePaths, domain: str, job: str) -> str | None:
    try:
        return (paths.outbox_dir(domain, job) / FAILED_NOTICE).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None


def note_cli_failure(instance: dg.DagsterInstance, paths: StagePaths, domain: str, job: str,
                     message: str, run_id: str | None) -> None:
    """FAILED.txt for a run the CLI executed, worded as the daemon's notice words it; never in the
    way of the error the CLI reports (the instance's database may be what failed)."""
    try:
        run = instance.get_run_by_id(run_id) if run_id else None
        line = run_failure_line(instance, run) if run is not None else message
    except Exception:  # noqa: BLE001 - the command's own error line says what happened
        line = message
    try:
        write_failure_notice(paths, domain, job, line, run_id)
    except OSError:
        pass


def run_failure_line(instance: dg.DagsterInstance, run: dg.DagsterRun) -> str:
    """What failed in `run` and why, in one line: `subtitles [es]: <the step's error>`."""
    failures = instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE).records
    if failures:
        event = failures[0].event_log_entry.dagster_event
        lang = run.tags.get("dagster/partition/lang")
        what = f"{event.step_key} [{lang}]" if lang else event.step_key
        return f"{what}: {_failed_checks(instance, run.run_id) or step_error(event.step_failure_data)}"
    ended = instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE).records
    message = ended[-1].event_log_entry.message if ended else None
    return f"{run.job_name}: {one_line(message, 'the run failed')}"


def _failed_checks(instance: dg.DagsterInstance, run_id: str) -> str | None:
    """`blocking check qc_errors failed (empty: 3)` for the run's failed ERROR checks, if any."""
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records
    failed = []
    for record in records:
        check = record.event_log_entry.dagster_event.asset_check_evaluation_data
        if check.passed or check.severity != dg.AssetCheckSeverity.ERROR:
            continue
        counts = getattr(check.metadata.get("violations"), "value", None)
        found = ", ".join(f"{rule}: {n}" for rule, n in counts.items() if n) if isinstance(counts, dict) else ""
        failed.append(f"{check.check_name} ({found})" if found else check.check_name)
    if not failed:
        return None
    return f"blocking check {', '.join(failed)} failed: nothing further is made until it passes"


def job_of_run(run: dg.DagsterRun) -> str | None:
    tags = run.tags
    return tags.get(JOB_TAG) or tags.get("dagster/partition/job") or tags.get("dagster/partition")


def outbox_domain_of(paths: StagePaths, run: dg.DagsterRun, job: str) -> str | None:
    """The domain whose outbox a run's job has: its job's domain tag, else the domain that has
    the job (runs Dagster's automation creates carry no job tags)."""
    domain = run.tags.get(DOMAIN_TAG)
    if domain is not None:
        return domain if domain in OUTBOX_DOMAINS else None
    for candidate in OUTBOX_DOMAINS:
        try:
            if paths.job_dir(candidate, job).is_dir():
                return candidate
        except ValueError:  # not a job key
            return None
    return None


def run_end_time(instance: dg.DagsterInstance, run_id: str) -> float | None:
    records = instance.get_run_records(filters=dg.RunsFilter(run_ids=[run_id]), limit=1)
    if not records:
        return None
    end = records[0].end_time
    return float(end) if end is not None else time.time()
