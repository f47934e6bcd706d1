"""`stageflow`: drive the same definitions and instance as the Dagster UI."""

from __future__ import annotations

import gc
import logging
import os
import re
import signal
import sys
import warnings
from pathlib import Path

import click

from stageflow_assets.core.settings import configured_languages, project_root
from stageflow_assets.records.formats import FORMATS as EXPORT_FORMATS

# one exit-code table for every command
EXIT_DONE, EXIT_RUN_FAILED, EXIT_BAD_INPUT, EXIT_BLOCKED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


def _fail(message: str, run_id: str | None = None, code: int = EXIT_RUN_FAILED) -> None:
    suffix = f" (run {run_id}; inspect it in the UI: make ui)" if run_id else ""
    click.echo(f"stageflow: error: {message}{suffix}", err=True)
    sys.exit(code)


def _interrupted(exc: BaseException) -> None:
    """Ctrl-C, Terminate or a max runtime stopped the work: one line, exit 130."""
    run_id = getattr(exc, "run_id", None)
    what = str(exc) or "interrupted; nothing was delivered"
    suffix = f" (run {run_id} canceled)" if run_id else ""
    click.echo(f"stageflow: interrupted: {what}{suffix}", err=True)
    sys.exit(EXIT_INTERRUPTED)


def shown():
    """Progress on stderr while a command's runs go (`core.progress`): a live display on a
    terminal, plain lines otherwise. Stopped before the result lines and the one error line."""
    from stageflow_assets.core.progress import shown as progress_shown

    return progress_shown()


max_runtime_option = click.option(
    "--max-runtime", "max_runtime", type=click.FloatRange(min=0, min_open=True), default=None, metavar="SECONDS",
    help="Cancel a run that goes longer than this (tags it dagster/max_runtime).")


@click.group()
def main() -> None:
    """Media pipelines as Dagster assets: subtitles, vocabulary (Anki decks), journeys and their
    research records, daily usage and Claude's costs; and the commands that run, follow,
    re-execute and forget that work."""
    # Output(data_version=...) and partitioned checks are marked beta/preview; nothing a user can act on
    warnings.filterwarnings("ignore", message=".*is currently in (beta|preview).*")
    # dagster-celery registers its run task again in each launcher it builds: harmless (Celery 5.7)
    warnings.filterwarnings("ignore", message="Task name 'execute_job' is already registered")
    logging.root.addHandler(_OneLineWarnings())


class _OneLineWarnings(logging.Handler):
    """Warnings that reach the root logger, as one `stageflow: warning:` line each, said once.

    dagster-postgres logs "Retrying failed database connection" with the driver's five-line text
    at every retry while the server restarts (through `logging.warning`, which would otherwise
    install a `WARNING:root:` handler of its own). A record whose exception is the interrupt itself
    (SQLAlchemy's pool logs "Exception closing connection" when Ctrl-C lands inside a close) is
    left out: the interrupt has its own `stageflow: interrupted:` line.
    """

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self._said: set[str] = set()

    def emit(self, record: logging.LogRecord) -> None:
        import dagster as dg  # already loaded whenever anything logs; imported lazily for start-up

        if record.exc_info and isinstance(
            record.exc_info[1], (KeyboardInterrupt, dg.DagsterExecutionInterruptedError)):
            return
        line = " ".join(record.getMessage().split("\n")[0].split())
        if line and line not in self._said:
            self._said.add(line)
            # stageflow's own reports (e.g. the event sink's) are already one `stageflow: ...` line
            click.echo(line if line.startswith("stageflow:") else f"stageflow: warning: {line}", err=True)


@main.command()
@click.argument("videos", metavar="VIDEO...", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--lang", "-l", "languages", multiple=True, required=True,
              help="Target language (ISO 639-1), repeatable. The spoken language gives captions.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False),
              help="Copy <job>.<lang>.srt/.vtt and <job>.mkv here.")
@click.option("--force", is_flag=True, help="Recompute every stage instead of reusing unchanged work.")
@click.option("--glossary", type=click.Path(path_type=Path, dir_okay=False),
              help="CSV of `source term,target language,target term` forced in translation.")
