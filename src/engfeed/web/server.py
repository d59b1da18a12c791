"""``engfeed serve``: open the store and run the app under uvicorn (loopback by default).

With ``workers`` > 1, uvicorn runs that many processes on one socket, each opening the store
itself (:func:`app_from_environment`, given its settings through the environment). They
share the store: on SQLite through WAL (one writer at a time, readers never wait), on
PostgreSQL through the server. One of them, the first to claim it, runs the background
schedule; CSRF tokens are signed with a key kept in the store, so a form served by one
process is accepted by another.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from starlette.applications import Starlette

from engfeed import config
from engfeed.feed import Feed
from engfeed.web.app import create_app

#: Environment variables that carry serve's settings to its worker processes.
_ENV_STORE, _ENV_ANGLES, _ENV_HOST, _ENV_BASE = (
    "ENGFEED_SERVE_STORE",
    "ENGFEED_SERVE_ANGLES",
    "ENGFEED_SERVE_HOST",
    "ENGFEED_SERVE_BASE_URL",
)


#: uvicorn's settings for every serve (the app sets its own security headers and host checks).
_UVICORN: dict[str, Any] = {"log_level": "info", "proxy_headers": False, "server_header": False}


def serve(
    db: str | Path | None,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    angles_file: str | Path | None = None,
    refresh_interval_min: float | None = None,
    access_log: bool = False,
    workers: int = 1,
) -> None:
    """Serve the page until interrupted. Binds 127.0.0.1 unless told otherwise."""
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    feed = Feed.open(db, angles_file=angles_file, lenient_angles=True)
    feed.check_angles()  # a broken angles file: warn now, serve with the bundled angles
    hosts = config.allowed_hosts(host)
    shown = f"[{host}]" if ":" in host else host
    local = "127.0.0.1" if host.strip().lower() in config.WILDCARD_BINDS else shown
    base_url = f"http://{local}:{port}"
    log = logging.getLogger("engfeed.web")
    log.info(
        "Engineering Feed on http://%s:%d/ with %d process(es) (answers to host names: %s)",
        shown, port, workers, ", ".join(hosts),
    )  # fmt: skip
    if host.strip().lower() in config.WILDCARD_BINDS and not os.environ.get("ENGFEED_ALLOWED_HOSTS"):
        log.warning(
            "listening on every interface, but only %s are accepted as host names:"
            " set ENGFEED_ALLOWED_HOSTS to the name other machines use",
            ", ".join(hosts),
        )
    if workers > 1:
        location = str(config.store_location(db))
        feed.close()  # each process opens its own
        os.environ.update({_ENV_STORE: location, _ENV_HOST: host, _ENV_BASE: base_url})
        if angles_file:
            os.environ[_ENV_ANGLES] = str(angles_file)
        if refresh_interval_min is not None:
            os.environ["ENGFEED_REFRESH_INTERVAL"] = str(refresh_interval_min)
        uvicorn.run(
            "engfeed.web.server:app_from_environment",
            factory=True,
            workers=workers,
            host=host,
            port=port,
            access_log=access_log,
            **_UVICORN,
        )
        return
    app = create_app(
        feed,
        refresh_interval_min=refresh_interval_min,
        warm_search=True,
        allowed_hosts=hosts,
        base_url=base_url,
    )
    try:
        uvicorn.run(app, host=host, port=port, access_log=access_log, **_UVICORN)
    finally:
        feed.close()


def app_from_environment() -> Starlette:
    """The app of one ``serve --workers`` process (uvicorn calls this in each)."""
    feed = Feed.open(
        os.environ[_ENV_STORE], angles_file=os.environ.get(_ENV_ANGLES) or None, lenient_angles=True
    )
    host = os.environ.get(_ENV_HOST, "127.0.0.1")
    return create_app(
        feed,
        warm_search=True,
        allowed_hosts=config.allowed_hosts(host),
        base_url=os.environ.get(_ENV_BASE, ""),
    )
