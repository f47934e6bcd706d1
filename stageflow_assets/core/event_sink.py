"""Delivering stageflow's events while runs go, from every process that executes a run.

The instance's `python_logs.dagster_handler_config` (dagster.yaml) attaches `EventSinkHandler`
to the log manager of every run: CLI runs, daemon-launched runs, Celery workers alike. Dagster
hands it a log record per event, after writing the event to the event log. On the run's thread
the handler only puts the Dagster event in a bounded queue (a full queue drops and counts);
a daemon thread maps events to the taxonomy (`core.events`) and sends them in batches.

* A sink that fails keeps its batch and is tried again with backoff (0.5 s doubling to 30 s)
  while new events wait in the queue, so a sink may see an event twice (`id` tells them
  apart); the first failure and the recovery are logged, each one line.
* At process exit the queue is flushed for at most `FLUSH_AT_EXIT_S`, and only if the sink has
  taken a batch and its last attempt did not fail (a sink that never answers costs the exit
  nothing); events not delivered and events dropped are then reported in one line.
* With `STAGEFLOW_EVENT_SINK` unset the handler returns at once and no thread starts.
* Events a run process never sees (a run queued, or cancelled while queued) are sent by the
  side that creates or cancels the run, through `report_run_event`.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
import time
from typing import Any

from stageflow_assets.core.event_sinks import SINK_ENV, SinkConfigError, check_sink_url, make_sink, redact_url
from stageflow_assets.core.events import CREATED_REPORTED_TAG, MATERIALIZATION, WANTED, mapper_for_stageflow, \
    one_line, stageflow_event

log = logging.getLogger("stageflow_assets.events")
QUEUE_SIZE = 10_000
BATCH_MAX = 200
FLUSH_AT_EXIT_S = 2.0
RETRY_S = (0.5, 30.0)

__all__ = ["EventSinkHandler", "report_run_event", "flush", "CREATED_REPORTED_TAG", "SINK_ENV"]


class EventSinkHandler(logging.Handler):
    """The run's side: hand the event to this process's outbox for the configured sink.

    Dagster builds one per run log manager (logging.config.dictConfig), and dictConfig closes
    the previous ones, so the queue and thread live in the process-wide `Outbox`, not here.
    """

    def __init__(self, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self.outbox = outbox_for(os.environ.get(SINK_ENV, ""))

    def emit(self, record: logging.LogRecord) -> None:
        outbox = self.outbox
        if outbox is None:
            return
        meta = getattr(record, "dagster_meta", None)
        event = meta.get("dagster_event") if meta else None
        if event is not None and event.event_type_value in WANTED:
            outbox.put((event, meta["run_id"], record.created, meta["job_tags"], meta["job_name"]))


class Outbox:
    """This process's queue and delivery thread for one sink URL."""

    def __init__(self, url: str, maxsize: int = QUEUE_SIZE) -> None:
        self.url = url
        self.shown = redact_url(url)
        self.maxsize = maxsize
        self.reset()

    def reset(self) -> None:
        """A fresh queue, no thread: at creation and in a forked child (its parent's thread is gone)."""
        self.queue: queue.Queue = queue.Queue(self.maxsize)
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None
        self.stopping = threading.Event()
        self.pid = os.getpid()
        self.delivered = self.dropped = self.undelivered = self.in_flight = 0
        self.failing: str | None = None  # why the sink's last attempt failed; None while it delivers
        self.answered = False  # the sink took a batch in this process: worth waiting for at exit

    def put(self, item: Any) -> None:
        if self.thread is None:
            self.start()
        try:
            self.queue.put_nowait(item)
        except queue.Full:
            with self.lock:
                self.dropped += 1

    def start(self) -> None:
        with self.lock:
            if self.thread is None:
                self.thread = threading.Thread(target=self.deliver_forever, name="stageflow-events", daemon=True)
                self.thread.start()

    def deliver_forever(self) -> None:
        mapper, sink = None, None
        while True:
            batch = [self.queue.get()]
            while len(batch) < BATCH_MAX:
                try:
                    batch.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            try:
                # built at the first event: by then the run process has loaded its definitions
                mapper = mapper or mapper_for_stageflow()
                events = [e for item in batch for e in ([item] if isinstance(item, dict) else mapper.map(*item))]
                if events and self.stopping.is_set():  # the process is exiting: count, send nothing more
                    with self.lock:
                        self.undelivered += len(events)
                elif events:
                    sink = sink or make_sink(self.url)
                    self.send(sink, events)
            except Exception as exc:  # noqa: BLE001 - a mapping bug or a sink that cannot be built
                self.failed(exc)
                with self.lock:
                    self.undelivered += len(batch)
            finally:
                for _ in batch:
                    self.queue.task_done()

    def send(self, sink: Any, events: list[dict[str, Any]]) -> None:
        delay = RETRY_S[0]
        self.in_flight = len(events)
        try:
            while True:
                try:
                    sink.send(events)
                    break
                except Exception as exc:  # noqa: BLE001 - any sink error: keep the batch, try later
                    self.failed(exc)
                    if self.stopping.wait(delay):
                        with self.lock:
                            self.undelivered += len(events)
                        return
                    delay = min(delay * 2, RETRY_S[1])
            with self.lock:
                self.delivered += len(events)
            self.answered = True
            if self.failing is not None:
                self.failing = None
                log.warning(f"stageflow: events: {self.shown} delivers again")
        finally:
            self.in_flight = 0

    def failed(self, exc: Exception) -> None:
        first = self.failing is None
        self.failing = one_line(f"{type(exc).__name__}: {exc}", type(exc).__name__)
        if first:
            log.warning(f"stageflow: events: {self.shown} failed ({self.failing}); events wait in a buffer "
                        f"of {self.maxsize} and are sent again")

    def flush(self, timeout: float) -> bool:
        """Wait until every queued event was handled (delivered or given up), at most `timeout`."""
        deadline = time.monotonic() + timeout
        with self.queue.all_tasks_done:
            while self.queue.unfinished_tasks:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.queue.all_tasks_done.wait(left)
        return True

    def pending(self) -> int:
        """Events still queued, roughly (materializations only inform a later event)."""
        with self.queue.mutex:
            items = list(self.queue.queue)
        return sum(1 for item in items if isinstance(item, dict) or item[0].event_type_value != MATERIALIZATION)

    def close(self) -> None:
        """At exit: a bounded flush if the sink has been answering, then one line if anything was lost."""
        if self.thread is None or self.pid != os.getpid():
            return
        if self.failing is None and self.answered:
            self.flush(FLUSH_AT_EXIT_S)
        self.stopping.set()
        self.flush(0.2)  # what is left is only counted now, unless a send still blocks the thread
        lost = self.undelivered + self.pending() + self.in_flight
        if lost or self.dropped:
            why = f" ({self.failing})" if self.failing else ""
            log.warning(f"stageflow: events: {lost} not delivered to {self.shown}{why}, {self.dropped} dropped "
                        f"(buffer of {self.maxsize} full), {self.delivered} delivered")