@click.option("--container", type=click.Choice(["mkv", "mp4"]), default="mkv", show_default=True,
              help="Subtitled video container (MP4 gets mov_text tracks).")
@click.option("--burn-in", "burn_in", help="Also burn this language's subtitles into the picture.")
@max_runtime_option
def subtitles(
    videos: tuple[Path, ...], languages: tuple[str, ...], out_dir: Path | None, force: bool,
    glossary: Path | None, container: str, burn_in: str | None, max_runtime: float | None,
) -> None:
    """Transcribe each VIDEO, translate, write subtitles and mux them, as Dagster runs.

    Several videos share one start-up: one after the other here, or all at once on the
    workers with Celery configured. A failed video does not stop the others.
    """
    configured = configured_languages()
    unknown = [lang for lang in languages if lang.lower() not in configured]
    if unknown:
        _fail(
            f"language {', '.join(unknown)} is not configured (STAGEFLOW_LANGUAGES={','.join(configured)}): "
            "add it there, since the language partitions come from it", code=2,
        )
    for video in videos:
        _readable(video, "video")
    if glossary is not None and not glossary.is_file():
        _fail(f"{glossary}: no such glossary file", code=2)
    if burn_in and burn_in.lower() not in [l.lower() for l in languages]:
        _fail(f"--burn-in {burn_in}: burn in one of the --lang languages", code=2)

    from stageflow_assets.core.errors import BadInputError
    from stageflow_assets.core.stage_store import StageStore
    from stageflow_assets.subtitles.glossary import load_glossary
    from stageflow_assets.subtitles.registry import global_glossary

    paths = StageStore().paths
    # the language runs read them only after the transcription: a bad row must stop us here
    for terms in (global_glossary(paths), glossary):
        if terms is not None and terms.is_file():
            try:
                load_glossary(terms)
            except BadInputError as exc:
                _fail(exc.message, code=EXIT_BAD_INPUT)
    instance = _instance()
    options = dict(languages=[l.lower() for l in languages], out_dir=out_dir, force=force, glossary=glossary,
                   container=container, burn_in=burn_in.lower() if burn_in else None, max_runtime_s=max_runtime)
    if len(videos) == 1:
        _subtitles_one(instance, paths, videos[0], options)
    else:
        _subtitles_many(instance, paths, list(videos), options)


def _subtitles_one(instance, paths, video: Path, options: dict) -> None:
    from stageflow_assets.core.run_sequence import Interrupted
    from stageflow_assets.subtitles.pipeline import PipelineError, run_subtitles

    try:
        with shown() as display:
            result = run_subtitles(instance, paths, video, progress=display.note, **options)
    except PipelineError as exc:
        _fail(str(exc), exc.run_id)
    except Interrupted as exc:
        _interrupted(exc)
    _echo_subtitles(result)


def _subtitles_many(instance, paths, videos: list[Path], options: dict) -> None:
    """Each video's result lines as it ends, an error line for each that failed; exit 1 if one
    did, 130 if one was stopped (Ctrl-C stops them all)."""
    from stageflow_assets.core import scaleout
    from stageflow_assets.core.errors import BadInputError
    from stageflow_assets.core.run_sequence import Interrupted
    from stageflow_assets.subtitles.pipeline import PipelineError, run_subtitles, run_subtitles_side_by_side

    codes: list[int] = []

    def delivered(video: Path, outcome) -> None:
        if isinstance(outcome, Interrupted):
            suffix = f" (run {outcome.run_id} canceled)" if outcome.run_id else ""
            click.echo(f"stageflow: interrupted: {video}: {outcome}{suffix}", err=True)
            codes.append(EXIT_INTERRUPTED)
        elif isinstance(outcome, Exception):
            run_id = getattr(outcome, "run_id", None)
            suffix = f" (run {run_id}; inspect it in the UI: make ui)" if run_id else ""
            message = str(outcome).removeprefix(f"{video.name}: ")  # side by side, runs carry the name
            click.echo(f"stageflow: error: {video}: {message}{suffix}", err=True)
            codes.append(EXIT_RUN_FAILED)
        else:
            _echo_subtitles(outcome)
            codes.append(EXIT_DONE)

    try:
        with shown() as display:
            if scaleout.enabled():
                run_subtitles_side_by_side(instance, paths, videos, progress=display.note, delivered=delivered,
                                           **options)
            else:
                for video in videos:
                    try:
                        outcome = run_subtitles(instance, paths, video, progress=display.note, **options)
                    except (PipelineError, Interrupted) as exc:
                        if isinstance(exc, Interrupted) and exc.by_signal:
                            raise
                        outcome = exc
                    delivered(video, outcome)
    except Interrupted as exc:
        _interrupted(exc)
    except BadInputError as exc:
        _fail(exc.message, code=EXIT_BAD_INPUT)
    if EXIT_RUN_FAILED in codes:
        sys.exit(EXIT_RUN_FAILED)
    if EXIT_INTERRUPTED in codes:
        sys.exit(EXIT_INTERRUPTED)


