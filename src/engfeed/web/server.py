"""``engfeed serve``: open the store and run the app under uvicorn (loopback by default)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from engfeed import config
from engfeed.feed import Feed
from engfeed.web.app import create_app


def serve(
    db: str | Path | None,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    angles_file: str | Path | None = None,
    refresh_interval_min: float | None = None,
    access_log: bool = False,
) -> None:
    """Serve the page until interrupted. Binds 127.0.0.1 unless told otherwise."""
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    feed = Feed.open(db, angles_file=angles_file, lenient_angles=True)
    feed.check_angles()  # a broken angles file: warn now, serve with the bundled angles
    hosts = config.allowed_hosts(host)
    shown = f"[{host}]" if ":" in host else host
    local = "127.0.0.1" if host.strip().lower() in config.WILDCARD_BINDS else shown
    app = create_app(
        feed,
        refresh_interval_min=refresh_interval_min,
        warm_search=True,
        allowed_hosts=hosts,
        base_url=f"http://{local}:{port}",
    )
    log = logging.getLogger("engfeed.web")
    log.info("Engineering Feed on http://%s:%d/ (answers to host names: %s)", shown, port, ", ".join(hosts))
    if host.strip().lower() in config.WILDCARD_BINDS and not os.environ.get("ENGFEED_ALLOWED_HOSTS"):
        log.warning(
            "listening on every interface, but only %s are accepted as host names:"
            " set ENGFEED_ALLOWED_HOSTS to the name other machines use",
            ", ".join(hosts),
        )
    try:
        uvicorn.run(
            app,
            host=host,
            port=port,
            access_log=access_log,
            log_level="info",
            proxy_headers=False,
            server_header=False,
        )
    finally:
        feed.close()
