"""Background refresh inside the server.

One :class:`Refresher` per app. A refresh runs on its own daemon thread (``Feed.refresh``
does blocking I/O and SQLite writes), so page loads never wait for it and shutdown never
hangs on a slow feed. A non-blocking lock guarantees that two refreshes never overlap: a
second request while one runs (the schedule, or the "Refresh now" button) is told
"already running" and does nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from engfeed.errors import Unavailable

log = logging.getLogger("engfeed.web")

Job = Callable[[bool], str]  # (only_due) -> one-line summary of what the refresh did


@dataclass(frozen=True, slots=True)
class RunRecord:
    started: datetime
    finished: datetime
    only_due: bool
    summary: str
    ok: bool


class Refresher:
    """Runs ``job`` every ``interval_s`` seconds (± ``jitter_s``), never two at once."""

    def __init__(
        self,
        job: Job,
        *,
        interval_s: float,
        jitter_s: float | None = None,
        initial_delay_s: float | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.job = job
        self.interval_s = max(0.0, interval_s)
        # Default jitter: a tenth of the period, so many servers started together drift apart.
        self.jitter_s = self.interval_s / 10 if jitter_s is None else max(0.0, jitter_s)
        self.initial_delay_s = (
            min(5.0, self.interval_s) if initial_delay_s is None else max(0.0, initial_delay_s)
        )
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self._idle = threading.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self.started_at: datetime | None = None
        self.next_run_at: datetime | None = None
        self.last: RunRecord | None = None
        self.runs = 0

    @property
    def enabled(self) -> bool:
        return self.interval_s > 0

    @property
    def scheduled(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def running(self) -> bool:
        return self._lock.locked()

    def next_delay(self) -> float:
        if self.jitter_s <= 0:
            return self.interval_s
        return max(0.0, self.interval_s + self._rng.uniform(-self.jitter_s, self.jitter_s))

    # -- running ---------------------------------------------------------------------------
    def trigger(self, *, only_due: bool) -> bool:
        """Start a refresh on a worker thread; ``False`` (and nothing done) if one is running."""
        if not self._lock.acquire(blocking=False):
            return False
        self._idle.clear()
        self.started_at = datetime.now(UTC)
        try:
            thread = threading.Thread(
                target=self._run, args=(only_due,), name="engfeed-web-refresh", daemon=True
            )
            thread.start()
        except BaseException:
            self._finish()
            raise
        return True

    def _run(self, only_due: bool) -> None:
        started = self.started_at or datetime.now(UTC)
        ok = True
        try:
            summary = self.job(only_due)
        except Unavailable as exc:  # the database is away: the next run tries again
            log.warning("background refresh stopped: %s", exc)
            ok, summary = False, f"refresh stopped: {exc}"
        except Exception as exc:  # a refresh failing must never take the server down
            log.exception("background refresh failed")
            ok, summary = False, f"refresh failed: {type(exc).__name__}: {exc}"
        self.last = RunRecord(started, datetime.now(UTC), only_due, summary, ok)
        self.runs += 1
        self._finish()

    def _finish(self) -> None:
        self.started_at = None
        self._idle.set()
        self._lock.release()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no refresh runs (for tests and shutdown); ``False`` on timeout."""
        return self._idle.wait(timeout)

    async def wait_idle_async(self, poll_s: float = 0.05) -> None:
        while not self._idle.is_set():
            await asyncio.sleep(poll_s)

    # -- schedule --------------------------------------------------------------------------
    async def loop(self) -> None:
        """The schedule: first run after ``initial_delay_s``, then every interval (± jitter)."""
        delay = self.initial_delay_s
        while True:
            self.next_run_at = datetime.fromtimestamp(time.time() + delay, UTC)
            await asyncio.sleep(delay)
            self.next_run_at = None
            if self.trigger(only_due=True):
                await self.wait_idle_async()
            delay = self.next_delay()

    def start(self) -> None:
        """Schedule :meth:`loop` on the running event loop (no-op when disabled)."""
        if self.enabled and not self.scheduled:
            self._task = asyncio.get_running_loop().create_task(self.loop(), name="engfeed-refresh-loop")

    async def stop(self) -> None:
        task, self._task = self._task, None
        self.next_run_at = None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
