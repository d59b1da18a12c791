"""Configuration in one place: paths, environment variables, defaults.

Every setting has a default that works out of the box; environment variables override
the defaults and command-line flags override both.

==========================  ===========================================================
``ENGFEED_DB``              SQLite store path (default: platform data dir/engfeed.db)
``ENGFEED_DATABASE_URL``    a ``postgresql://`` URL: the store is that database instead
``ENGFEED_VECTORS``         ``memory``: concept search on PostgreSQL uses an in-process index
                           instead of pgvector (the default where the server has it)
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
``ENGFEED_SMTP_URL``        where the digest is mailed (see :func:`digest_settings`)
==========================  ===========================================================
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import platformdirs

from engfeed.errors import ConfigError

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


def is_database_url(location: str | os.PathLike[str]) -> bool:
    """Whether ``location`` names a PostgreSQL database rather than a SQLite file."""
    return isinstance(location, str) and location.startswith(("postgresql://", "postgres://"))


def store_location(explicit: str | os.PathLike[str] | None = None) -> Path | str:
    """The store to use: a PostgreSQL URL or a SQLite path. ``explicit`` (``--database-url``
    or ``--db``; a URL or a path) beats ``ENGFEED_DATABASE_URL`` beats ``ENGFEED_DB`` beats
    the platform data directory."""
    if explicit:
        return (
            explicit
            if isinstance(explicit, str) and is_database_url(explicit)
            else Path(explicit).expanduser()
        )
    url = os.environ.get("ENGFEED_DATABASE_URL", "").strip()
    if url:
        if not is_database_url(url):
            raise ConfigError(f"ENGFEED_DATABASE_URL must start with postgresql://, not {url[:30]!r}")
        return url
    return db_path()


def vectors_in_database() -> bool:
    """Whether concept search may run in the database (PostgreSQL with pgvector): the
    default; ``ENGFEED_VECTORS=memory`` keeps an in-process index instead (SQLite always
    has one)."""
    return os.environ.get("ENGFEED_VECTORS", "").strip().lower() != "memory"


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


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    """Where ``digest --send`` mails the digest (``ENGFEED_SMTP_URL``)."""

    host: str
    port: int
    user: str = ""
    password: str = field(default="", repr=False)
    tls: str = "none"  # "none", "starttls" or "ssl" (smtps://)

    def display(self) -> str:
        """The server for messages: never the password."""
        who = f"{self.user}@" if self.user else ""
        return f"smtp{'s' if self.tls == 'ssl' else ''}://{who}{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class DigestSettings:
    """The weekly digest's mail settings; ``smtp``/``to`` are None until the user sets them."""

    smtp: SmtpSettings | None
    to: tuple[str, ...]
    sender: str
    day: int  # ISO weekday the weekly send is due: 1 = Monday ... 7 = Sunday
    hour: int  # local hour of that day, 0-23
    base_url: str  # the page's public address, for links in the mail ('' when unknown)

    @property
    def can_send(self) -> bool:
        return self.smtp is not None and bool(self.to)


_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_ADDRESS = re.compile(r"^[^@\s<>,;\"]+@[^@\s<>,;\"]+$")


def smtp_settings(raw: str) -> SmtpSettings:
    """Parse ``smtp://user:pass@host:587?starttls=1`` (or ``smtps://`` for TLS from the start).

    :class:`~engfeed.errors.ConfigError` says what is wrong, never showing the password."""
    try:
        parts = urlsplit(raw.strip())
        port = parts.port
    except ValueError:
        raise ConfigError("ENGFEED_SMTP_URL is not a URL (smtp://user:pass@host:587?starttls=1)") from None
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ConfigError(
            "ENGFEED_SMTP_URL must look like smtp://user:pass@host:587?starttls=1 (or smtps://)"
        )
    query = parse_qs(parts.query)
    starttls = (query.get("starttls") or ["0"])[0].strip().lower() in ("1", "true", "yes", "on")
    tls = "ssl" if parts.scheme == "smtps" else ("starttls" if starttls else "none")
    default_port = 465 if tls == "ssl" else (587 if tls == "starttls" else 25)
    return SmtpSettings(
        host=parts.hostname,
        port=port or default_port,
        user=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
        tls=tls,
    )


def digest_settings() -> DigestSettings:
    """``ENGFEED_SMTP_URL``, ``ENGFEED_DIGEST_TO`` (comma-separated), ``ENGFEED_DIGEST_FROM``,
    ``ENGFEED_DIGEST_DAY`` (mon..sun or 1-7, default mon), ``ENGFEED_DIGEST_HOUR`` (0-23,
    default 8, the server's local time) and ``ENGFEED_BASE_URL``. Raises
    :class:`~engfeed.errors.ConfigError` for a value that cannot be right."""
    raw_url = os.environ.get("ENGFEED_SMTP_URL", "").strip()
    smtp = smtp_settings(raw_url) if raw_url else None
    to = tuple(a.strip() for a in os.environ.get("ENGFEED_DIGEST_TO", "").split(",") if a.strip())
    for address in to:
        if not _ADDRESS.match(address):
            raise ConfigError(f"ENGFEED_DIGEST_TO: not an e-mail address: {address[:80]!r}")
    sender = os.environ.get("ENGFEED_DIGEST_FROM", "").strip()
    if not sender:
        sender = smtp.user if smtp and _ADDRESS.match(smtp.user) else "engfeed@localhost"
    elif not _ADDRESS.match(sender):
        raise ConfigError(f"ENGFEED_DIGEST_FROM: not an e-mail address: {sender[:80]!r}")
    day_raw = os.environ.get("ENGFEED_DIGEST_DAY", "").strip().lower()
    if not day_raw:
        day = 1
    elif day_raw[:3] in _DAYS:
        day = _DAYS.index(day_raw[:3]) + 1
    elif day_raw.isdigit() and 1 <= int(day_raw) <= 7:
        day = int(day_raw)
    else:
        raise ConfigError(f"ENGFEED_DIGEST_DAY: use mon..sun or 1-7, not {day_raw[:20]!r}")
    hour_raw = os.environ.get("ENGFEED_DIGEST_HOUR", "").strip()
    if not hour_raw:
        hour = 8
    elif hour_raw.isdigit() and 0 <= int(hour_raw) <= 23:
        hour = int(hour_raw)
    else:
        raise ConfigError(f"ENGFEED_DIGEST_HOUR: use 0-23, not {hour_raw[:20]!r}")
    return DigestSettings(smtp, to, sender, day, hour, base_url())


def base_url() -> str:
    """``ENGFEED_BASE_URL``: the page's public address, for links in mail ('' when unset)."""
    value = os.environ.get("ENGFEED_BASE_URL", "").strip().rstrip("/")
    if value and not value.startswith(("http://", "https://")):
        raise ConfigError("ENGFEED_BASE_URL must start with http:// or https://")
    return value


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
