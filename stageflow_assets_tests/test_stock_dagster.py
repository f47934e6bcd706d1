"""The package runs on stock Dagster: public API only, Dagster's own instance classes."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import yaml

from stageflow_assets_tests.conftest import REPO, run_cli

PACKAGE = REPO / "stageflow_assets"
# attributes of other libraries' objects with no public spelling, each with its reason
ALLOWED_PRIVATE = {
    ("providers/asr_whisperx.py", "_path"),  # torchaudio bundles keep their checkpoint name only there
    # os._exit is public: the documented way out of a forked child (no atexit, no parent buffers)
    ("providers/espeak_worker.py", "_exit"),
}


def _sources():
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path.relative_to(PACKAGE).as_posix(), ast.parse(path.read_text(), str(path))


def test_the_package_imports_nothing_private_of_dagster_or_cpython():
    found = []
    for name, tree in _sources():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                modules = [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                modules = [a.name for a in node.names]
            else:
                continue
            for module in modules:
                parts = module.split(".")
                if (parts[0].startswith("dagster") and any(p.startswith("_") for p in parts)) or \
                        parts[0] in ("_thread", "_posixsubprocess", "_signal"):
                    found.append(f"{name}:{node.lineno} imports {module}")
    assert found == []


def test_the_package_touches_no_underscore_attribute_of_another_object():
    found = []
    for name, tree in _sources():
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
                owner = node.value.id if isinstance(node.value, ast.Name) else None
                if owner not in ("self", "cls") and (name, node.attr) not in ALLOWED_PRIVATE:
                    found.append(f"{name}:{node.lineno} .{node.attr}")
    assert found == []


def test_the_instance_templates_name_only_dagsters_own_classes():
    for template in ("dagster.yaml", "dagster-postgres.yaml"):
        settings = yaml.safe_load((REPO / template).read_text())
        modules = [value["module"] for value in settings.values() if isinstance(value, dict) and "module" in value]
        modules += [value["custom"]["module"] for value in settings.values()
                    if isinstance(value, dict) and isinstance(value.get("custom"), dict)]
        assert all(m.split(".")[0] in ("dagster", "dagster_postgres") for m in modules), (template, modules)
        # stageflow's one class there is no instance class: a stdlib logging handler that Dagster's
        # `python_logs` setting attaches to each run's log manager (the event sink)
        handlers = settings.pop("python_logs")["dagster_handler_config"]["handlers"]
        assert handlers == {"stageflow_events": {"class": "stageflow_assets.core.event_sink.EventSinkHandler"}}
        assert "stageflow_assets" not in yaml.safe_dump(settings)


def test_a_home_with_the_old_storage_classes_is_upgraded_and_keeps_its_runs(tmp_path, speech_video):
    """A DAGSTER_HOME made before stock Dagster named stageflow's own storage module: it opens."""
    home = tmp_path / "old-home"
    home.mkdir()
    old = ("storage:\n  custom:\n    module: stageflow_assets.core.dagster_storage\n"
           "    class: PooledSqliteStorage\n    config:\n      base_dir:\n        env: DAGSTER_HOME\n"
           "compute_logs:\n  module: stageflow_assets.core.dagster_storage\n  class: RedirectComputeLogManager\n"
           "  config:\n    base_dir:\n      env: DAGSTER_HOME\n"
           "run_queue:\n  dequeue_interval_seconds: 7\ntelemetry:\n  enabled: false\n")
    (home / "dagster.yaml").write_text(old)
    env = {"DAGSTER_HOME": str(home)}
    video = tmp_path / "upgraded.mp4"
    video.write_bytes(speech_video.read_bytes())
    result = run_cli("subtitles", video, "--lang", "en", env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    upgraded = yaml.safe_load((home / "dagster.yaml").read_text())
    template = yaml.safe_load((REPO / "dagster.yaml").read_text())
    assert "storage" not in upgraded
    assert upgraded["compute_logs"] == template["compute_logs"] and upgraded["python_logs"] == template["python_logs"]
    assert upgraded["run_queue"] == {"dequeue_interval_seconds": 7}  # the user's other settings stay
    assert (home / "dagster.yaml.before-stock-dagster").read_text() == old
    code = ("import dagster as dg; i = dg.DagsterInstance.get(); "
            "print(len(i.get_runs()), type(i.run_storage).__name__)")
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True,
                         text=True, check=True).stdout.split()
    assert out == [str(len(result.value("run"))), "SqliteRunStorage"]


def test_processes_starting_at_once_on_a_fresh_home_do_not_race(tmp_path):
    home = tmp_path / "fresh"
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    stageflow = Path(sys.executable).with_name("stageflow")
    # each opens the instance (creating it), then finds no such run: exit 2 and one line
    procs = [subprocess.Popen([str(stageflow), "reexecute", "no-such-run"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    results = [(p.wait(timeout=300), p.stderr.read().strip()) for p in procs]
    assert results == [(2, "stageflow: error: no run no-such-run in this instance")] * 4
    code = "import dagster as dg; print(dg.DagsterInstance.get().get_runs())"
    assert subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True).stdout.strip() == "[]"
