"""engfeed.jobs: ``engfeed worker`` processes on the PostgreSQL queue.

Workers run as real subprocesses against the suite's PostgreSQL server, fetching generated
feeds from a loopback HTTP server. Every wait is bounded."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from browser_support import subprocess_env
from engfeed.feed import Feed
from engfeed.jobs import ensure_queue_schema
from engfeed.store import PostgresStore, Store
from engfeed.web.app import create_app
from feedgen import rss
from httpserver import LocalHTTPServer, Response
from pgserver import PgServer
from test_web import csrf_token

pytestmark = pytest.mark.xdist_group("workers")

#: Short intervals so a test sees planning, heartbeats and stalled-job recovery in seconds.
FAST = ["--plan-every", "1", "--heartbeat", "0.5", "--stalled-after", "3", "--concurrency", "4"]


def until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.2)


class Workers:
    """Worker subprocesses, all stopped at the end of the test."""

    def __init__(self, url: str, home: Path) -> None:
        self.url, self.home, self.procs = url, home, []  # type: ignore[var-annotated]

    def start(self, name: str) -> subprocess.Popen[bytes]:
        env = subprocess_env(self.home, ENGFEED_EMBED="0", ENGFEED_FULLTEXT="0", ENGFEED_FETCH_PRIVATE="1")
        log = (self.home / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "engfeed", "--database-url", self.url, "worker", "--name", name, *FAST],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.procs.append(proc)
        return proc

    def log(self, name: str) -> str:
        return (self.home / f"{name}.log").read_text(errors="replace")

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


@pytest.fixture
def workers(pg_server: PgServer, tmp_path: Path) -> Iterator[Workers]:
    w = Workers(pg_server.fresh_database(), tmp_path)
    yield w
    w.stop()


def store_of(workers: Workers) -> PostgresStore:
    store = Store(workers.url)
    assert isinstance(store, PostgresStore)
    return store


def fetched(store: Store) -> int:
    return sum(1 for s in store.sources() if s.last_success is not None)


def test_two_workers_fetch_every_feed_once(workers: Workers, http_server: LocalHTTPServer) -> None:
    store = store_of(workers)
    for i in range(12):
        feed = rss(3, title=f"Blog {i}", site=f"https://blog{i}.example", prefix=f"b{i}")
        store.add_source(f"Blog {i}", http_server.route(f"/f{i}.xml", Response(body=feed)))
    workers.start("w1")
    workers.start("w2")
    until(lambda: fetched(store) == 12, 60, "every source fetched")
    until(lambda: store.count_articles() == 36, 30, "every article stored")
    time.sleep(2)  # a few more plans: nothing is due, so nothing is fetched again
    assert [len(http_server.requests_for(f"/f{i}.xml")) for i in range(12)] == [1] * 12
    assert "Traceback" not in workers.log("w1") + workers.log("w2")
    # A web server on this store leaves the schedule to the workers, and reports the queue.
    feed = Feed(store, embedder=None)
    app = create_app(feed, refresh_interval_min=30, allowed_hosts=["testserver"])
    assert not app.state.refresher.enabled
    with TestClient(app, base_url="http://testserver") as client:
        body = client.get("/healthz").json()
    assert body["status"] == "ok" and body["database"]["backend"] == "postgresql"
    assert body["background"]["kind"] == "queue" and body["background"]["workers"] == 2
    assert body["background"]["failed"] == 0


def test_refresh_now_on_the_page_queues_every_source_for_the_workers(
    workers: Workers, http_server: LocalHTTPServer
) -> None:
    """With workers, the Sources page's button fetches nothing in the web process: it queues a
    forced job per source. A second click while they wait adds none, and the plan's own job
    for a due source does not fetch it twice."""
    store = store_of(workers)
    for i in range(6):
        feed = rss(2, title=f"Blog {i}", site=f"https://blog{i}.example", prefix=f"b{i}")
        store.add_source(f"Blog {i}", http_server.route(f"/f{i}.xml", Response(body=feed)))
    ensure_queue_schema(store)  # as the first worker does
    app = create_app(Feed(store, embedder=None), refresh_interval_min=30, allowed_hosts=["testserver"])
    with TestClient(app, base_url="http://testserver") as client:
        token = csrf_token(client.get("/sources").text)
        summaries = []
        for _ in range(2):
            r = client.post("/refresh", data={"csrf_token": token}, follow_redirects=False)
            assert r.status_code == 303 and r.headers["location"] == "/sources?refresh=started"
            assert app.state.refresher.wait_idle(30) and app.state.refresher.last.ok
            summaries.append(app.state.refresher.last.summary)
        assert summaries == [
            "6 sources queued for the workers",
            "0 sources queued for the workers (6 already waiting)",
        ]
        assert sum(len(http_server.requests_for(f"/f{i}.xml")) for i in range(6)) == 0  # not fetched here
        page = client.get("/sources").text
        assert (
            "Worker processes refresh the sources in the background (0 running now, 6 jobs waiting)" in page
        )
        workers.start("w1")
        until(lambda: fetched(store) == 6, 60, "every source fetched")
        time.sleep(3)  # the plan came round too: its jobs find nothing due
        assert [len(http_server.requests_for(f"/f{i}.xml")) for i in range(6)] == [1] * 6
        assert "1 running now" in client.get("/sources").text
    assert "Traceback" not in workers.log("w1")


def test_a_worker_killed_mid_job_loses_nothing(workers: Workers, http_server: LocalHTTPServer) -> None:
    store = store_of(workers)
    slow = rss(4, title="Slow Blog", site="https://slow.example", prefix="s")
    store.add_source("Slow", http_server.route("/slow.xml", Response(body=slow, delay=4.0)))
    first = workers.start("first")
    until(lambda: len(http_server.requests_for("/slow.xml")) == 1, 60, "the slow fetch to start")
    os.kill(first.pid, signal.SIGKILL)  # mid-job: the fetch is waiting on the server
    first.wait(timeout=10)
    assert store.count_articles() == 0
    workers.start("second")
    until(lambda: store.count_articles() == 4, 90, "the stalled job retried by another worker")
    assert fetched(store) == 1
    assert "stalled" in workers.log("second")


def test_a_queue_that_does_not_answer_is_an_outage(
    pg_server: PgServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ "Refresh now" while the queue's own connections fail: an outage (503 on the page, a
    line in the log), not a traceback."""
    from procrastinate.exceptions import ConnectorException

    from engfeed import jobs
    from engfeed.errors import DatabaseUnavailable

    store = Store(pg_server.fresh_database())
    store.add_source("Blog", "https://blog.example/feed.xml")

    class Away:
        def __init__(self) -> None:
            self.tasks = {"engfeed.refresh_source": None}

        def open_async(self) -> object:
            raise ConnectorException("connection refused")

    monkeypatch.setattr(jobs, "queue_app", lambda *a, **k: Away())
    with pytest.raises(DatabaseUnavailable, match="the job queue did not answer"):
        jobs.request_refresh(Feed(store, embedder=None))
    store.close_all()


