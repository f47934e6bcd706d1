"""A scale-out home's run queue: how many runs the daemon keeps launched onto the workers."""

from __future__ import annotations

import yaml
import pytest

from stageflow_assets.core import scaleout
from stageflow_assets.core.settings import project_root
from stageflow_assets_tests.conftest import run_cli

TEMPLATE = project_root() / "dagster-postgres.yaml"
SCALE_OUT = {"STAGEFLOW_CELERY_BROKER": "redis://127.0.0.1:6379/15",
             "STAGEFLOW_POSTGRES_URL": "postgresql+psycopg2://postgres@127.0.0.1:5432/not_opened"}


def queue_limit(text: str) -> int:
    return yaml.safe_load(text)["concurrency"]["runs"]["max_concurrent_runs"]


@pytest.fixture
def scale_out_env(monkeypatch):
    for name, value in SCALE_OUT.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv(scaleout.RUN_SLOTS_ENV, raising=False)


def test_the_single_machine_limit_is_not_a_clusters(scale_out_env):
    assert queue_limit(TEMPLATE.read_text()) == 2  # one run per core on one machine
    text = scaleout.instance_yaml(TEMPLATE.read_text())
    assert queue_limit(text) == scaleout.DEFAULT_RUN_SLOTS == 8
    settings = yaml.safe_load(text)
    assert settings["run_monitoring"]["start_timeout_seconds"] == scaleout.START_TIMEOUT_S
    assert settings["sensors"] == {"use_threads": True, "num_workers": 4}
    assert yaml.safe_load(text)["run_launcher"]["class"] == "CeleryRunLauncher"


def test_the_limit_comes_from_the_environment(scale_out_env, monkeypatch):
    monkeypatch.setenv(scaleout.RUN_SLOTS_ENV, "10")
    assert queue_limit(scaleout.instance_yaml(TEMPLATE.read_text())) == 10


@pytest.mark.parametrize("raw", ["two", "0", "-3", "2.5"])
def test_a_bad_limit_is_one_clear_error(scale_out_env, monkeypatch, raw):
    monkeypatch.setenv(scaleout.RUN_SLOTS_ENV, raw)
    with pytest.raises(scaleout.ScaleOutConfigError, match=rf"STAGEFLOW_MAX_CONCURRENT_RUNS='{raw}': give a whole number"):
        scaleout.instance_yaml(TEMPLATE.read_text())


def test_the_cli_says_so_in_one_line_and_writes_no_home(tmp_path):
    home = tmp_path / "dagster"
    result = run_cli("reexecute", "none", env={**SCALE_OUT, scaleout.RUN_SLOTS_ENV: "many",
                                               "DAGSTER_HOME": str(home), "STAGEFLOW_HOME": str(tmp_path / "sf")})
    assert result.returncode == 2, result.stderr
    assert result.error_lines == ["stageflow: error: STAGEFLOW_MAX_CONCURRENT_RUNS='many': give a whole number "
                                  "of runs, at least 1 (the workers' total concurrency plus 2 is a good start)"]
    assert not (home / "dagster.yaml").exists()
