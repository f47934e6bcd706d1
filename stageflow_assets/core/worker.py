"""`stageflow worker`: a Celery worker that executes the runs the daemon launches onto it.

The worker is dagster-celery's own app (`dagster_celery.app`, the module its docs point Celery
at) run in this process, so this process is the worker's main process: SIGTERM or Ctrl-C is
Celery's warm shutdown (the current runs finish), a second one its cold shutdown (they are
cancelled). What stageflow adds, through Celery's signals:

* each pool process dies with the main process (parent-death signal), and the tools of its run
  die with it (`providers.process.run_tool`); it has a process group of its own, so only the main
  process hears a terminal's Ctrl-C;
* the run a pool process starts is tagged `stageflow/worker=<name>`, with its pid and host, and
  watched while it goes: once it is CANCELING the pool process interrupts itself (SIGINT, as
  Dagster's own run workers do) until the run has ended;
* the main process writes a heartbeat to the result backend (Redis) every few seconds.
  dagster-celery 0.29.27's health check trusts a task that has STARTED; the
  `stageflow_worker_health` sensor fails a run whose worker stopped heartbeating, and the
  instance's run retries re-execute it on another worker.

The definitions are not imported here: Celery forks its pool from this process, and a process
forked after CTranslate2 (Whisper) started its OpenMP threads cannot use them. Each pool
process loads them, and its model, once, and stays warm for the runs after.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import threading
import time
import weakref
from pathlib import Path

from stageflow_assets.core import scaleout

NAME_ENV = "STAGEFLOW_WORKER_NAME"
TASK_ID_TAG = "dagster-celery/task_id"  # written by dagster-celery's run launcher
THREADS_ENV = "STAGEFLOW_ASR_THREADS"
WATCH_POLL_S = 1.0  # how often a busy pool process looks at its run's status (one indexed query)


def heartbeat_key(name: str) -> str:
    return f"stageflow:worker:{name}:heartbeat"


def run_worker(name: str, concurrency: int, queues: list[str], threads: int | None) -> None:
    """Run the worker in this process until it is shut down."""
    os.environ[NAME_ENV] = name
    if threads:
        os.environ[THREADS_ENV] = str(threads)
        os.environ["OMP_NUM_THREADS"] = str(threads)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "celery_config"))
    from celery import signals

    signals.worker_process_init.connect(_in_pool_process, weak=False)
    signals.task_prerun.connect(_begin_run, weak=False)
    signals.task_postrun.connect(_end_run, weak=False)
    signals.worker_ready.connect(_start_heartbeat, weak=False)
    signals.worker_shutdown.connect(_stop_heartbeat, weak=False)
    from dagster_celery.app import app  # reads dagster_celery_config (celery_config/)

    app.worker_main([
        "worker", "--hostname", f"{name}@{socket.gethostname()}", "--concurrency", str(concurrency),
        "--queues", ",".join(queues), "--pool", "prefork", "--loglevel", "INFO",
        "--without-gossip", "--without-mingle",
    ])


def _in_pool_process(**_) -> None:
    from stageflow_assets.providers.process import die_with_parent

    die_with_parent()
    # out of the worker's process group: a terminal's Ctrl-C (or `kill -TERM -PGID`) reaches the
    # main process only, whose warm shutdown lets the runs finish; a second one (cold shutdown)
    # or a revoked task signals this process by pid, and Dagster then stops the run
    os.setpgid(0, 0)


_instance = None
_pooled: "weakref.WeakSet" = weakref.WeakSet()


def pool_run_connections(instance) -> bool:
    """In a worker's pool process, the instance dagster-celery's task opened for this run keeps its
    PostgreSQL connections open for the rest of the run (called where the run initializes its
    resources). Dagster's storage otherwise opens one per event and query: ~200 a run, and with
    two workers busy the server's CPU for them rivals a transcription's."""
    if not os.environ.get(NAME_ENV) or instance is None or instance in _pooled:
        return False
    from stageflow_assets.core.instance import POOLED_CONNECTIONS

    instance.optimize_for_webserver(**POOLED_CONNECTIONS)
    _pooled.add(instance)
    return True


_watching = None  # this pool process's RunWatcher while it executes a run


def _begin_run(task_id=None, task=None, args=None, kwargs=None, **_) -> None:
    """Before this pool process executes a run: tag the run with this worker, and watch it."""
    global _watching
    run_id = _run_id_of(kwargs or {})
    if run_id is None:
        return
    instance = _pool_instance()
    try:
        _tag(instance, run_id)
    except Exception as exc:  # noqa: BLE001 - the run still runs; the worker's log says why it is untagged
        logging.getLogger("stageflow_assets.worker").warning(f"could not tag the run with this worker: {exc}")
    from stageflow_assets.core.cancel import RunWatcher

    # a run marked CANCELING (the CLI's Ctrl-C, the UI's Terminate, the daemon's max runtime) is
    # interrupted here until it ends, whether or not the revoked task's SIGTERM got through
    _watching = RunWatcher(instance, poll_s=WATCH_POLL_S, run_id=run_id).__enter__()


def _end_run(**_) -> None:
    global _watching
    if _watching is not None:
        _watching.__exit__(None, None, None)
        _watching = None


def _run_id_of(kwargs: dict) -> str | None:
    """The run a dagster-celery task executes (or resumes), from its arguments."""
    packed = kwargs.get("execute_job_args_packed") or kwargs.get("resume_job_args_packed")
    if not isinstance(packed, dict):
        return None
    import dagster as dg

    # the task's argument is Dagster's own serialized ExecuteRunArgs: read it back the public way
    return getattr(dg.deserialize_value(json.dumps(packed)), "run_id", None) or None


def _pool_instance():
    """This pool process's own instance (pooled connections), for tagging and watching runs."""
    global _instance
    if _instance is None:
        import dagster as dg

        _instance = dg.DagsterInstance.get()
        pool_run_connections(_instance)
    return _instance