def _echo_subtitles(result) -> None:
    click.echo(f"job: {result.job}")
    for what, run_id in result.runs:
        click.echo(f"run: {run_id}  {what}")
    for lang, reason in result.skipped.items():
        click.echo(f"skipped: {lang}: {reason}")
    for path in result.deliverables:
        click.echo(f"wrote: {path}")
    if result.outbox is not None:
        click.echo(f"outbox: {result.outbox}")


def _readable(path: Path, what: str) -> None:
    """`path` is a file this process can read, or exit 2 with one line saying what to fix."""
    if path.is_dir():
        _fail(f"{path}: is a directory; give the {what} file itself", code=EXIT_BAD_INPUT)
    if not path.is_file():
        _fail(f"{path}: no such file", code=EXIT_BAD_INPUT)
    try:
        with path.open("rb") as fh:
            fh.read(1)
    except OSError as exc:
        _fail(f"{path}: cannot read the {what} ({exc.strerror or exc}); check its permissions", code=EXIT_BAD_INPUT)


def _instance():
    from stageflow_assets.core.instance import InstanceConfigError, get_instance

    try:
        return get_instance()
    except InstanceConfigError as exc:
        _fail(str(exc), code=2)


@main.command()
@click.argument("words", type=click.Path(path_type=Path))
@click.option("--deck", required=True, help='Anki deck name, e.g. "Spanish::Food" (it is the deck\'s identity).')
@click.option("--lang", "language", default="en", show_default=True, help="Language of the headwords (ISO 639-1).")
@click.option("--native", default=None, help="Your language: cards get an Apertium translation where the pair exists.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False), help="Write <deck slug>.apkg here.")
@click.option("--reverse", is_flag=True, help="Add a production card (meaning → word) to every note.")
@click.option("--sync", is_flag=True, help="Push the deck into a running Anki through AnkiConnect.")
@click.option("--collection", type=click.Path(path_type=Path, dir_okay=False),
              help="Import into this .anki2 collection file instead (implies --sync).")
@click.option("--ankiconnect-url", default="", help="AnkiConnect URL (default http://127.0.0.1:8765).")
@click.option("--prune", is_flag=True, help="With --sync/--collection: delete the deck's notes whose word left "
              "the list (default: tag them stageflow::removed and keep them with their reviews).")
@click.option("--force", is_flag=True, help="Recompute every stage instead of reusing unchanged work.")
@max_runtime_option
def vocab(words: Path, deck: str, language: str, native: str | None, out_dir: Path | None, reverse: bool,
          sync: bool, collection: Path | None, ankiconnect_url: str, prune: bool, force: bool,
          max_runtime: float | None) -> None:
    """Build an Anki deck from the word list WORDS (text, CSV or JSON), as Dagster runs."""
    _readable(words, "word list")
    if collection is not None and collection.suffix != ".anki2":
        _fail(f"{collection}: an Anki collection file ends in .anki2", code=2)
    if prune and not (sync or collection):
        _fail("--prune deletes notes from Anki: use it with --sync or --collection", code=2)

    from stageflow_assets.core.errors import StageError
    from stageflow_assets.core.run_sequence import Interrupted
    from stageflow_assets.core.stage_store import StageStore
    from stageflow_assets.vocabulary.pipeline import PipelineError, SyncRequest, run_vocab
    from stageflow_assets.vocabulary.wordlist import parse_word_list

    try:
        parse_word_list(words)  # an unusable list fails here, before any partition or run
    except StageError as exc:
        _fail(exc.message, code=EXIT_BAD_INPUT)

    request = SyncRequest(collection=collection, ankiconnect_url=ankiconnect_url, prune=prune) if (
        sync or collection) else None
    instance = _instance()
    try:
        with shown() as display:
            result = run_vocab(
                instance, StageStore().paths, words, deck, language.lower(), native, reverse, out_dir,
                sync=request, force=force, progress=display.note, max_runtime_s=max_runtime,
            )
    except PipelineError as exc:
        _fail(str(exc), exc.run_id)
    except Interrupted as exc:
        _interrupted(exc)
    except StageError as exc:
        _fail(exc.message, code=2)
    click.echo(f"job: {result.job}")
    for what, run_id in result.runs:
        click.echo(f"run: {run_id}  {what}")
    if result.deck_reused:
        click.echo(f"notes: {result.deck.get('notes')} (list unchanged: deck reused)")
    else:
        click.echo(f"notes: {result.deck.get('notes')} ({result.deck.get('new_notes')} new, "
                   f"{result.deck.get('changed_notes')} changed)")
    unknown = result.analysis.get("unknown_words") or []
    if unknown:
        click.echo(f"unknown: {', '.join(unknown[:20])}")
    if result.sync:
        click.echo(f"synced: {', '.join(f'{k}={v}' for k, v in result.sync.items() if isinstance(v, int))}")
        _sync_lines(result.sync)
    elif result.deck.get("removed_words"):
        gone = result.deck["removed_words"]
        click.echo(f"removed: {len(gone)} words left the list since the last build "
                   f"(sync to tag their notes stageflow::removed): {', '.join(gone[:20])}")
    if result.deck_path:
        click.echo(f"wrote: {result.deck_path}")
    if result.outbox is not None:
        click.echo(f"outbox: {result.outbox}")


def _sync_lines(report: dict) -> None:
    """What the sync did to notes the user may have touched: one line per kind."""
    for c in report.get("conflict_details", []):
        click.echo(f"conflict: {c['headword']}: {c['field']} changed in Anki and in the list; kept yours "
                   "(both values in the sync's conflict_details)")
    if report.get("kept_user_edits"):
        click.echo(f"kept: {report['kept_user_edits']} field(s) you edited in Anki")
    if report.get("restored_words"):
        click.echo(f"restored: {len(report['restored_words'])} words back on the list "
                   f"(stageflow::removed taken off): {', '.join(report['restored_words'][:20])}")
    if report.get("removed_words"):
        click.echo(f"removed: {len(report['removed_words'])} words left the list; their notes are tagged "
                   f"stageflow::removed and kept (--prune deletes them): {', '.join(report['removed_words'][:20])}")
    if report.get("pruned_words"):
        click.echo(f"pruned: {len(report['pruned_words'])} notes deleted: {', '.join(report['pruned_words'][:20])}")


@main.command()
@click.argument("prompt")
@click.option("--lang", required=True, metavar="LANG", help="Language the prompt is written in (ISO 639-1, e.g. en, de).")
@click.option("--work-lang", "work_lang", default="en", show_default=True, metavar="LANG",
              help="Working language the prompt is translated into for stages 2-4.")
@click.option("--interception", required=True, metavar="NAME",
              help="stille-post (successive translations), or a perspective (bauhaus, poem, ...; needs an LLM).")
@click.option("--iterations", type=click.IntRange(min=1, max=8), default=None,
              help="Stille Post hops (default 8, or one more than the --via languages).")
@click.option("--via", default=None, metavar="LANGS", help="Stille Post languages in order, e.g. es,pt.")
@click.option("--output", "outputs", multiple=True, metavar="SPEC",
              help="image|music|video[:options], repeatable (default image), e.g. image:1024x768, "
                   "music:20s,tempo=96,mp3, video:640x360,4s,fps=24.")
@click.option("--seed", type=click.IntRange(min=0), default=None,
              help="Seed of the Stille Post chain and the media (default: a random one, recorded).")
@click.option("--safety", type=click.Choice(["kids", "youth", "adult", "research"]), default="youth",
              show_default=True, help="Safety level the outputs are checked at (stage 3).")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path, file_okay=False),
              help="Copy the media here as <journey>.<n>.<kind>.<format>.")
