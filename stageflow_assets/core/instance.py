"""The Dagster instance the CLI and the UI share (`DAGSTER_HOME`, default `.dagster_home`)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from stageflow_assets.core.settings import dagster_home, project_root

POSTGRES_ENV = "STAGEFLOW_POSTGRES_URL"


class InstanceConfigError(RuntimeError):
    """The instance configuration contradicts the environment."""


def ensure_dagster_home() -> Path:
    """Create DAGSTER_HOME and, if it has none, its dagster.yaml from the project's template."""
    home = dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    os.environ["DAGSTER_HOME"] = str(home)
    config = home / "dagster.yaml"
    if config.exists() and os.environ.get(POSTGRES_ENV) and "postgres" not in config.read_text():
        raise InstanceConfigError(
            f"{POSTGRES_ENV} is set but {config} configures SQLite: use a new DAGSTER_HOME "
            "(it gets dagster-postgres.yaml) or put a postgres storage section in that file"
        )
    if not config.exists():
        name = "dagster-postgres.yaml" if os.environ.get(POSTGRES_ENV) else "dagster.yaml"
        template = project_root() / name
        if template.is_file():
            shutil.copyfile(template, config)
    return home


def get_instance():
    import dagster as dg

    ensure_dagster_home()
    return dg.DagsterInstance.get()
