"""``engfeed serve --workers N``: several web processes on one store, written to meanwhile.

Real subprocesses on loopback: two uvicorn processes on a SQLite store (WAL, one writer),
served while an ``engfeed refresh`` in a third process stores new articles. Bounded waits."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from browser_support import serving, subprocess_env
from engfeed.store import Store
from feedgen import rss
from httpserver import LocalHTTPServer, Response

pytestmark = pytest.mark.xdist_group("workers")

PATHS = [
    "/",
    "/api/articles?limit=20",
    "/api/search?q=regions+failover",
    "/sources",
    "/healthz",
    "/feed.atom",
]


def test_two_processes_serve_while_a_third_refreshes(tmp_path: Path, http_server: LocalHTTPServer) -> None:
    db = tmp_path / "team.db"
    store = Store(db)
    for i in range(30):
        body = rss(5, title=f"Blog {i}", site=f"https://blog{i}.example", prefix=f"p{i}")
        store.add_source(f"Blog {i}", http_server.route(f"/f{i}.xml", Response(body=body, delay=0.05)))
    store.close_all()
    env = subprocess_env(tmp_path, ENGFEED_EMBED="0", ENGFEED_FULLTEXT="0", ENGFEED_FETCH_PRIVATE="1")
    log = tmp_path / "serve.log"
    with serving(db, env, log, args=["--workers", "2"]) as served:
        statuses: list[int] = []
        stop = threading.Event()

        def hammer(worker: int) -> None:
            with httpx.Client(base_url=served.url(""), timeout=30) as client:
                n = worker
                while not stop.is_set():
                    statuses.append(client.get(PATHS[n % len(PATHS)]).status_code)
                    n += 1

        with ThreadPoolExecutor(6) as pool:
            for w in range(6):
                pool.submit(hammer, w)
            refresh = subprocess.run(
                [sys.executable, "-m", "engfeed", "--db", str(db), "refresh", "--json"],
                env=env,
                capture_output=True,
                timeout=120,
            )
            stop.set()
        assert refresh.returncode == 0, refresh.stderr.decode()[-2000:]
        assert len(statuses) > 50 and set(statuses) == {200}, sorted(set(statuses))

        with httpx.Client(base_url=served.url(""), timeout=30) as client:
            assert client.get("/api/articles?limit=200").json()["total"] == 150
            # A form from one process is accepted by the other: the CSRF key is the store's.
            home = client.get("/")
            token = re.search(r'name="csrf_token" value="([^"]+)"', home.text)
            uid = re.search(r"/a/([0-9a-f]{16})/save", home.text)
            assert token is not None and uid is not None
            origin = {"Origin": served.url("").rstrip("/")}
            codes = {
                client.post(
                    f"/a/{uid.group(1)}/save",
                    data={"csrf_token": token.group(1), "value": str(i % 2)},
                    headers=origin,
                    follow_redirects=False,
                ).status_code
                for i in range(12)
            }
            assert codes == {303}
    text = log.read_text(errors="replace")
    assert len(set(re.findall(r"Started server process \[(\d+)\]", text))) == 2
    assert "Traceback" not in text and "database is locked" not in text