@max_runtime_option
def journey(prompt: str, lang: str, work_lang: str, interception: str, iterations: int | None, via: str | None,
            outputs: tuple[str, ...], seed: int | None, safety: str, out_dir: Path, max_runtime: float | None) -> None:
    """Take PROMPT through translation and §86a check, interception, output safety and media, as a Dagster run."""
    from stageflow_assets.core.errors import StageError
    from stageflow_assets.core.run_sequence import Interrupted, PipelineError
    from stageflow_assets.core.stage_store import StageStore
    from stageflow_assets.journey.pipeline import run_journey

    options = {"prompt": prompt, "lang": lang, "work_lang": work_lang, "interception": interception,
               "iterations": iterations, "via": [v.strip() for v in (via or "").split(",") if v.strip()],
               "outputs": list(outputs) or ["image"], "seed": seed, "safety": safety, "source": "cli"}
    instance = _instance()
    try:
        with shown() as display:
            result = run_journey(
                instance, StageStore().paths, options, out_dir, progress=display.note,
                started=lambda key: display.out(f"journey: {key}"), max_runtime_s=max_runtime,
            )
    except PipelineError as exc:
        _fail(str(exc), exc.run_id)
    except Interrupted as exc:
        _interrupted(exc)
    except StageError as exc:
        _fail(exc.message, exc.details.get("run_id"), code=EXIT_BAD_INPUT)
    for what, run_id in result.runs:
        click.echo(f"run: {run_id}  {what}")
    for path in result.media:
        click.echo(f"wrote: {path}")
    if result.record is not None:
        click.echo(f"recorded: {result.record}")
    if result.blocked is not None:
        click.echo(f"stageflow: blocked at stage {result.blocked.stage}: {result.blocked.what_matched}", err=True)
        sys.exit(EXIT_BLOCKED)


