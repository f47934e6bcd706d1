"""Where stageflow keeps its files and which languages it serves, read from the environment.

Only resources, partitions and the CLI read these; asset bodies get them through resources.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_LANGUAGES = ("en", "es", "ca")


def project_root() -> Path:
    """The checkout when the package is installed from one (editable), else the working dir."""
    package_parent = Path(__file__).resolve().parents[2]
    if (package_parent / "pyproject.toml").is_file() and (package_parent / "stageflow_assets").is_dir():
        return package_parent
    return Path.cwd()


def stageflow_home() -> Path:
    """Root of every stage directory: `STAGEFLOW_HOME`, default `.stageflow` in the checkout."""
    value = os.environ.get("STAGEFLOW_HOME")
    return Path(value).expanduser().resolve() if value else project_root() / ".stageflow"


def dagster_home() -> Path:
    value = os.environ.get("DAGSTER_HOME")
    return Path(value).expanduser().resolve() if value else project_root() / ".dagster_home"


def cache_dir() -> Path:
    """What stageflow can always make again (models, tool versions): `$XDG_CACHE_HOME/stageflow`."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "stageflow"


def model_cache_dir() -> Path:
    """Reassembled offline models; shared across homes so tests don't rebuild 145 MB each time."""
    value = os.environ.get("STAGEFLOW_MODEL_CACHE")
    if value:
        return Path(value).expanduser().resolve()
    return cache_dir() / "models"


def configured_languages() -> tuple[str, ...]:
    """The static `lang` partition keys: `STAGEFLOW_LANGUAGES`, comma-separated ISO 639-1 codes."""
    raw = os.environ.get("STAGEFLOW_LANGUAGES", "")
    langs = tuple(dict.fromkeys(p.strip().lower() for p in raw.split(",") if p.strip()))
    return langs or DEFAULT_LANGUAGES


TIMEZONE_ENV = "STAGEFLOW_TIMEZONE"


def configured_timezone() -> str:
    """The IANA zone days are counted in (`STAGEFLOW_TIMEZONE`, default UTC): the daily partitions
    and the schedules' execution timezone."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    name = (os.environ.get(TIMEZONE_ENV) or "UTC").strip()
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{TIMEZONE_ENV}={name!r} is not a time zone: use an IANA name such as "
                         "Europe/Berlin or UTC") from None
    return name


def schedule_cron(name: str, default: str) -> str:
    """A schedule's cron string: `STAGEFLOW_<NAME>_CRON`, else `default` (in the configured zone)."""
    return (os.environ.get(f"STAGEFLOW_{name.upper()}_CRON") or default).strip()