def _tag(instance, run_id: str) -> None:
    """Tag the run with this worker, its pid and host."""
    from stageflow_assets.core.runs import HOST_TAG, PID_TAG

    # the launcher tags the run with its Celery task id right after sending the task, reading and
    # writing the whole tag set: tagging before that write lands would be overwritten by it
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        run = instance.get_run_by_id(run_id)
        if run is None or TASK_ID_TAG in run.tags:
            break
        time.sleep(0.05)
    instance.add_run_tags(run_id, {scaleout.WORKER_TAG: os.environ.get(NAME_ENV, "worker"),
                                   PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()})


_beating = threading.Event()


def _start_heartbeat(**_) -> None:
    import redis

    name = os.environ.get(NAME_ENV, "worker")
    client = redis.Redis.from_url(scaleout.backend_url())
    payload = json.dumps({"pid": os.getpid(), "host": socket.gethostname()})

    def beat() -> None:
        while not _beating.is_set():
            try:
                client.set(heartbeat_key(name), payload, ex=scaleout.HEARTBEAT_TTL_S)
            except Exception:  # noqa: BLE001 - Redis away for a moment: the next beat tries again
                pass
            _beating.wait(scaleout.HEARTBEAT_S)
        try:
            client.delete(heartbeat_key(name))
        except Exception:  # noqa: BLE001 - it expires on its own
            pass

    threading.Thread(target=beat, name="stageflow-heartbeat", daemon=True).start()


def _stop_heartbeat(**_) -> None:
    _beating.set()
    time.sleep(0.1)


def stopped_workers(names: set[str]) -> set[str]:
    """Which of these workers has no live heartbeat."""
    import redis

    if not names:
        return set()
    client = redis.Redis.from_url(scaleout.backend_url())
    ordered = sorted(names)
    alive = client.exists  # one round trip per name: a handful of workers
    return {name for name in ordered if not alive(heartbeat_key(name))}
