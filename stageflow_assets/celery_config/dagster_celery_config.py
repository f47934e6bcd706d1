"""Celery settings for `stageflow worker`, read by dagster-celery's app (`dagster_celery.app`).

dagster-celery imports a top-level module of this name when one is importable; the worker puts
this directory on `sys.path` first. Only names of environment variables live here: the broker
URL may carry a password.
"""

from stageflow_assets.core import scaleout

broker_url = scaleout.broker_url()
result_backend = scaleout.backend_url()
task_default_queue = scaleout.DEFAULT_QUEUE
worker_prefetch_multiplier = 1  # one run at a time per pool process: a long video holds no others
# With early acks a busy worker still reserves one more task, which then waits behind a long run
# while another worker is idle; on Redis Celery can stop reserving beyond the free pool processes
# (ignored, with a warning, on other brokers).
worker_disable_prefetch = True
task_acks_late = False  # dagster-celery's run task must not run twice (run retries re-execute instead)
result_expires = 86400
worker_hijack_root_logger = False
broker_connection_retry_on_startup = True