_outboxes: dict[str, Outbox] = {}
_bad_urls: set[str] = set()
_registry_lock = threading.Lock()


def outbox_for(url: str) -> Outbox | None:
    """This process's outbox for `url`; None when unset or unusable (said once, in one line)."""
    if not url or url in _bad_urls:
        return None
    box = _outboxes.get(url)
    if box is None:
        with _registry_lock:
            box = _outboxes.get(url)
            if box is None:
                try:
                    check_sink_url(url)
                except SinkConfigError as exc:
                    _bad_urls.add(url)
                    log.warning(f"stageflow: events: {exc}; no events are delivered")
                    return None
                box = _outboxes[url] = Outbox(url)
    return box


def report_run_event(kind: str, run: Any, timestamp: float | None = None, **extra: Any) -> None:
    """Send `pipeline.<kind>` for `run` (a `dg.DagsterRun`) from a process that does not execute
    it: `created` where a run is queued (tag it `CREATED_REPORTED_TAG` so its run process does
    not send it again), `cancelled` where a queued run is cancelled."""
    box = outbox_for(os.environ.get(SINK_ENV, ""))
    if box is not None:
        box.put(stageflow_event(kind, run_id=run.run_id, timestamp=timestamp or time.time(), tags=run.tags,
                                dagster_job=run.job_name, **extra))


def flush(timeout: float = FLUSH_AT_EXIT_S) -> bool:
    """Wait for every outbox of this process to be empty (tests, and callers about to exit)."""
    return all(box.flush(timeout) for box in list(_outboxes.values()) if box.thread is not None)


def _close_all() -> None:
    for box in list(_outboxes.values()):
        box.close()


def _after_fork_in_child() -> None:
    global _registry_lock
    _registry_lock = threading.Lock()  # the fork may have caught another thread holding it
    for box in _outboxes.values():
        box.reset()


atexit.register(_close_all)
os.register_at_fork(after_in_child=_after_fork_in_child)
