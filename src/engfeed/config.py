"""Configuration in one place: paths, environment variables, defaults.

Every setting has a default that works out of the box; environment variables override
the defaults and command-line flags override both.

==========================  ===========================================================
``ENGFEED_DB``              SQLite store path (default: platform data dir/engfeed.db)
``ENGFEED_ANGLES``          the reader's angles TOML (default: config dir/angles.toml,
                            else the bundled seven angles)
``ENGFEED_REFRESH_INTERVAL`` minutes between background refreshes in ``serve`` (0 = off)
``ENGFEED_EMBED``           ``0`` disables embeddings (BM25-only search); default on
``ENGFEED_CACHE``           derived files that can be rebuilt, e.g. the query model
                            (default: platform cache dir)
``ENGFEED_ALLOWED_HOSTS``   host names the web server answers to, comma-separated
                            (default: localhost, 127.0.0.1, [::1] and the ``--host``)
``ENGFEED_FETCH_PRIVATE``   ``0`` refuses to fetch loopback and private addresses
                            (default ``1``: local feeds are allowed)
==========================  ===========================================================
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "engfeed"
DEFAULT_REFRESH_MINUTES = 30.0


def data_dir() -> Path:
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def cache_dir() -> Path:
    """Files derived on first use and safe to delete (``ENGFEED_CACHE`` overrides)."""
    env = os.environ.get("ENGFEED_CACHE")
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False))


def config_dir() -> Path:
    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))


def db_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The store to use: ``--db`` beats ``ENGFEED_DB`` beats the platform data directory."""
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get("ENGFEED_DB")
    if env:
        return Path(env).expanduser()
    return data_dir() / "engfeed.db"


def angles_path(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """The reader's angle file, or None for the bundled defaults."""
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get("ENGFEED_ANGLES")
    if env:
        return Path(env).expanduser()
    candidate = config_dir() / "angles.toml"
    return candidate if candidate.is_file() else None


def refresh_interval_minutes() -> float:
    """Background refresh period for ``serve``; ``0`` turns it off."""
    raw = os.environ.get("ENGFEED_REFRESH_INTERVAL", "").strip()
    if not raw:
        return DEFAULT_REFRESH_MINUTES
    try:
        value = float(raw)
    except ValueError:
        return DEFAULT_REFRESH_MINUTES
    return max(0.0, value)


def embeddings_enabled() -> bool:
    return _flag("ENGFEED_EMBED", default=True)


def fetch_private_allowed() -> bool:
    """May feeds on loopback and private addresses be fetched (``ENGFEED_FETCH_PRIVATE``)?"""
    return _flag("ENGFEED_FETCH_PRIVATE", default=True)


def fulltext_enabled() -> bool:
    """Fetch article pages for teaser feeds after a refresh (``ENGFEED_FULLTEXT``, default on)."""
    return _flag("ENGFEED_FULLTEXT", default=True)


def fulltext_per_run() -> int:
    """At most this many article pages per refresh (``ENGFEED_FULLTEXT_PER_RUN``, default 200)."""
    return _int("ENGFEED_FULLTEXT_PER_RUN", default=200, low=0, high=10_000)


def llm_settings() -> tuple[str, str] | None:
    """(URL, model) of an optional OpenAI-compatible server for abstractive summaries
    (``ENGFEED_LLM_URL``, ``ENGFEED_LLM_MODEL``); None, the default, keeps summaries local
    and extractive: nothing is sent anywhere unless the user sets the URL."""
    url = os.environ.get("ENGFEED_LLM_URL", "").strip()
    if not url:
        return None
    return url, os.environ.get("ENGFEED_LLM_MODEL", "").strip() or "default"


LOCAL_HOSTS = ("localhost", "127.0.0.1", "[::1]")
WILDCARD_BINDS = frozenset({"", "0.0.0.0", "::", "[::]", "*"})


def allowed_hosts(bind_host: str | None = None) -> tuple[str, ...]:
    """Host names the web server answers to (the ``Host`` header, without the port).

    ``ENGFEED_ALLOWED_HOSTS`` (comma-separated; ``*`` allows any, ``*.example.com`` a domain
    and its subdomains) replaces the default: ``localhost``, ``127.0.0.1``, ``[::1]`` and
    ``bind_host`` (``serve --host``) unless it is a wildcard address.
    """
    raw = os.environ.get("ENGFEED_ALLOWED_HOSTS", "").strip()
    if raw:
        return tuple(h for h in (part.strip().lower() for part in raw.split(",")) if h)
    hosts = list(LOCAL_HOSTS)
    if bind_host is not None and bind_host.strip().lower() not in WILDCARD_BINDS:
        host = bind_host.strip().lower()
        host = f"[{host}]" if ":" in host and not host.startswith("[") else host
        if host not in hosts:
            hosts.append(host)
    return tuple(hosts)


def _flag(name: str, *, default: bool) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    return raw not in {"0", "false", "no", "off"}


def _int(name: str, *, default: int, low: int, high: int) -> int:
    raw = os.environ.get(name, "").strip()
    try:
        value = int(raw) if raw else default
    except ValueError:
        return default
    return min(high, max(low, value))
