"""Background work for a team: fetching, full text, embedding and digests as jobs on a
PostgreSQL queue, run by ``engfeed worker`` processes on any number of machines.

The queue is procrastinate's (jobs are rows in the store's own database; the optional
``postgres`` extra installs it). What this module adds is the plan and the tasks:

* **plan** (periodic, every ``plan_every_s`` seconds; procrastinate defers each tick once,
  however many workers run): a ``refresh_source`` job for every due source, one ``index``,
  ``fetch_text`` and ``digest`` job, and the recovery of stalled jobs.
* **refresh_source(id)**: fetch and store one source. Its *queueing lock* keeps at most one
  waiting job per source, its *lock* lets one run at a time, so two workers on two machines
  never fetch one feed at once; and the source is fetched only if still due, so a job
  planned twice in one interval fetches once. Failed jobs are retried (3 attempts).
* **index**, **fetch_text**, **digest**: the same work ``serve`` does in-process on SQLite,
  each under a lock of its own (one at a time across all workers).
* **Crashes**: every worker writes a heartbeat; a job whose worker stopped beating for
  ``stalled_after_s`` (a ``kill -9``, a lost machine) is put back on the queue by the next
  plan. Every write a job makes is one store transaction, so a killed job leaves either
  its work or nothing, and the retry redoes what is missing.

On SQLite there is no queue: ``serve`` runs the same work on its own schedule.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta

import procrastinate
from procrastinate.exceptions import AlreadyEnqueued, ConnectorException, UniqueViolation
from procrastinate.jobs import Status
from procrastinate.schema import SchemaManager
from psycopg_pool import PoolTimeout

from engfeed import config
from engfeed.errors import ConfigError, DatabaseUnavailable
from engfeed.feed import Feed
from engfeed.models import Source
from engfeed.store import PostgresStore, Store

__all__ = [
    "WorkerSettings",
    "ensure_queue_schema",
    "queue_app",
    "recover_stalled",
    "request_refresh",
    "run_worker",
]

log = logging.getLogger("engfeed.jobs")


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    """How a worker runs (the defaults suit production; the scale test shortens them)."""

    concurrency: int = 4
    plan_every_s: int = 15
    heartbeat_s: float = 5.0
    stalled_after_s: float = 30.0
    retries: int = 3


def queue_app(
    url: str, feed: Callable[[], Feed], settings: WorkerSettings = WorkerSettings()
) -> procrastinate.App:
    """The procrastinate app with engfeed's tasks, over the database at ``url``; ``feed``
    gives the worker process's Feed (opened once, on first use)."""
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=url, min_size=1, max_size=4))
    retry = procrastinate.RetryStrategy(max_attempts=settings.retries, wait=10)

    @app.task(name="engfeed.refresh_source", retry=retry)
    def refresh_source(source_id: int, force: bool = False) -> None:
        with released(feed()) as current:
            report = current.refresh_source(source_id, only_due=not force)
        if report is not None:
            log.info("refreshed %s: %s, %d new", report.name, report.status, report.new)

    @app.task(name="engfeed.index", retry=retry)
    def index() -> None:
        with released(feed()) as current:
            current.index_pending()

    @app.task(name="engfeed.fetch_text", retry=retry)
    def fetch_text() -> None:
        with released(feed()) as current:
            if current.fulltext:
                current.fetch_text(missing=True)

    @app.task(name="engfeed.digest")
    def digest() -> None:
        try:
            mail = config.digest_settings()
        except ConfigError as exc:
            log.warning("the weekly digest is off: %s", exc)
            return
        if mail.can_send:
            with released(feed()) as current:
                current.send_digest_if_due(mail)

    singles = (index, fetch_text, digest)

    @app.periodic(cron=f"* * * * * */{max(1, min(59, settings.plan_every_s))}", periodic_id="plan")
    @app.task(name="engfeed.plan", queueing_lock="engfeed.plan")
    async def plan(timestamp: int) -> None:
        def due_sources() -> list[Source]:
            with released(feed()) as current:
                return current.due_sources()

        due = await asyncio.to_thread(due_sources)
        for src in due:
            with contextlib.suppress(AlreadyEnqueued):
                await refresh_source.configure(
                    lock=f"source:{src.id}", queueing_lock=f"refresh:{src.id}"
                ).defer_async(source_id=src.id)
        for task in singles:
            with contextlib.suppress(AlreadyEnqueued):
                await task.configure(lock=task.name, queueing_lock=task.name).defer_async()
        await recover_stalled(app, settings.stalled_after_s)

    return app


