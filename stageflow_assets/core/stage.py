"""The stage runtime: one call wraps an asset body with its stage dir, manifest and log.

An asset body hands `run_stage` its inputs, its provider config and a `work` function that
writes outputs through the `StageWriter`. The runtime reuses unchanged work, renames finished
files into place, and on failure writes `manifest.failed.json` while the last good outputs
and `manifest.json` stay untouched.
"""

from __future__ import annotations

import functools
import inspect
import os
import resource
import shutil
import threading
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, NoReturn

import dagster as dg

from stageflow_assets.core.errors import BadInputError, CircuitOpenError, StageError
from stageflow_assets.core.hashing import sha256_file, sha256_json
from stageflow_assets.core.manifest import (
    FAILED_MANIFEST_NAME,
    MANIFEST_NAME,
    ErrorRecord,
    FileRecord,
    StageManifest,
    read_manifest,
)
from stageflow_assets.core import progress
from stageflow_assets.core.metadata import manifest_metadata
from stageflow_assets.core.paths import (
    TEMP_MARK,
    StagePaths,
    StageSpec,
    remove_staging_dirs,
    replace_dir,
    staging_dir,
    temp_name,
    write_text_atomic,
)

FORCE_TAG = "stageflow/force"
# every run that touches a job carries its key, whoever launched it (CLI, sensor, automation,
# UI), so the UI lists a video's runs together
JOB_TAG = "stageflow/job"
# who asked for a run: `cli`, `inbox` (a sensor), `automation` (the daemon's conditions), ...
SOURCE_TAG = "stageflow/source"
STAGE_LOG_NAME = "stage.log"
_KEEP = {MANIFEST_NAME, FAILED_MANIFEST_NAME, STAGE_LOG_NAME}


def partition_parts(partition_key: Any) -> tuple[str, str | None]:
    """(job, lang) from a `job` key or a `job × lang` MultiPartitionKey."""
    dims = getattr(partition_key, "keys_by_dimension", None)
    if dims:
        return dims["job"], dims.get("lang")
    return str(partition_key), None


@dataclass
class StageLog:
    path: Path
    context: Any = None
    # an outbox stage holds its lines until it knows which folder ends up in place
    pending: list[str] | None = None

    def __call__(self, message: str, level: str = "info") -> None:
        stamp = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        line = f"{stamp} {level.upper():5} {message}\n"
        if self.pending is not None:
            self.pending.append(line)
        else:
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(line)
        # info lines stay in stage.log: each Dagster log event costs a database write
        if self.context is not None and level != "info":
            getattr(self.context.log, level)(message)

    def flush(self, path: Path | None = None) -> None:
        """Append the held lines to `path` (default: the log's own)."""
        if self.pending:
            target = path or self.path
            target.parent.mkdir(parents=True, exist_ok=True)
            with target.open("a", encoding="utf-8") as fh:
                fh.writelines(self.pending)
            self.pending = []


