"""The Dagster instance the CLI and the UI share (`DAGSTER_HOME`, default `.dagster_home`)."""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from stageflow_assets.core.settings import dagster_home, project_root

POSTGRES_ENV = "STAGEFLOW_POSTGRES_URL"
# Dagster's PostgreSQL storage opens a connection per operation (NullPool); a process that talks to
# it all the time keeps one open instead, as `dagster-webserver` does (DagsterInstance's public
# optimize_for_webserver): each connection costs the server ~5 ms of CPU
POOLED_CONNECTIONS = dict(statement_timeout=60_000, pool_recycle=3600, max_overflow=4)
# homes made before stageflow ran on stock Dagster name this module in their dagster.yaml
_OLD_STORAGE_MODULE = "stageflow_assets.core.dagster_storage"
_READY = ".stageflow-ready"  # the home's configuration and databases exist


class InstanceConfigError(RuntimeError):
    """The instance configuration contradicts the environment."""


@contextmanager
def _home_lock(home: Path) -> Iterator[None]:
    """One process at a time sets a home up: Dagster's SQLite storage creates its tables on first
    open and fails in a second process doing the same at that moment."""
    with open(home / ".stageflow-setup.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ensure_dagster_home() -> Path:
    """Create DAGSTER_HOME and, if it has none, its dagster.yaml from the project's template."""
    home = dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    os.environ["DAGSTER_HOME"] = str(home)
    config = home / "dagster.yaml"
    if (home / _READY).exists():
        _check_matches_environment(config)
        _upgrade_old_config(config)
        return home
    with _home_lock(home):
        if not config.exists():
            _write_atomic(config, _new_config())
        _check_matches_environment(config)
        _upgrade_old_config(config)
        if not (home / _READY).exists():
            import dagster as dg

            with dg.DagsterInstance.get() as instance:  # creates the databases, under the lock
                instance.get_runs(limit=1)
            (home / _READY).touch()
    return home


def _new_config() -> str:
    from stageflow_assets.core import scaleout

    name = "dagster-postgres.yaml" if os.environ.get(POSTGRES_ENV) or scaleout.enabled() else "dagster.yaml"
    text = (project_root() / name).read_text()
    return scaleout.instance_yaml(text) if scaleout.enabled() else text


def _check_matches_environment(config: Path) -> None:
    from stageflow_assets.core import scaleout

    text = config.read_text()
    if os.environ.get(POSTGRES_ENV) and "postgres" not in text:
        raise InstanceConfigError(
            f"{POSTGRES_ENV} is set but {config} configures SQLite: use a new DAGSTER_HOME "
            "(it gets dagster-postgres.yaml) or put a postgres storage section in that file"
        )
    if scaleout.enabled() and "CeleryRunLauncher" not in text:
        raise InstanceConfigError(
            f"{scaleout.BROKER_ENV} is set but {config} has no Celery run launcher: use a new DAGSTER_HOME "
            "(stageflow configures it for Celery) or unset the variable"
        )
    if "CeleryRunLauncher" in text and not scaleout.enabled():
        raise InstanceConfigError(
            f"{config} launches runs on Celery workers: set {scaleout.BROKER_ENV} and {POSTGRES_ENV} "
            "as on the workers, or use another DAGSTER_HOME"
        )


def _upgrade_old_config(config: Path) -> None:
    """Point a dagster.yaml written for stageflow's old storage classes at Dagster's own.

    Those classes read and wrote Dagster's own SQLite files and compute-log files in the same
    places, so the home opens unchanged with Dagster's defaults. The old file is kept beside it.
    """
    try:
        text = config.read_text()
    except FileNotFoundError:
        return
    if _OLD_STORAGE_MODULE not in text:
        return
    import yaml

    settings = yaml.safe_load(text) or {}
    template = yaml.safe_load((project_root() / "dagster.yaml").read_text())
    for section in ("storage", "compute_logs", "event_log_storage", "run_storage", "schedule_storage"):
        value = settings.get(section)
        if isinstance(value, dict) and _OLD_STORAGE_MODULE in yaml.safe_dump(value):
            del settings[section]
            if section == "compute_logs":
                settings[section] = template[section]
    settings.setdefault("python_logs", template["python_logs"])  # the event sink (core/event_sink.py)
    try:
        backup = config.with_name("dagster.yaml.before-stock-dagster")
        if not backup.exists():
            backup.write_text(text)
        _write_atomic(config, "# rewritten by stageflow: Dagster's own storage and compute logs\n"
                      + yaml.safe_dump(settings, sort_keys=False))
    except OSError as exc:
        raise InstanceConfigError(
            f"{config} names {_OLD_STORAGE_MODULE}, which is gone: delete its `storage` and "
            f"`compute_logs` sections (Dagster's defaults read the same files) ({exc})"
        ) from exc


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def get_instance():
    import dagster as dg

    ensure_dagster_home()
    return dg.DagsterInstance.get()


def database_unreachable(exc: BaseException) -> str | None:
    """One line for the user when `exc` comes from losing the instance's PostgreSQL server, else None.

    Dagster's PostgreSQL storage opens a connection per operation and retries a refused one for
    ~6 s (dagster-postgres: 5 retries, backoff from 0.2 s), so a server restart costs a run
    nothing. A longer outage raises from whatever touched the database: the event being written
    is lost and a run being executed stays STARTED in the instance until it is re-executed.
    """
    chain, seen = [], exc
    while seen is not None and seen not in chain:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    driver = [e for e in chain if _connection_error(getattr(e, "orig", None))]
    if not driver and not any(type(e).__name__ == "DagsterPostgresException" for e in chain):
        return None
    detail = str(driver[-1].orig) if driver else str(chain[-1])
    detail = " ".join(detail.split("\n")[0].split()) or type(chain[-1]).__name__
    return f"lost the connection to the instance's PostgreSQL database ({detail})"


def _connection_error(orig: object) -> bool:
    """The driver's own error for a connection refused, closed or ended by the server (psycopg2's
    OperationalError and InterfaceError and their subclasses), not a failed statement."""
    return any(cls.__module__.startswith("psycopg") and cls.__name__ in ("OperationalError", "InterfaceError")
               for cls in type(orig).__mro__)
