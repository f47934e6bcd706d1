"""Scale-out settings: PostgreSQL storage, a Celery broker, and what the instance is built from.

With `STAGEFLOW_POSTGRES_URL` and `STAGEFLOW_CELERY_BROKER` set, a new DAGSTER_HOME gets
PostgreSQL storage, Dagster's queued run coordinator and dagster-celery's run launcher: the
daemon launches each queued run as one Celery task, a `stageflow worker` executes it with the
in-process executor. Secrets stay in the environment: dagster.yaml names the variables.
"""

from __future__ import annotations

import os
import re
from urllib.parse import urlsplit

from stageflow_assets.core.instance import InstanceConfigError
from stageflow_assets.core.redact import redact_url

BROKER_ENV = "STAGEFLOW_CELERY_BROKER"
BACKEND_ENV = "STAGEFLOW_CELERY_BACKEND"
POSTGRES_ENV = "STAGEFLOW_POSTGRES_URL"
# runs the daemon keeps launched at once (Dagster's run queue): the workers' slots plus some
# waiting in the broker, so a worker that ends a run takes the next at once
RUN_SLOTS_ENV = "STAGEFLOW_MAX_CONCURRENT_RUNS"
DEFAULT_RUN_SLOTS = 8
START_TIMEOUT_S = 3600
DEFAULT_BACKEND = "redis://127.0.0.1:6379/0"
DEFAULT_QUEUE = "default"
GPU_QUEUE = "gpu"
QUEUE_TAG = "dagster-celery/queue"  # dagster-celery's run launcher routes a run by it
WORKER_TAG = "stageflow/worker"
HEARTBEAT_S = 5.0  # a worker writes its heartbeat this often ...
HEARTBEAT_TTL_S = 20  # ... and it expires after this long without one


class ScaleOutConfigError(InstanceConfigError):
    """The scale-out settings are incomplete or unusable."""


def enabled() -> bool:
    return bool(os.environ.get(BROKER_ENV))


def broker_url() -> str:
    url = os.environ.get(BROKER_ENV, "")
    if urlsplit(url).scheme not in ("redis", "rediss", "amqp", "amqps", "pyamqp"):
        raise ScaleOutConfigError(
            f"{BROKER_ENV}={redact_url(url)!r}: give a redis://host:port/N or amqp://user@host:5672// URL")
    return url


def backend_source() -> tuple[str, str | None]:
    """(how dagster.yaml gets the result backend, the literal URL when no variable holds it).

    Default: the broker when it is Redis, else Redis on 127.0.0.1. A result backend must
    persist task states (the daemon reads them), so never `rpc://`.
    """
    if os.environ.get(BACKEND_ENV):
        if not os.environ[BACKEND_ENV].startswith(("redis://", "rediss://")):
            raise ScaleOutConfigError(f"{BACKEND_ENV}={redact_url(os.environ[BACKEND_ENV])!r}: give a redis:// URL "
                                      "(the daemon reads run task states from it)")
        return BACKEND_ENV, None
    if broker_url().startswith(("redis://", "rediss://")):
        return BROKER_ENV, None
    return "", DEFAULT_BACKEND


def backend_url() -> str:
    variable, literal = backend_source()
    return os.environ[variable] if variable else literal


def instance_yaml(template: str) -> str:
    """dagster.yaml for a scale-out home: the PostgreSQL template plus the queued run coordinator
    and the Celery run launcher (the in-process executor runs inside each task)."""
    if not os.environ.get(POSTGRES_ENV):
        raise ScaleOutConfigError(
            f"{BROKER_ENV} is set but {POSTGRES_ENV} is not: Celery workers share runs and events "
            "through PostgreSQL; set it to a postgresql+psycopg2://user@host:5432/db URL")
    broker_url()
    variable, literal = backend_source()
    backend = f"\n      env: {variable}" if variable else f" {literal}"
    template = _edit_line(template, "max_concurrent_runs",
                          rf"\1max_concurrent_runs: {run_slots()}        # the workers' slots + a few in the broker "
                          rf"({RUN_SLOTS_ENV})")
    # a launched run waits in the broker, STARTING, until a worker is free: Dagster's run
    # monitoring would fail it after 180 s of that (a dead worker's run is the health sensor's)
    template = _edit_line(template, "poll_interval_seconds",
                          rf"\g<0>\n\1start_timeout_seconds: {START_TIMEOUT_S}   # waiting in the broker for a worker")
    return template.rstrip() + f"""
# The sensors tick side by side: one after the other, each tick's bookkeeping against the
# database made every inbox hop (video -> source run -> languages -> mux) wait ~10 s, not 5
sensors:
  use_threads: true
  num_workers: 4
# Scale-out (STAGEFLOW_CELERY_BROKER): queued runs (Dagster's default run coordinator),
# launched by the daemon as Celery tasks
run_launcher:
  module: dagster_celery.launcher
  class: CeleryRunLauncher
  config:
    broker:
      env: {BROKER_ENV}
    backend:{backend}
    default_queue: {DEFAULT_QUEUE}
    config_source:
      worker_prefetch_multiplier: 1     # a worker takes one run at a time per pool process
      task_acks_late: false             # dagster-celery's tasks are not safe to run twice
      result_expires: 86400
"""


def _edit_line(template: str, key: str, replacement: str) -> str:
    """The template with its `key:` line replaced (`\\1`: its indent, `\\g<0>`: the line itself)."""
    edited, found = re.subn(rf"^(\s*){key}:.*$", replacement, template, count=1, flags=re.MULTILINE)
    if not found:
        raise ScaleOutConfigError(f"the PostgreSQL template has no `{key}:` line")
    return edited


def run_slots() -> int:
    """How many runs the daemon's queue keeps launched at once on a scale-out home.

    The single-machine limit (2, one per core) starved two workers: a worker that ended a run
    waited for a slot to free, the queue's next dequeue (every 2 s) and the broker, while short
    runs (a language, a mux: ~0.5 s) came and went. Launched runs wait in the broker, STARTING,
    for the next free worker; set it to the workers' total concurrency plus a few."""
    raw = os.environ.get(RUN_SLOTS_ENV, "").strip()
    if not raw:
        return DEFAULT_RUN_SLOTS
    if not raw.isdigit() or int(raw) < 1:
        raise ScaleOutConfigError(f"{RUN_SLOTS_ENV}={raw!r}: give a whole number of runs, at least 1 "
                                  "(the workers' total concurrency plus 2 is a good start)")
    return int(raw)


def queue_for(job_name: str, asr_device: str) -> str:
    """Transcription on a GPU goes to the `gpu` queue, everything else to `default`."""
    return GPU_QUEUE if job_name == "subtitle_source_job" and asr_device != "cpu" else DEFAULT_QUEUE
