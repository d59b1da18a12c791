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
    return os.environ.get("ENGFEED_EMBED", "1").strip().lower() not in {"0", "false", "no", "off"}