def test_serve_knows_whether_workers_run_the_background_work(
    pg_server: PgServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No queue: serve refreshes itself; a queue: it leaves that to the workers; a database
    that does not answer at that moment: an outage, not "no queue" (which would have serve
    refresh in-process next to the workers)."""
    from engfeed.errors import DatabaseUnavailable

    store = Store(pg_server.fresh_database())
    feed = Feed(store, embedder=None)
    assert feed.has_job_queue is False
    assert create_app(feed, refresh_interval_min=30).state.refresher.enabled
    ensure_queue_schema(store)
    assert feed.has_job_queue is True
    assert not create_app(feed, refresh_interval_min=30).state.refresher.enabled

    def away(table: str) -> bool:
        raise DatabaseUnavailable("the database did not answer: connection refused")

    monkeypatch.setattr(store, "has_table", away)
    with pytest.raises(DatabaseUnavailable):
        create_app(feed, refresh_interval_min=30)
    store.close_all()


def test_serve_started_before_the_first_worker_hands_the_schedule_over(pg_server: PgServer) -> None:
    """serve reads "is there a queue" on each scheduled run, not once at start: a worker
    started later must not find serve fetching the same sources next to it."""
    store = Store(pg_server.fresh_database())
    feed = Feed(store, embedder=None)
    app = create_app(feed, refresh_interval_min=30)
    refresher = app.state.refresher
    assert refresher.enabled and not app.state.site.queued
    ensure_queue_schema(store)  # the first worker starts
    assert refresher.job(True) == "skipped: engfeed workers refresh the sources"
    assert app.state.site.queued  # the Sources page shows the queue from now on
    store.close_all()


def test_a_worker_that_loses_its_database_stops_as_an_outage(
    pg_server: PgServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """procrastinate stops its worker, and returns, when its connection fails (a server
    restart): engfeed turns that into DatabaseUnavailable (exit 75, for a supervisor to restart
    it), not a clean stop (exit 0). A stop with no such failure stays clean."""
    import logging

    import psycopg
    from procrastinate.exceptions import ConnectorException

    from engfeed import jobs
    from engfeed.errors import DatabaseUnavailable

    url = pg_server.fresh_database()
    failures: list[BaseException | None] = []

    class App:
        def run_worker(self, **_: object) -> None:
            failure = failures.pop()
            if failure is not None:
                try:
                    raise failure
                except BaseException:
                    worker_log = logging.getLogger("procrastinate.worker")
                    worker_log.exception(
                        "Polling jobs to abort failed", extra={"action": "poll_jobs_to_abort_error"}
                    )
                    worker_log.exception(
                        "Side task failed, stopping worker", extra={"action": "side_task_failed"}
                    )

    monkeypatch.setattr(jobs, "queue_app", lambda *_a, **_k: App())
    lost = psycopg.OperationalError("server closed the connection unexpectedly")
    wrapped = ConnectorException("Database error.")
    wrapped.__cause__ = lost
    for failure in (lost, wrapped):
        failures.append(failure)
        with pytest.raises(DatabaseUnavailable, match="lost its database connection"):
            jobs.run_worker(url)
    failures.append(ValueError("a job's own bug"))  # logged by a job: not an outage
    jobs.run_worker(url)
    failures.append(None)
    jobs.run_worker(url)

    class Blip:  # a failure the worker recovers from, then a clean stop
        def run_worker(self, **_: object) -> None:
            try:
                raise lost
            except BaseException:
                logging.getLogger("procrastinate.worker").exception(
                    "Polling jobs to abort failed", extra={"action": "poll_jobs_to_abort_error"}
                )

    monkeypatch.setattr(jobs, "queue_app", lambda *_a, **_k: Blip())
    jobs.run_worker(url)