def request_refresh(feed: Feed) -> str:
    """ "Refresh now" on a store whose workers do the fetching: a forced ``refresh_source``
    job for every source, for the workers to run at once (``serve``'s button calls this
    instead of fetching in its own process). Returns a one-line summary.

    A forced job has a queueing lock of its own (``refresh-now:ID``), so a second click while
    the first is still waiting adds nothing, and a planned job waiting for the same source
    stays: the forced one runs first (a higher priority; both take the source's lock in
    turn), and the planned one then finds the source no longer due."""
    store = feed.store
    if not isinstance(store, PostgresStore):
        raise ConfigError("only a PostgreSQL store has a job queue")
    ids = [s.id for s in feed.sources() if s.id is not None]

    async def defer_all() -> int:
        app = queue_app(store.url, lambda: feed)
        task = app.tasks["engfeed.refresh_source"]
        queued = 0
        async with app.open_async():
            for sid in ids:
                with contextlib.suppress(AlreadyEnqueued):
                    await task.configure(  # before a planned job of the same source
                        lock=f"source:{sid}", queueing_lock=f"refresh-now:{sid}", priority=1
                    ).defer_async(source_id=sid, force=True)
                    queued += 1
        return queued

    try:
        queued = asyncio.run(defer_all())
    except (ConnectorException, PoolTimeout) as exc:  # the queue's own connections
        raise DatabaseUnavailable(f"the job queue did not answer: {exc}") from exc
    waiting = len(ids) - queued
    line = f"{queued} {'source' if queued == 1 else 'sources'} queued for the workers"
    return line + (f" ({waiting} already waiting)" if waiting else "")


@contextlib.contextmanager
def released(feed: Feed) -> Iterator[Feed]:
    """``feed``, whose database connection on this thread goes back to the pool afterwards
    (tasks run on threads of a pool: each would otherwise keep one)."""
    try:
        yield feed
    finally:
        feed.release_connection()


async def recover_stalled(app: procrastinate.App, after_s: float) -> None:
    """Put back on the queue the jobs whose worker stopped beating for ``after_s`` seconds.
    When the same work is already waiting again (its plan came round meanwhile), the
    stalled job is marked failed instead, which frees its lock for the waiting one."""
    manager = app.job_manager
    for job in await manager.get_stalled_jobs(seconds_since_heartbeat=after_s):
        assert job.id is not None
        try:
            await manager.retry_job(job)
            log.warning("job %s (%s) stalled: its worker stopped; retrying it", job.id, job.task_name)
        except UniqueViolation:
            await manager.finish_job(job, status=Status.FAILED, delete_job=False)
            log.warning(
                "job %s (%s) stalled: its worker stopped; a newer one takes over", job.id, job.task_name
            )


def run_worker(url: str, settings: WorkerSettings = WorkerSettings(), *, name: str | None = None) -> None:
    """Run one worker until SIGINT/SIGTERM (finishing its jobs first). Applies the queue's
    schema on first use. Each source is due ``ENGFEED_REFRESH_INTERVAL`` minutes after its
    last fetch (30 by default, as in ``serve``)."""
    lock = threading.Lock()
    opened: list[Feed] = []

    minutes = config.refresh_interval_minutes() or config.DEFAULT_REFRESH_MINUTES

    def feed() -> Feed:
        with lock:
            if not opened:
                f = Feed.open(url, lenient_angles=True)
                f.refresh_interval = timedelta(minutes=minutes)  # how often each source is due
                opened.append(f)
            return opened[0]

    ensure_queue_schema(feed().store)  # a bad URL or a SQLite store fails here, before any job
    app = queue_app(url, feed, settings)
    lost = _ConnectionLost()
    logging.getLogger("procrastinate").addHandler(lost)
    try:
        app.run_worker(
            concurrency=settings.concurrency,
            name=name,
            update_heartbeat_interval=settings.heartbeat_s,
            stalled_worker_timeout=settings.stalled_after_s,
            delete_jobs="successful",
        )
    finally:
        logging.getLogger("procrastinate").removeHandler(lost)
        for f in opened:
            f.close()
    if lost.error is not None:
        # procrastinate stops the worker, and returns, when its database connection fails (a
        # server restart): that is an outage (exit 75, for a supervisor to start it again),
        # not a clean stop (exit 0, which it would not).
        raise DatabaseUnavailable(f"the worker lost its database connection: {lost.error}")


#: What procrastinate logs (as ``action``) when a failure stops its worker.
_STOPPING = frozenset({"side_task_failed", "side_task_monitor_failed"})


class _ConnectionLost(logging.Handler):
    """Remembers the first database-connection failure procrastinate logs while it runs."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.error: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "action", None) not in _STOPPING:  # a blip it recovers from, a job's own
            return
        exc = record.exc_info[1] if record.exc_info else None
        if self.error is None and exc is not None and _is_connection_error(exc):
            self.error = " ".join(str(exc).split())[:200] or type(exc).__name__


def _is_connection_error(exc: BaseException) -> bool:
    """psycopg's OperationalError or InterfaceError, however wrapped (procrastinate wraps it
    in its own ConnectorException); named, not imported: psycopg belongs to store.postgres."""
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            break
        if any(
            k.__module__.startswith("psycopg") and k.__name__ in ("OperationalError", "InterfaceError")
            for k in type(seen).__mro__
        ):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def ensure_queue_schema(store: Store) -> bool:
    """Create procrastinate's tables in the store's database if they are missing (once, however
    many workers start together). True when made."""
    if not isinstance(store, PostgresStore):
        raise ConfigError("engfeed worker needs a PostgreSQL store (--database-url); SQLite has no queue")
    return store.apply_addon_schema("procrastinate_jobs", SchemaManager.get_schema())