@dataclass
class StageWriter:
    """What a stage body uses to declare outputs, details and timings."""

    directory: Path
    run_id: str
    log: StageLog
    details: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    preview: str | None = None
    status: str = "success"
    declared: list[tuple[Path, dict[str, Any]]] = field(default_factory=list)  # (final path, record fields)
    staging: Path | None = None  # an outbox stage's next folder, put in place whole on success

    def output(self, name: str, kind: str, fmt: str = "", language: str | None = None) -> Path:
        """A temp path to write `name` to; it is renamed into place when the stage succeeds."""
        final = self.directory / name
        self.declared.append((final, {"kind": kind, "format": fmt, "language": language}))
        return self.produced(final)

    def produced(self, final: Path) -> Path:
        return self.staging / final.name if self.staging is not None else temp_name(final, self.run_id)

    def skip(self, reason: str) -> None:
        """Record the stage as skipped (no outputs), e.g. a language no backend serves."""
        self.status = "skipped"
        self.details["skipped_reason"] = reason
        self.log(f"skipped: {reason}", "warning")

    @contextmanager
    def timed(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = round(time.perf_counter() - start, 4)


@dataclass(frozen=True)
class StageInput:
    path: Path
    upstream_asset: str | None = None
    upstream_partition: str | None = None
    kind: str = ""


def stage_input(paths: StagePaths, manifest: StageManifest, kind: str) -> StageInput:
    """The upstream stage's output of `kind`, as this stage's input (path, asset, partition)."""
    record = manifest.output(kind)
    return StageInput(paths.absolute(record.path), manifest.stage, manifest.partition, kind)


# steps that call a provider (a tool, a network service) retry with backoff and jitter; bad
# input never reaches a retry (`one_line_failures`)
PROVIDER_RETRY = dg.RetryPolicy(max_retries=2, delay=1, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)


def _record(paths: StagePaths, path: Path, content: Path | None = None, **extra: Any) -> FileRecord:
    """`path` as recorded; `content` is where its bytes are now, if elsewhere (a staging folder)."""
    content = content or path
    if not content.is_file():
        raise BadInputError(
            f"{path}: the input file is gone; restore it (or re-materialize the asset that made it)",
            input=str(path),
        )
    return FileRecord(
        path=paths.relative(path), sha256=sha256_file(content), bytes=content.stat().st_size, **extra
    )


def _still_valid(paths: StagePaths, manifest: StageManifest) -> bool:
    for record in manifest.outputs:
        path = paths.absolute(record.path)
        if not path.is_file() or path.stat().st_size != record.bytes:
            return False
        if sha256_file(path) != record.sha256:
            return False
    return True


def _remove_temps(directory: Path) -> None:
    for leftover in directory.glob(f"*{TEMP_MARK}*"):
        if leftover.is_file():
            leftover.unlink(missing_ok=True)


def _to_the_end(work: Callable[[], None]) -> None:
    """`work()`, finished even if interrupts arrive meanwhile. A step that is already stopping
    hears more of them (the run watcher repeats its interrupt while the run is CANCELING, a user
    presses Ctrl-C twice): its failure record must still be written whole and its temporary files
    removed. Signals reach only the main thread, so `work` runs in another while this one waits
    and lets them pass; if the run still goes, the watcher interrupts it again a moment later."""
    failed: list[BaseException] = []
    done = threading.Event()  # not Thread.join: one interrupted by a signal marks the thread ended

    def body() -> None:
        try:
            work()
        except BaseException as exc:  # noqa: BLE001 - raised again in the step's thread
            failed.append(exc)
        finally:
            done.set()

    threading.Thread(target=body, name="stageflow-failure-record", daemon=True).start()
    while not done.is_set():
        try:
            done.wait(0.1)
        except (KeyboardInterrupt, dg.DagsterExecutionInterruptedError):
            continue
    if failed:
        raise failed[0]


def run_stage(
    context: dg.AssetExecutionContext,
    paths: StagePaths,
    spec: StageSpec,
    *,
    inputs: list[StageInput],
    config: dict[str, Any],
    work: Callable[[StageWriter], None],
    provider_versions: dict[str, str] | None = None,
) -> dg.Output[StageManifest]:
    """Run `work` for this asset partition in its own stage dir and describe the result."""
    job, lang = partition_parts(context.partition_key)
    directory = paths.dir_of(spec, job, lang)
    stage = context.asset_key.to_user_string()
    run_id = context.run.run_id
    staging = None
    if spec.outbox:  # built beside it, so the folder appears (or changes) complete, never half
        remove_staging_dirs(directory)
        staging = staging_dir(directory, run_id)
        staging.mkdir(parents=True)
    else:
        directory.mkdir(parents=True, exist_ok=True)
    _remove_temps(directory)
    log = StageLog(directory / STAGE_LOG_NAME, context, pending=[] if spec.outbox else None)
    code_version = context.assets_def.code_versions_by_key.get(context.asset_key) or ""
    started = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    base = dict(
        domain=spec.domain,
        stage=stage,
        partition=str(context.partition_key),
        run_id=run_id,
        started=started,
        code_version=code_version,
        config=config,
        provider_versions=provider_versions or {},
    )
    log(f"run {run_id}: {stage} [{base['partition']}] started")
    progress.stage_started(stage, base["partition"])  # the CLI's display, when it runs this run
    if context.run.tags.get(JOB_TAG) != job:
        context.instance.add_run_tags(run_id, {JOB_TAG: job})

    try:
        input_records = [
            _record(
                paths,
                item.path,
                kind=item.kind,
                upstream_asset=item.upstream_asset,
                upstream_partition=item.upstream_partition,
            )
            for item in inputs
        ]
        fingerprint = sha256_json(
            {"code": code_version, "config": config, "inputs": [r.sha256 for r in input_records]}
        )
        previous = read_manifest(directory / MANIFEST_NAME)
        forced = context.run.tags.get(FORCE_TAG) == "true"
        if (
            not forced
            and previous is not None
            and previous.fingerprint == fingerprint
            and _still_valid(paths, previous)
        ):
            log(f"inputs, code and config unchanged since run {previous.run_id}: reusing outputs")
            manifest = previous.model_copy(
                update=dict(
                    **base,
                    reused=True,
                    reused_from_run=previous.reused_from_run or previous.run_id,
                    finished=datetime.now(timezone.utc),
                    duration_s=round(time.perf_counter() - t0, 4),
                    fingerprint=fingerprint,
                )
            )
            if staging is not None:
                _discard_staging(staging, directory, previous, log)
            progress.stage_done(stage, base["partition"], "reused", manifest.duration_s)
            return _as_output(paths, directory, manifest)

        writer = StageWriter(directory=directory, run_id=run_id, log=log, staging=staging)
        with writer.timed("work"):
            work(writer)
        outputs = []
        for final, extra in writer.declared:
            produced = writer.produced(final)
            if not produced.is_file():
                raise StageError(f"{stage} did not produce {final.name}", expected=str(final))
            if staging is None:
                os.replace(produced, final)
            outputs.append(_record(paths, final, produced if staging is not None else None, **extra))
        manifest = StageManifest(
            **base,
            status=writer.status,
            finished=datetime.now(timezone.utc),
            duration_s=round(time.perf_counter() - t0, 4),
            fingerprint=fingerprint,
            inputs=input_records,
            outputs=outputs,
            details=writer.details,
            warnings=writer.warnings,
            timings=writer.timings,
            resources={"process_peak_rss_mb": _peak_rss_mb()},
        )
        if staging is not None:
            log(f"{writer.status} in {manifest.duration_s:.2f}s: {len(outputs)} output(s)")
            output = _as_output(paths, directory, manifest, preview=writer.preview)
            _publish_staging(staging, directory, output.value, log)
            progress.stage_done(stage, base["partition"], writer.status, manifest.duration_s)
            return output
        kept = {Path(r.path).name for r in outputs} | _KEEP
        for stale in directory.iterdir():
            if stale.is_file() and stale.name not in kept:
                stale.unlink()
        (directory / FAILED_MANIFEST_NAME).unlink(missing_ok=True)
        log(f"{writer.status} in {manifest.duration_s:.2f}s: {len(outputs)} output(s)")
        progress.stage_done(stage, base["partition"], writer.status, manifest.duration_s)
        return _as_output(paths, directory, manifest, preview=writer.preview)
    except BaseException as exc:  # noqa: BLE001 - interrupts must leave a failed manifest too
        def record_failure(exc: BaseException) -> None:
            if isinstance(exc, (KeyboardInterrupt, dg.DagsterExecutionInterruptedError)):
                # stopped on purpose (Ctrl-C, Terminate, SIGTERM): the run ends CANCELED, not FAILURE
                _note_interrupt(context, run_id)
            _remove_temps(directory)
            if staging is not None:
                shutil.rmtree(staging, ignore_errors=True)
            error = _error_record(exc)
            failed = StageManifest(
                **base,
                status="failed",
                finished=datetime.now(timezone.utc),
                duration_s=round(time.perf_counter() - t0, 4),
                errors=[error],
            )
            write_text_atomic(directory / FAILED_MANIFEST_NAME, failed.model_dump_json(indent=2))
            log(f"failed: {error.message}", "error")
            log.flush()
            progress.stage_done(stage, base["partition"], "interrupted" if error.type == "Interrupted" else "failed",
                                failed.duration_s)

        _to_the_end(functools.partial(record_failure, exc))
        if isinstance(exc, (KeyboardInterrupt, dg.DagsterExecutionInterruptedError)):
            # not retried (Dagster's retry policy would run the step again): the run is canceling
            raise dg.Failure(description=f"{stage} [{base['partition']}] interrupted: the run was canceled",
                             allow_retries=False) from exc
        if isinstance(exc, StageError):
            raise_as_failure(exc, failed_manifest=dg.MetadataValue.path(str(directory / FAILED_MANIFEST_NAME)))
        raise


def raise_as_failure(exc: StageError, **metadata: Any) -> NoReturn:
    """`exc` as Dagster's `Failure`: its one line as the description, its details as metadata
    (a tool's stderr on its own), retried only where a retry can help (never bad input)."""
    metadata = {"input": dg.MetadataValue.json(exc.details) if exc.details else "", **metadata}
    if isinstance(exc.details.get("stderr"), str):
        metadata["stderr"] = dg.MetadataValue.md(f"```\n{exc.details['stderr']}\n```")
    if isinstance(exc.details.get("breaker"), dict):
        metadata["breaker"] = dg.MetadataValue.json(exc.details["breaker"])
    failure = dg.Failure(description=exc.message, metadata=metadata, allow_retries=exc.retryable)
    if isinstance(exc, CircuitOpenError) and exc.wait_retries > 0:
        # the provider's circuit is open: try again once its cool-down is over
        raise dg.RetryRequested(max_retries=exc.wait_retries, seconds_to_wait=exc.seconds_left()) from failure
    raise failure from exc


def one_line_failures(body: Callable[..., Any]) -> Callable[..., Any]:
    """Put under `@dg.asset` on every stage asset: a `StageError` raised anywhere in the body
    (loading an upstream manifest, reading a job's glossary or registry record, as much as
    inside `run_stage`'s work) fails the step with its one line, and bad input only once.

    Without it such an error reaches Dagster as a plain exception: the step's retry policy
    runs the body again and the run ends in "Exceeded max_retries", naming no input.
    """
    if inspect.isgeneratorfunction(body):  # assets that also yield check results

        @functools.wraps(body)
        def generator(*args: Any, **kwargs: Any) -> Iterator[Any]:
            try:
                yield from body(*args, **kwargs)
            except StageError as exc:
                raise_as_failure(exc)

        return generator

    @functools.wraps(body)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return body(*args, **kwargs)
        except StageError as exc:
            raise_as_failure(exc)

    return wrapper


def _publish_staging(staging: Path, directory: Path, manifest: StageManifest, log: StageLog) -> None:
    """The staging folder, completed with the manifest and the log so far, in place of `directory`."""
    if (directory / STAGE_LOG_NAME).is_file():
        shutil.copyfile(directory / STAGE_LOG_NAME, staging / STAGE_LOG_NAME)
    log.flush(staging / STAGE_LOG_NAME)
    (staging / MANIFEST_NAME).write_text(manifest.model_dump_json(indent=2), encoding="utf-8")
    replace_dir(staging, directory)


def _discard_staging(staging: Path, directory: Path, kept: StageManifest, log: StageLog) -> None:
    """Reused outputs: the folder stays; what is not one of them (an old failure's notice) goes."""
    shutil.rmtree(staging, ignore_errors=True)
    names = {Path(r.path).name for r in kept.outputs} | {MANIFEST_NAME, STAGE_LOG_NAME}
    for stale in directory.iterdir():
        if stale.is_file() and stale.name not in names:
            stale.unlink(missing_ok=True)
    log.flush()


def _note_interrupt(context: dg.AssetExecutionContext, run_id: str) -> None:
    from stageflow_assets.core.cancel import mark_canceling

    try:
        mark_canceling(context.instance, run_id, "Canceling: interrupted (Ctrl-C, Terminate or SIGTERM)")
    except Exception:  # noqa: BLE001 - the run then ends FAILURE instead, still stopped
        pass


def _error_record(exc: BaseException) -> ErrorRecord:
    if isinstance(exc, (KeyboardInterrupt, dg.DagsterExecutionInterruptedError)):
        return ErrorRecord(type="Interrupted", message="interrupted: the run was canceled")
    if isinstance(exc, StageError):
        return ErrorRecord(type=type(exc).__name__, message=exc.message, details=exc.details)
    message = str(exc) or type(exc).__name__
    tail = "".join(traceback.format_exception(exc)[-3:])
    return ErrorRecord(type=type(exc).__name__, message=message, details={"traceback": tail})


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _as_output(
    paths: StagePaths, directory: Path, manifest: StageManifest, preview: str | None = None
) -> dg.Output[StageManifest]:
    if preview is None and manifest.reused:
        preview = manifest.details.get("preview")
    if preview:
        manifest.details["preview"] = preview
    return dg.Output(
        manifest,
        metadata=manifest_metadata(paths, directory, manifest),
        data_version=dg.DataVersion(manifest.data_version),
    )
