"""`stageflow`: drive the same definitions and instance as the Dagster UI."""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import click

from stageflow_assets.core.settings import configured_languages, project_root


def _fail(message: str, run_id: str | None = None, code: int = 1) -> None:
    suffix = f" (run {run_id}; inspect it in the UI: make ui)" if run_id else ""
    click.echo(f"stageflow: error: {message}{suffix}", err=True)
    sys.exit(code)


@click.group()
def main() -> None:
    """Media pipelines as Dagster assets: subtitles (more domains to come)."""
    # Output(data_version=...) and partitioned checks are marked beta/preview; nothing a user can act on
    warnings.filterwarnings("ignore", message=".*is currently in (beta|preview).*")


@main.command()
@click.argument("video", type=click.Path(path_type=Path))
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
def subtitles(
    video: Path, languages: tuple[str, ...], out_dir: Path | None, force: bool,
    glossary: Path | None, container: str, burn_in: str | None,
) -> None:
    """Transcribe VIDEO, translate, write subtitles and mux them, as Dagster runs."""
    configured = configured_languages()
    unknown = [lang for lang in languages if lang.lower() not in configured]
    if unknown:
        _fail(
            f"language {', '.join(unknown)} is not configured (STAGEFLOW_LANGUAGES={','.join(configured)}): "
            "add it there, since the language partitions come from it", code=2,
        )
    if not video.is_file():
        _fail(f"{video}: no such file", code=2)
    if glossary is not None and not glossary.is_file():
        _fail(f"{glossary}: no such glossary file", code=2)
    if burn_in and burn_in.lower() not in [l.lower() for l in languages]:
        _fail(f"--burn-in {burn_in}: burn in one of the --lang languages", code=2)

    from stageflow_assets.core.storage import StageStore
    from stageflow_assets.subtitles.pipeline import PipelineError, run_subtitles

    try:
        result = run_subtitles(
            _instance(), StageStore().paths, video, [l.lower() for l in languages], out_dir,
            force=force, progress=lambda line: click.echo(f"  {line}", err=True),
            glossary=glossary, container=container, burn_in=burn_in.lower() if burn_in else None,
        )
    except PipelineError as exc:
        _fail(str(exc), exc.run_id)
    click.echo(f"job: {result.job}")
    for what, run_id in result.runs:
        click.echo(f"run: {run_id}  {what}")
    for lang, reason in result.skipped.items():
        click.echo(f"skipped: {lang}: {reason}")
    for path in result.deliverables:
        click.echo(f"wrote: {path}")


def _instance():
    from stageflow_assets.core.instance import InstanceConfigError, get_instance

    try:
        return get_instance()
    except InstanceConfigError as exc:
        _fail(str(exc), code=2)


@main.command()
@click.argument("run_id")
def reexecute(run_id: str) -> None:
    """Re-execute RUN_ID from its failure (also a run whose process was killed)."""
    from stageflow_assets.core.runs import reexecute_from_failure

    try:
        outcome = reexecute_from_failure(_instance(), run_id)
    except (LookupError, RuntimeError) as exc:
        _fail(str(exc), code=2)
    if not outcome.success:
        _fail(outcome.error or "re-execution failed", outcome.run_id)
    click.echo(f"run: {outcome.run_id}  re-executed from {run_id}")


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


if __name__ == "__main__":
    main()