@main.command()
@click.argument("run_id")
@max_runtime_option
def reexecute(run_id: str, max_runtime: float | None) -> None:
    """Re-execute RUN_ID from its failure (also a run whose process was killed)."""
    import dagster as dg

    from stageflow_assets.core.cancel import RunWatcher
    from stageflow_assets.core.runs import MAX_RUNTIME_TAG, reexecute_from_failure

    instance = _instance()
    extra = {MAX_RUNTIME_TAG: f"{max_runtime:g}"} if max_runtime else {}
    try:
        with shown(), RunWatcher(instance):
            outcome = reexecute_from_failure(instance, run_id, extra)
    except (LookupError, RuntimeError) as exc:
        _fail(str(exc), code=2)
    except (KeyboardInterrupt, dg.DagsterExecutionInterruptedError):
        click.echo(f"stageflow: interrupted: re-execution of {run_id} stopped; its new run was canceled", err=True)
        sys.exit(EXIT_INTERRUPTED)
    if outcome.canceled:
        click.echo(f"stageflow: interrupted: re-execution of {run_id} stopped (run {outcome.run_id} canceled)",
                   err=True)
        sys.exit(EXIT_INTERRUPTED)
    if not outcome.success:
        _fail(outcome.error or "re-execution failed", outcome.run_id)
    click.echo(f"run: {outcome.run_id}  re-executed from {run_id}")


@main.command()
@click.option("--job", default=None, metavar="KEY", help="Only the runs of this stageflow job (its stageflow/job tag).")
@click.option("--follow", "-f", is_flag=True, help="Keep printing events as runs go (Ctrl-C stops).")
def events(job: str | None, follow: bool) -> None:
    """Print stageflow's events from the instance's event log, one JSON object a line, oldest first."""
    from stageflow_assets.core.event_log import event_lines

    try:
        for line in event_lines(_instance(), job=job, follow=follow):
            click.echo(line)
    except BrokenPipeError:  # e.g. `stageflow events | head`: the reader has what it wanted
        return
    except KeyboardInterrupt:
        click.echo("stageflow: interrupted: stopped following events", err=True)
        sys.exit(EXIT_INTERRUPTED)


@main.command()
@click.option("--since", type=click.DateTime(formats=["%Y-%m-%d"]), default=None, metavar="DATE",
              help="First day (YYYY-MM-DD, STAGEFLOW_TIMEZONE); default: the day of the instance's first run.")
@click.option("--job", default=None, metavar="KEY", help="Only this stageflow job (a video, a deck, a journey).")
def costs(since, job: str | None) -> None:
    """Claude's token usage and cost per job, per day and in total (Messages and batch rates apart),
    read from the daily_usage partitions; days not counted there yet, today included, are computed
    live from the event log. Prints `key: value` lines."""
    from stageflow_assets.core.days import TIMEZONE, today
    from stageflow_assets.core.stage_store import StageStore
    from stageflow_assets.usage.ledger import cost_ledger, job_has_runs, ledger_lines

    first = since.date() if since is not None else None
    if first is not None and first > today(TIMEZONE):
        _fail(f"--since {first}: that day has not come yet ({TIMEZONE})", code=EXIT_BAD_INPUT)
    instance = _instance()
    if job is not None and not job_has_runs(instance, job):
        _fail(f"--job {job}: no run of that job in this instance (`stageflow events` lists the jobs' runs)",
              code=EXIT_BAD_INPUT)
    for line in ledger_lines(cost_ledger(instance, StageStore().paths, TIMEZONE, first), job):
        click.echo(line)


@main.command()
@click.option("--name", required=True, help="This worker's name: runs it executes are tagged stageflow/worker=NAME.")
@click.option("--concurrency", type=click.IntRange(min=1), default=1, show_default=True,
              help="Runs at once (pool processes, each keeping its Whisper model warm).")
@click.option("--queue", "queues", multiple=True, help="Queue to take runs from, repeatable (default: default; "
              "GPU machines: gpu).")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="Decoding threads per run (Whisper).")
def worker(name: str, concurrency: int, queues: tuple[str, ...], threads: int | None) -> None:
    """A Celery worker executing the runs the daemon launches (STAGEFLOW_CELERY_BROKER)."""
    from stageflow_assets.core import scaleout

    if not scaleout.enabled():
        _fail(f"{scaleout.BROKER_ENV} is not set: a worker takes runs from a Celery broker "
              "(redis://host:6379/N or amqp://host:5672//), with STAGEFLOW_POSTGRES_URL for the instance", code=2)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}", name):
        _fail(f"--name {name!r}: use letters, digits, '.', '_' or '-'", code=2)
    _instance()  # the home exists and matches the environment (one clear line otherwise)
    from stageflow_assets.core.worker import run_worker

    run_worker(name, concurrency, list(queues) or [scaleout.DEFAULT_QUEUE], threads)


@main.command("export")
@click.argument("key_or_run_id")
@click.option("--format", "-f", "formats", multiple=True, default=("json",), show_default=True,
              type=click.Choice(EXPORT_FORMATS), help="Export format, repeatable.")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path, file_okay=False),
              help="Write <key>.json/.xml/.pdf/.docx/.crate.zip here.")
def export_record(key_or_run_id: str, formats: tuple[str, ...], out_dir: Path) -> None:
    """Export the research record of a job (a journey, a video, a deck, by its key) or of one run."""
    from stageflow_assets.core.stage_store import StageStore
    from stageflow_assets.records.build import RecordError, UnknownRecord, record_for
    from stageflow_assets.records.exports import ExportError, export

    paths = StageStore().paths
    try:
        record = record_for(_instance(), key_or_run_id, paths)
    except UnknownRecord as exc:
        _fail(str(exc), code=EXIT_BAD_INPUT)
    except RecordError as exc:
        _fail(str(exc))
    click.echo(f"record: {record.key}")
    click.echo(f"domain: {record.domain}")
    click.echo(f"items: {len(record.items)}")
    for fmt in dict.fromkeys(formats):
        try:
            path = export(record, fmt, out_dir, paths)
        except ExportError as exc:
            _fail(str(exc))
        click.echo(f"wrote: {path}")


@main.command()
@click.argument("key")
@click.option("--runs", is_flag=True, help="Also delete its runs (and their event logs) from the instance's history.")
def forget(key: str, runs: bool) -> None:
    """Forget the job KEY (a video, a deck or a journey): its stage dirs, its outbox folder and its
    partition. Nothing else is touched. Refused (exit 3) while one of its runs is queued or going."""
    from stageflow_assets.core.forget import KeyInUse, UnknownKey, forget as forget_key
    from stageflow_assets.core.stage_store import StageStore

    try:
        done = forget_key(_instance(), StageStore().paths, key, runs=runs)
    except UnknownKey as exc:
        _fail(str(exc), code=EXIT_BAD_INPUT)
    except KeyInUse as exc:
        _fail(str(exc), code=EXIT_BLOCKED)
    for line in done.lines:
        click.echo(line)


@main.command()
def stages() -> None:
    """List every asset (stage) with its partitions and description."""
    from stageflow_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    for key in graph.toposorted_asset_keys:
        node = graph.get(key)
        parts = type(node.partitions_def).__name__.replace("PartitionsDefinition", "") if node.partitions_def else "-"
        first_line = (node.description or "").strip().splitlines()[0] if node.description else ""
        click.echo(f"{node.group_name:10} {key.to_user_string():16} {parts:8} {first_line}")


@main.command()
@click.option("--port", default=3000, show_default=True)
def ui(port: int) -> None:
    """The Dagster UI and daemon (`dagster dev`) on 127.0.0.1."""
    from stageflow_assets.core.instance import ensure_dagster_home

    home = ensure_dagster_home()
    dagster = str(Path(sys.executable).with_name("dagster"))
    workspace = str(project_root() / "workspace.yaml")
    os.chdir(home)  # beside the checkout's template dagster.yaml, dagster dev warns it is unused
    os.execv(dagster, [dagster, "dev", "-h", "127.0.0.1", "-p", str(port), "-w", workspace])


def run() -> None:
    """The `stageflow` console script: `main`, with Ctrl-C and a closed stdout pipe handled."""
    # Ctrl-C stops work even where the shell started us with SIGINT ignored (a background job of
    # a script), and SIGTERM stops it the same way (Dagster does both while a run goes)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    sys.unraisablehook = quiet_interrupts(sys.unraisablehook)
    try:
        main()
    except KeyboardInterrupt:
        click.echo("stageflow: interrupted: stopped before any run started; nothing was delivered", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except Exception as exc:
        from stageflow_assets.core.instance import database_unreachable

        lost = database_unreachable(exc)  # the instance's PostgreSQL server went away: one line
        if lost is None:
            raise
        _fail(lost)
    finally:
        try:
            sys.stdout.flush()
        except BrokenPipeError:  # e.g. `stageflow stages | head -1`: the reader has what it wanted
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        # The interpreter's final collections walk every object Dagster, the definitions and
        # Whisper left alive: ~0.55 s of a short command's exit here, ~0.06 s with them frozen
        # (gc.freeze, public since 3.7). Exit handlers and module teardown run as usual.
        gc.freeze()


def quiet_interrupts(hook):
    """`hook`, but silent on an interrupt that landed in a finalizer (a weakref callback during a
    garbage collection): Python cannot raise it there and prints an `Exception ignored`
    traceback. The run watcher interrupts the run again, so the one `stageflow: interrupted:`
    line still comes, alone."""

    def quiet(unraisable) -> None:
        dagster = sys.modules.get("dagster")
        interrupts = (KeyboardInterrupt,) + ((dagster.DagsterExecutionInterruptedError,) if dagster else ())
        if not isinstance(unraisable.exc_value, interrupts):
            hook(unraisable)

    return quiet


if __name__ == "__main__":
    run()
