"""The ``engfeed`` command line.

``--json`` output is public API (scripts and outside checks depend on it): extend, never
break. Bad input gets a one-line error on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import html
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from engfeed import __version__, config
from engfeed.errors import ConfigError, EngfeedError, Unavailable
from engfeed.feed import Feed, IngestReport, SourceReport, TextReport
from engfeed.models import Article, ArticleFilter, SchemaStatus, SearchHit
from engfeed.parse import EARLIEST_DATE
from engfeed.text import clean_text, terminal_safe
from engfeed.urls import redact_credentials

Handler = Callable[[argparse.Namespace], int]
MAX_QUERY_CHARS = 300  # as on the page
MAX_PROFILE_BYTES = 256 * 1024  # `angles suggest --from`: a resume is ~10 KB; every word is embedded
EX_TEMPFAIL = 75  # sysexits.h: a temporary failure (the database is away); a retry may succeed


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(_decodable(sys.argv[1:] if argv is None else argv))
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return handler(args)
    except ConfigError as exc:
        _err(f"error: {exc}")
        return 2
    except EngfeedError as exc:
        _err(f"error: {exc}")
        return 1
    except Unavailable as exc:  # an outage, not bad input: worth running again later
        _err(f"unavailable: {exc}; try again shortly")
        return EX_TEMPFAIL
    except KeyboardInterrupt:
        _err("interrupted")
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # last resort: a user never sees a traceback unless asking for one
        if os.environ.get("ENGFEED_DEBUG"):
            raise
        _err(f"internal error: {type(exc).__name__}: {exc} (set ENGFEED_DEBUG=1 for details)")
        return 70


def _decodable(argv: Sequence[str]) -> list[str]:
    """``argv`` as text every layer can store and print: bytes that are not UTF-8 (which
    Python hands over as lone surrogates) become U+FFFD, with a warning, so that no command
    fails half-way on them."""
    out = []
    for arg in argv:
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            try:
                fixed = arg.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
            except UnicodeEncodeError:  # a surrogate that no byte made (a caller's own text)
                fixed = arg.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
            _err(f"warning: an argument was not valid UTF-8; read it as {terminal_safe(fixed)[:80]!r}")
            arg = fixed
        out.append(arg)
    return out


# -- parser ------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="engfeed", description="Engineering Feed: company engineering blogs, searchable by concept."
    )
    p.add_argument("--version", action="version", version=f"engfeed {__version__}")
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--db", metavar="PATH", help="SQLite store (default: $ENGFEED_DB or the platform data dir)"
    )
    where.add_argument(
        "--database-url",
        metavar="URL",
        type=_database_url,
        help="a PostgreSQL store, postgresql://user:pass@host/db (default: $ENGFEED_DATABASE_URL)",
    )
    p.add_argument("--angles", metavar="FILE", help="the reader's angles TOML (default: $ENGFEED_ANGLES)")
    sub = p.add_subparsers(title="commands", metavar="COMMAND")

    src = sub.add_parser("sources", help="list, add, remove, import or export sources")
    ssub = src.add_subparsers(title="sources commands", metavar="ACTION")
    s = ssub.add_parser("list", help="list sources with their health")
    s.add_argument("--json", action="store_true")
    s.set_defaults(handler=cmd_sources_list)
    s = ssub.add_parser("add", help="subscribe to a feed (or a site whose page links its feed)")
    s.add_argument("url")
    s.add_argument("--name", help="display name (default: from the feed title)")
    s.add_argument(
        "--no-discover",
        action="store_true",
        help="store the URL as given, without fetching it (name it with --name, else the host names it)",
    )
    s.add_argument("--json", action="store_true")
    s.set_defaults(handler=cmd_sources_add)
    s = ssub.add_parser("remove", help="unsubscribe (stored articles are kept)")
    s.add_argument("name", help="source name or feed URL")
    s.set_defaults(handler=cmd_sources_remove)
    s = ssub.add_parser("import", help="add the feeds of an OPML file")
    s.add_argument("file")
    s.set_defaults(handler=cmd_sources_import)
    s = ssub.add_parser("export", help="print the sources as OPML")
    s.add_argument("-o", "--output", help="write to this file instead of stdout")
    s.set_defaults(handler=cmd_sources_export)
    s = ssub.add_parser("defaults", help="add the bundled curated list of engineering blogs")
    s.add_argument("--if-empty", action="store_true", help="only when no source exists yet")
    s.set_defaults(handler=cmd_sources_defaults)
    src.set_defaults(handler=cmd_sources_list, json=False)

    r = sub.add_parser("refresh", help="fetch sources and store new articles")
    r.add_argument(
        "--source", action="append", default=[], metavar="NAME", help="only this source (repeatable)"
    )
    r.add_argument("--due", action="store_true", help="only sources whose next attempt is due")
    r.add_argument("--json", action="store_true", help="print the per-source report as JSON")
    r.add_argument(
        "--no-text", action="store_true", help="do not fetch article pages for teaser feeds this time"
    )
    r.set_defaults(handler=cmd_refresh)

    ft = sub.add_parser("fetch-text", help="fetch the full text of articles from their pages")
    ft.add_argument("ids", nargs="*", metavar="ID", help="these articles (fetched again if already fetched)")
    ft.add_argument("--missing", action="store_true", help="teaser articles whose page is due, newest first")
    ft.add_argument("--limit", type=_positive, default=None, help="at most N pages (default 200)")
    ft.add_argument("--json", action="store_true")
    ft.set_defaults(handler=cmd_fetch_text, usage_error=ft.error)

    sm = sub.add_parser("summarize", help="a structured summary of one article (local, extractive)")
    sm.add_argument("id")
    sm.add_argument("--json", action="store_true")
    sm.set_defaults(handler=cmd_summarize)

    i = sub.add_parser("import", help="ingest local feed files or folders (RSS, Atom, JSON Feed)")
    i.add_argument("paths", nargs="+", metavar="PATH")
    i.add_argument("--source", help="source name for every file (default: from each feed)")
    i.add_argument("--json", action="store_true", help="print the per-file report as JSON")
    i.set_defaults(handler=cmd_import)

    ls = sub.add_parser("list", help="list articles, newest first")
    _add_filters(ls)
    ls.add_argument("--limit", type=_positive, default=20)
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(handler=cmd_list)

    se = sub.add_parser("search", help="concept search (hybrid BM25 + embeddings)")
    se.add_argument("query")
    _add_filters(se)
    se.add_argument("--limit", type=_positive, default=10)
    se.add_argument("--json", action="store_true")
    se.set_defaults(handler=cmd_search)

    rel = sub.add_parser("related", help="articles most like one article")
    rel.add_argument("id")
    rel.add_argument("--limit", type=_positive, default=10)
    rel.add_argument("--json", action="store_true")
    rel.set_defaults(handler=cmd_related)

    sh = sub.add_parser("show", help="one article in full")
    sh.add_argument("id")
    sh.add_argument("--json", action="store_true")
    sh.set_defaults(handler=cmd_show)

    an = sub.add_parser("angles", help="the reader's interest angles")
    asub = an.add_subparsers(title="angles commands", metavar="ACTION")
    a = asub.add_parser("list", help="show the angles in use and how many articles each labels")
    a.add_argument("--json", action="store_true")
    a.set_defaults(handler=cmd_angles_list)
    a = asub.add_parser("suggest", help="propose angles from a profile or resume text")
    a.add_argument("--from", dest="source_file", required=True, metavar="FILE")
    a.add_argument("--json", action="store_true")
    a.set_defaults(handler=cmd_angles_suggest)
    a = asub.add_parser("feedback", help="tell the labeller an angle is right (--yes) or wrong (--no)")
    a.add_argument("id", help="the article's id")
    a.add_argument("angle", help="the angle's name")
    verdict = a.add_mutually_exclusive_group(required=True)
    verdict.add_argument("--yes", action="store_const", const="yes", dest="verdict", help="add this angle")
    verdict.add_argument("--no", action="store_const", const="no", dest="verdict", help="not this angle")
    verdict.add_argument(
        "--clear", action="store_const", const="clear", dest="verdict", help="forget the verdict"
    )
    a.add_argument("--json", action="store_true")
    a.set_defaults(handler=cmd_angles_feedback)
    a = asub.add_parser("explain", help="why an article has (or lacks) each angle")
    a.add_argument("id", help="the article's id")
    a.add_argument("--json", action="store_true")
    a.set_defaults(handler=cmd_angles_explain)
    a = asub.add_parser("feedback-export", help="write your angle verdicts as JSON (keyed by article URL)")
    a.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of standard output")
    a.set_defaults(handler=cmd_angles_feedback_export)
    a = asub.add_parser("feedback-import", help="record the verdicts of an exported file")
    a.add_argument("file")
    a.add_argument("--json", action="store_true")
    a.set_defaults(handler=cmd_angles_feedback_import)
    an.set_defaults(handler=cmd_angles_list, json=False)

    sv_ = sub.add_parser("save", help="add articles to the reading list")
    sv_.add_argument("ids", nargs="+", metavar="ID")
    note_src = sv_.add_mutually_exclusive_group()
    note_src.add_argument("--note", metavar="TEXT", help="a note (replaces the old one)")
    note_src.add_argument("--note-file", metavar="FILE", help="the note from a file ('-': standard input)")
    sv_.add_argument("--json", action="store_true")
    sv_.set_defaults(handler=cmd_save)
    un = sub.add_parser("unsave", help="take articles off the reading list")
    un.add_argument("ids", nargs="+", metavar="ID")
    un.add_argument("--json", action="store_true")
    un.set_defaults(handler=cmd_unsave)
    nt = sub.add_parser("note", help="write, replace or clear the note on an article")
    nt.add_argument("id", metavar="ID")
    what = nt.add_mutually_exclusive_group(required=True)
    what.add_argument("--text", metavar="TEXT")
    what.add_argument("--file", metavar="FILE", help="'-': standard input")
    what.add_argument("--clear", action="store_true")
    nt.add_argument("--json", action="store_true")
    nt.set_defaults(handler=cmd_note)
    for name, read in (("mark-read", True), ("mark-unread", False)):
        mr = sub.add_parser(name, help=f"mark articles as {'read' if read else 'unread'}")
        mr.add_argument("ids", nargs="+", metavar="ID")
        mr.add_argument("--json", action="store_true")
        mr.set_defaults(handler=cmd_mark, read=read)

    rl = sub.add_parser("reading-list", help="the saved articles; export or import them as Markdown")
    rl.add_argument("--json", action="store_true")
    rl.add_argument("--since", type=_date, help="saved on or after (YYYY-MM-DD or ISO 8601)")
    rl.set_defaults(handler=cmd_reading_list)
    rsub = rl.add_subparsers(title="reading-list commands", metavar="ACTION")
    ex = rsub.add_parser("export", help="write the reading list as Markdown (or JSON)")
    ex.add_argument("-o", "--output", metavar="FILE", help="write to this file instead of stdout")
    ex.add_argument(
        "--title", help="the front matter's title (default: the imported list's, else 'Reading list')"
    )
    # SUPPRESS: not given here, the value given before "export" stands (reading-list --since D export)
    ex.add_argument(
        "--since", type=_date, default=argparse.SUPPRESS, help="saved on or after (YYYY-MM-DD or ISO 8601)"
    )
    ex.add_argument("--format", choices=("md", "json"), default="md", help="md (default), or json (= --json)")
    ex.set_defaults(handler=cmd_reading_list_export)
    im = rsub.add_parser("import", help="save every entry of a Markdown reading list")
    im.add_argument("file", metavar="FILE.md")
    im.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
    im.set_defaults(handler=cmd_reading_list_import)

    mu = sub.add_parser("mute", help="hide articles from the feed and search by source, term, regex or angle")
    msub = mu.add_subparsers(title="mute commands", metavar="ACTION")
    m = msub.add_parser("add", help="add a rule (it applies at once, and to new articles on arrival)")
    kind = m.add_mutually_exclusive_group(required=True)
    kind.add_argument("--source", metavar="NAME", help="every article of this source")
    kind.add_argument("--term", metavar="TEXT", help="a word or phrase in the title or excerpt")
    kind.add_argument("--regex", metavar="RE", help="a regular expression over the title and excerpt")
    kind.add_argument("--angle", metavar="NAME", help="every article with this useful angle")
    m.add_argument("--preview", action="store_true", help="show what it would hide; save nothing")
    m.add_argument("--json", action="store_true")
    m.set_defaults(handler=cmd_mute_add)
    m = msub.add_parser("list", help="the rules, with how many articles each hides")
    m.add_argument("--json", action="store_true")
    m.set_defaults(handler=cmd_mute_list)
    m = msub.add_parser("remove", help="delete a rule (what it hid shows again)")
    m.add_argument("n", type=_rule_number, metavar="N", help="the rule's number (see `mute list`)")
    m.add_argument("--json", action="store_true")
    m.set_defaults(handler=cmd_mute_remove)
    mu.set_defaults(handler=cmd_mute_list, json=False)

    dg = sub.add_parser("digest", help="the best new articles of the week, by angle; --send mails it")
    dg.add_argument("--days", type=_days, default=7, help="the period: the last N days (default 7)")
    dg.add_argument("--format", choices=("md", "html", "text"), default="md")
    dg.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of standard output")
    dg.add_argument("--send", action="store_true", help="mail it (ENGFEED_SMTP_URL, ENGFEED_DIGEST_TO)")
    dg.add_argument("--force", action="store_true", help="with --send: send even if sent this ISO week")
    dg.add_argument("--json", action="store_true", help="the digest (or, with --send, the outcome) as JSON")
    dg.set_defaults(handler=cmd_digest)

    ri = sub.add_parser("reindex", help="re-embed and re-label every article (after a model change)")
    ri.set_defaults(handler=cmd_reindex)

    d = sub.add_parser("db", help="the store's schema, and moving a store (SQLite <-> PostgreSQL)")
    dsub = d.add_subparsers(title="db commands", metavar="ACTION")
    ds = dsub.add_parser("status", help="backend, schema version and pending migrations")
    ds.add_argument("--json", action="store_true")
    ds.set_defaults(handler=cmd_db_status)
    du = dsub.add_parser("upgrade", help="apply pending migrations")
    du.add_argument("--json", action="store_true")
    du.set_defaults(handler=cmd_db_upgrade)
    dc = dsub.add_parser("copy", help="copy the whole store into a new, empty one")
    dc.add_argument(
        "--to", required=True, metavar="URL_OR_PATH", help="a postgresql:// URL or a SQLite file path"
    )
    dc.add_argument("--json", action="store_true")
    dc.set_defaults(handler=cmd_db_copy)
    d.set_defaults(handler=cmd_db_status, json=False)

    w = sub.add_parser(
        "worker", help="run background jobs from the PostgreSQL queue (fetch, text, index, digest)"
    )
    w.add_argument("--concurrency", type=_positive, default=4, help="jobs at once (default 4)")
    w.add_argument("--name", help="this worker's name in the logs (default: worker)")
    w.add_argument("--plan-every", type=_positive, default=15, metavar="S", help=argparse.SUPPRESS)
    w.add_argument("--stalled-after", type=float, default=30.0, metavar="S", help=argparse.SUPPRESS)
    w.add_argument("--heartbeat", type=float, default=5.0, metavar="S", help=argparse.SUPPRESS)
    w.set_defaults(handler=cmd_worker)

    sv = sub.add_parser("serve", help="serve the web page")
    sv.add_argument("--host", default="127.0.0.1")
    sv.add_argument("--port", type=_port, default=8000, help="0 to 65535; 0 picks a free one (default 8000)")
    sv.add_argument(
        "--workers", type=_positive, default=1, metavar="N", help="web processes sharing the port (default 1)"
    )
    sv.set_defaults(handler=cmd_serve)
    return p


def _add_filters(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--source", action="append", default=[], metavar="NAME", help="only this source (repeatable)"
    )
    p.add_argument("--angle", help="only articles with this angle")
    p.add_argument("--since", type=_date, help="published on or after (YYYY-MM-DD or ISO 8601)")
    p.add_argument("--until", type=_date, help="published before (YYYY-MM-DD or ISO 8601)")
    state = p.add_mutually_exclusive_group()
    state.add_argument(
        "--unread", action="store_const", const="unread", dest="state", help="only unread articles"
    )
    state.add_argument(
        "--saved", action="store_const", const="saved", dest="state", help="only saved articles"
    )
    p.add_argument(
        "--include-muted",
        action="store_true",
        help='also the articles your mute rules hide (marked "muted": true)',
    )


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return min(value, 10_000)


def _rule_number(text: str) -> int:
    """A mute rule's number as ``mute list`` shows it (never capped: a cap would name another rule)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 1 <= value < 2**63:
        raise argparse.ArgumentTypeError("not a rule number (see `engfeed mute list`)")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError("a port is 0 to 65535")
    return value


def _days(text: str) -> int:
    value = _positive(text)
    if value > 90:
        raise argparse.ArgumentTypeError("at most 90 days")
    return value


def _date(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date: {text!r} (use YYYY-MM-DD)") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _database_url(text: str) -> str:
    if not config.is_database_url(text.strip()):
        raise argparse.ArgumentTypeError("must be a postgresql:// URL (use --db for a SQLite file)")
    return text.strip()


def _store_arg(args: argparse.Namespace) -> str | None:
    """``--database-url`` or ``--db``, whichever was given (argparse allows one)."""
    return getattr(args, "database_url", None) or getattr(args, "db", None)


def _filter(args: argparse.Namespace) -> ArticleFilter:
    return ArticleFilter(
        sources=tuple(args.source),
        angle=args.angle,
        since=args.since,
        until=args.until,
        state=args.state,
        include_muted=args.include_muted,
    )


def _open(args: argparse.Namespace) -> Feed:
    """The store for commands that label or read angles: a broken angles file stops them
    here, before anything is written (exit 2)."""
    feed = Feed.open(_store_arg(args), angles_file=args.angles)
    feed.check_angles()
    return feed


def _open_light(args: argparse.Namespace) -> Feed:
    """For commands that never embed (source management): skips loading the model."""
    return Feed.open(_store_arg(args), angles_file=args.angles, embed=False)


# -- commands ------------------------------------------------------------------------------
def cmd_sources_list(args: argparse.Namespace) -> int:
    feed = _open_light(args)
    sources = feed.sources()
    if args.json:
        _print_json([s.to_json() for s in sources])
        return 0
    if not sources:
        print(
            "No sources yet. Add the curated list with `engfeed sources defaults`,"
            " or one feed with `engfeed sources add URL`."
        )
        return 0
    rows = [
        (
            s.name,
            str(s.article_count),
            _ago(s.last_success),
            redact_credentials(s.error or "ok")[:60],
            redact_credentials(s.url),
        )
        for s in sources
    ]
    _table(("source", "articles", "last success", "status", "feed"), rows)
    return 0


def cmd_sources_add(args: argparse.Namespace) -> int:
    feed = _open_light(args)
    src = feed.add_source(args.url, args.name, discover=not args.no_discover)
    shown = redact_credentials(src.url)
    if args.json:
        _print_json({"name": src.name, "url": shown, "site_url": redact_credentials(src.site_url)})
    else:
        print(f"added {terminal_safe(src.name)}: {terminal_safe(shown)}")
    return 0


def cmd_sources_remove(args: argparse.Namespace) -> int:
    src = _open_light(args).remove_source(args.name)
    print(f"removed {terminal_safe(src.name)} (its {src.article_count} stored articles are kept)")
    return 0


def cmd_sources_import(args: argparse.Namespace) -> int:
    from engfeed.opml import MAX_OPML_BYTES

    data = _read_capped(args.file, MAX_OPML_BYTES, "OPML file")
    added, skipped = _open_light(args).import_opml(data)
    for line in skipped:
        _err(f"skipped {line}")
    print(f"added {len(added)} sources" + (f", skipped {len(skipped)}" if skipped else ""))
    return 0


def cmd_sources_export(args: argparse.Namespace) -> int:
    _emit(_open_light(args).export_opml(), args.output)
    return 0


def cmd_sources_defaults(args: argparse.Namespace) -> int:
    feed = _open_light(args)
    if args.if_empty and feed.sources():
        return 0
    added, skipped = feed.add_default_sources()
    print(f"added {len(added)} curated sources" + (f" ({len(skipped)} already present)" if skipped else ""))
    return 0


def _status_json(status: SchemaStatus) -> dict[str, object]:
    return {
        "backend": status.backend,
        "location": status.location,
        "version": status.version,
        "latest": status.latest,
        "pending": status.pending,
    }


def cmd_db_status(args: argparse.Namespace) -> int:
    status = Feed.schema_status(_store_arg(args))
    if args.json:
        _print_json(_status_json(status))
        return 0
    print(f"{status.backend} store at {status.location}")
    state = (
        "up to date" if not status.pending else f"{status.pending} migration(s) pending: engfeed db upgrade"
    )
    print(f"schema {status.version} of {status.latest}: {state}")
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    before, after = Feed.upgrade(_store_arg(args))
    if args.json:
        _print_json({"before": _status_json(before), "after": _status_json(after)})
    elif before.version == after.version:
        print(f"schema {after.version} of {after.latest}: up to date")
    else:
        print(f"schema {before.version} -> {after.version} of {after.latest}")
    return 0


def cmd_db_copy(args: argparse.Namespace) -> int:
    feed = _open_light(args)
    bar = Progress(sys.stderr)
    try:
        report = feed.copy_to(args.to, progress=bar.update)
    finally:
        bar.done()
        feed.close()
    if args.json:
        _print_json({"source": report.source, "destination": report.destination, "rows": report.rows})
    else:
        print(f"copied {report.total} rows from {report.source} to {report.destination}; counts match")
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    location = config.store_location(_store_arg(args))
    if not isinstance(location, str):
        raise ConfigError("engfeed worker needs a PostgreSQL store: --database-url or ENGFEED_DATABASE_URL")
    try:
        from engfeed import jobs
    except ImportError:
        raise ConfigError("engfeed worker needs the job queue: pip install 'engfeed[postgres]'") from None
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = jobs.WorkerSettings(
        concurrency=args.concurrency,
        plan_every_s=args.plan_every,
        stalled_after_s=args.stalled_after,
        heartbeat_s=args.heartbeat,
    )
    jobs.run_worker(location, settings, name=args.name)
    return 0


def cmd_refresh(args: argparse.Namespace) -> int:
    feed = _open(args)
    bar = Progress(sys.stderr)
    if args.no_text:
        feed.fulltext = False
    report = feed.refresh(args.source, only_due=args.due, progress=bar.update)
    bar.done()
    for item in report.failed:
        _err(f"{item.name}: {item.error}")
    _report(report, args.json, "source")
    if report.text is not None and report.text.items and not args.json:
        print(_text_line(report.text))
    return 0


def cmd_fetch_text(args: argparse.Namespace) -> int:
    if not args.ids and not args.missing:
        args.usage_error("name articles by id, or use --missing")  # prints usage, exits 2
    if args.ids and args.missing:
        args.usage_error("give ids or --missing, not both")
    feed = _open(args)
    bar = Progress(sys.stderr)
    report = feed.fetch_text(args.ids, missing=args.missing, limit=args.limit, progress=bar.update)
    bar.done()
    if args.json:
        _print_json(report.to_json())
        return 0
    rows = [(r.id, r.status, str(r.words or ""), (r.reason or r.url)[:70]) for r in report.items]
    if rows:
        _table(("id", "status", "words", "reason or page"), rows)
    print(_text_line(report))
    return 0


def _text_line(report: TextReport) -> str:
    parts = [f"{report.count(s)} {label}" for s, label in _TEXT_LABELS if report.count(s)]
    line = f"Full text: {len(report.items)} page{'s' if len(report.items) != 1 else ''}"
    line += (": " + ", ".join(parts)) if parts else ""
    return line + (f"; {report.remaining} still to fetch" if report.remaining else "")


_TEXT_LABELS = (
    ("ok", "with text"),
    ("not_modified", "unchanged"),
    ("not_article", "not articles"),
    ("blocked", "refused by robots.txt"),
    ("failed", "failed (retried later)"),
)


def cmd_summarize(args: argparse.Namespace) -> int:
    feed = _open(args)
    art = feed.article(args.id)
    if art is None:
        raise EngfeedError(f"no such article: {terminal_safe(args.id)[:80]}")
    result = feed.summary(art)
    if args.json:
        _print_json(result.to_json())  # the summary object, or null (the reason on stderr)
        if result.summary is None:
            _err(f"no summary: {result.reason}")
        return 0
    if result.summary is None:
        print(f"No summary: {result.reason}")
        return 0
    from engfeed.summarize import render_text

    print(terminal_safe(render_text(result.summary, art.title), multiline=True))
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    feed = _open(args)
    bar = Progress(sys.stderr)

    def on_file(path: str, entry: SourceReport) -> None:
        if entry.status == "failed":
            bar.clear()
            _err(f"{path}: {entry.error}")

    report = feed.import_paths(args.paths, source=args.source, on_file=on_file, progress=bar.update)
    bar.done()
    _report(report, args.json, "file")
    read = [r for r in report.items if r.status != "failed"]
    if not read:
        _err("nothing could be imported")
        return 1
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    feed = _open(args)
    page = feed.articles(_filter(args), limit=args.limit)
    if args.json:
        _print_json([a.to_json() for a in page.articles])
        return 0
    print(f"{page.total} articles")
    for art in page.articles:
        _print_article(art)
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    # An argument with undecodable bytes ($'\xff cache') arrives with lone surrogates:
    # cleaned as the web path cleans a query.
    query = clean_text(args.query, MAX_QUERY_CHARS)
    if not query:
        raise EngfeedError("the query is empty")
    feed = _open(args)
    hits = feed.search(query, _filter(args), limit=args.limit)
    coverage = feed.search_coverage()
    if coverage.partial:
        _err(
            f"note: concept search covers {coverage.embedded} of {coverage.total} articles so far;"
            " the rest are embedded by the next import or refresh (keyword search covers all)"
        )
    _print_hits(hits, args.json)
    return 0


def cmd_related(args: argparse.Namespace) -> int:
    hits = _open(args).related(args.id, limit=args.limit)
    _print_hits(hits, args.json)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    art = _open_light(args).article(args.id)
    if art is None:
        raise EngfeedError(f"no such article: {args.id}")
    if args.json:
        data = art.to_json()
        data.update({"summary_html": art.summary_html, "content_html": art.content_html, "text": art.text})
        _print_json(data)
        return 0
    _print_article(art)
    state = [w for w, on in (("saved", art.saved), ("read", art.read)) if on]
    if state:
        print(f"    {', '.join(state).capitalize()}")
    if art.note:
        print("\nNote:\n" + terminal_safe(art.note, multiline=True))
    if art.text:
        print()
        if art.text_source == "page":
            print("(Text extracted from the original page)")
        print(terminal_safe(art.text))
    return 0


def _read_text(path: str, limit: int, what: str) -> str:
    if path == "-":
        data = sys.stdin.buffer.read(limit + 1)
        if len(data) > limit:
            raise EngfeedError(f"{what} too large: over {limit // 1024} KB")
    else:
        data = _read_capped(path, limit, what)
    return data.decode("utf-8", "replace")


def _state_report(articles: Sequence[Article], as_json: bool, verb: str) -> int:
    if as_json:
        _print_json([a.to_json() for a in articles])
        return 0
    for art in articles:
        print(f"{verb} [{art.uid}] {terminal_safe(art.title)}")
    return 0


def cmd_save(args: argparse.Namespace) -> int:
    from engfeed.readinglist import MAX_NOTE_BYTES

    note = args.note
    if args.note_file:
        # One byte past the cap is enough to refuse it with its real size below.
        note = _read_text(args.note_file, MAX_NOTE_BYTES * 4, "note file")
    return _state_report(_open_light(args).save(args.ids, note=note), args.json, "saved")


def cmd_unsave(args: argparse.Namespace) -> int:
    return _state_report(_open_light(args).unsave(args.ids), args.json, "removed from the reading list:")


def cmd_note(args: argparse.Namespace) -> int:
    from engfeed.readinglist import MAX_NOTE_BYTES

    note: str | None
    if args.clear:
        note = None
    elif args.file:
        note = _read_text(args.file, MAX_NOTE_BYTES * 4, "note file")
    else:
        note = args.text
    art = _open_light(args).set_note(args.id, note)
    return _state_report([art], args.json, "note saved on" if art.note else "note cleared on")


def cmd_mark(args: argparse.Namespace) -> int:
    articles = _open_light(args).mark_read(args.ids, args.read)
    return _state_report(articles, args.json, "read:" if args.read else "unread:")


def cmd_reading_list(args: argparse.Namespace) -> int:
    from engfeed.feed import reading_list_json

    saved = _open_light(args).reading_list(since=args.since)
    if args.json:
        _print_json([reading_list_json(a) for a in saved])
        return 0
    if not saved:
        print("The reading list is empty. Save articles with `engfeed save ID`.")
        return 0
    print(f"{len(saved)} saved")
    for art in saved:
        _print_article(art)
        if art.note:
            first = terminal_safe(art.note.strip().splitlines()[0])[:100]
            print(f"    Note: {first}")
    return 0


def cmd_reading_list_export(args: argparse.Namespace) -> int:
    _emit(
        _open_light(args).export_reading_list(
            title=args.title, since=args.since, fmt="json" if args.json else args.format
        ),
        args.output,
    )
    return 0


def cmd_reading_list_import(args: argparse.Namespace) -> int:
    from engfeed.readinglist import MAX_LIST_BYTES

    text = _read_text(args.file, MAX_LIST_BYTES, "reading list")
    report = _open(args).import_reading_list(text)
    for line in report.skipped:
        _err(f"skipped: {line}")
    if args.json:
        _print_json(report.to_json())
    else:
        print(
            f"saved {report.matched + report.created} entries: {report.matched} matched stored articles,"
            f" {report.created} added as links"
            + (f"; skipped {len(report.skipped)}" if report.skipped else "")
        )
    return 0


def _emit(text: str, output: str | None) -> None:
    """An export's text: to ``output`` (written atomically) when given, else to stdout."""
    if output:
        _write_atomically(Path(output), text)
    else:
        sys.stdout.write(text)


def _write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename: a crash never leaves
    a half-written file in place of a good one."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise EngfeedError(f"cannot write {path}: {exc.strerror or exc}") from exc
        raise


def cmd_angles_list(args: argparse.Namespace) -> int:
    feed = _open(args)
    feed.index_pending()
    counts = dict(feed.angle_counts())
    angles = feed.angles()
    if args.json:
        _print_json(
            [
                {
                    "name": a.name,
                    "description": a.description,
                    "terms": list(a.terms),
                    "articles": counts.get(a.name, 0),
                }
                for a in angles
            ]
        )
        return 0
    source = str(feed.angles_file) if feed.angles_file else "bundled defaults"
    print(f"angles from {source}")
    _table(
        ("angle", "articles", "cue terms"),
        [(a.name, str(counts.get(a.name, 0)), ", ".join(a.terms[:6])) for a in angles],
    )
    return 0


def cmd_angles_suggest(args: argparse.Namespace) -> int:
    from engfeed.angles import dump_angles, suggest_angles

    data = _read_capped(args.source_file, MAX_PROFILE_BYTES, "profile")
    text = data.decode("utf-8", errors="replace")
    feed = _open(args)
    suggestions = suggest_angles(text, feed.embedder, existing=feed.angles())
    if args.json:
        _print_json(
            [{"name": a.name, "description": a.description, "terms": list(a.terms)} for a in suggestions]
        )
    else:
        sys.stdout.write(dump_angles(suggestions))
    return 0


def cmd_mute_add(args: argparse.Namespace) -> int:
    kind, value = next(
        (k, getattr(args, k)) for k in ("source", "term", "regex", "angle") if getattr(args, k) is not None
    )
    feed = _open(args)
    if kind == "angle":
        feed.index_pending()  # every article has its angles before an angle rule is counted
    preview = feed.preview_mute(kind, value) if args.preview else feed.add_mute(kind, value)
    if args.json:
        data = preview.to_json()
        data["saved"] = not args.preview
        _print_json(data)
        return 0
    rule = preview.rule
    shown = terminal_safe(rule.describe())
    if args.preview:
        print(f"{shown} would hide {preview.hidden} of {preview.total} stored articles (not saved)")
    else:
        print(f"rule {rule.id}: {shown} hides {preview.hidden} of {preview.total} stored articles")
    for art in preview.examples:
        _print_article(art)
    if preview.hidden > len(preview.examples):
        print(f"... and {preview.hidden - len(preview.examples)} more")
    return 0


def cmd_mute_list(args: argparse.Namespace) -> int:
    rules = _open_light(args).mute_rules()
    if args.json:
        _print_json([r.to_json() for r in rules])
        return 0
    if not rules:
        print("no mute rules (add one: engfeed mute add --term TEXT)")
        return 0
    _table(
        ("#", "kind", "rule", "hides", "added"),
        [(str(r.id), r.kind, r.value, str(r.hidden), _ago(r.created)) for r in rules],
    )
    return 0


def cmd_mute_remove(args: argparse.Namespace) -> int:
    rule = _open_light(args).remove_mute(args.n)
    if args.json:
        _print_json(rule.to_json())
    else:
        print(f"removed rule {rule.id}: {terminal_safe(rule.describe())} ({rule.hidden} articles show again)")
    return 0


def cmd_digest(args: argparse.Namespace) -> int:
    if args.send and (args.output or args.format != "md"):
        raise EngfeedError("--send mails the digest; -o and --format are for a digest written out, not sent")
    feed = _open(args)
    feed.index_pending()
    if args.send:
        report = feed.send_digest(config.digest_settings(), days=args.days, force=args.force)
        if args.json:
            _print_json(report.to_json())
        elif report.status == "sent":
            note = f" ({report.message})" if report.message else ""
            print(f"sent the digest of {report.articles} articles to {', '.join(report.recipients)}{note}")
        else:
            print(f"not sent: {report.message}")
        return 0
    digest = feed.digest(days=args.days, base_url=config.base_url())
    if args.json and not args.output:
        _print_json(digest.to_json())
        return 0
    from engfeed.digest import render

    if args.json:
        text = json.dumps(digest.to_json(), ensure_ascii=False, indent=2) + "\n"
    else:
        text = render(digest, args.format)
    if args.output:
        _write_atomically(Path(args.output), text)
        print(
            f"wrote the digest ({digest.shown} of {digest.total} new articles) to {args.output}",
            file=sys.stderr,
        )
    else:
        sys.stdout.write(text)
    return 0


def cmd_angles_feedback(args: argparse.Namespace) -> int:
    feed = _open(args)
    feed.index_pending()  # new articles are labelled before the verdict re-labels neighbours
    result = feed.angle_feedback(args.id, args.angle, args.verdict)
    if args.json:
        _print_json(result.to_json())
        return 0
    assert result.article is not None
    now = ", ".join(terminal_safe(a.name) for a in result.article.angles) or "none"
    print(f"{terminal_safe(result.article.title)}: angles now {now}")
    print(f"re-labelled {result.relabelled} similar articles; {result.changed} changed")
    return 0


def cmd_angles_explain(args: argparse.Namespace) -> int:
    feed = _open(args)
    explanations = feed.explain_angles(args.id)
    if args.json:
        _print_json([e.to_json() for e in explanations])
        return 0
    for e in explanations:
        j = e.judgement
        mark = "✓" if e.chosen else "·"
        score = "—" if j.score is None else f"{j.score:.3f}"
        kind = "probability" if e.rule == "learned" else "score"
        head = f"{mark} {terminal_safe(e.angle)}  {kind} {score} / threshold {e.threshold:.2f}"
        print(f"{head}: {terminal_safe(j.reason)}")
        if e.terms:
            print(f"    evidence: {terminal_safe(', '.join(e.terms))}")
        if j.nudge:
            moved = "probability" if e.rule == "learned" else "meaning"
            print(f"    your verdicts on similar articles moved its {moved} by {j.nudge:+.3f}")
        if e.passage and e.chosen:
            print(f"    passage: {terminal_safe(e.passage)}")
    return 0


def cmd_angles_feedback_export(args: argparse.Namespace) -> int:
    _emit(_open_light(args).export_feedback(), args.output)
    return 0


def cmd_angles_feedback_import(args: argparse.Namespace) -> int:
    data = _read_capped(args.file, 10 * 1024 * 1024, "feedback file")
    result = _open(args).import_feedback(data.decode("utf-8", "replace"))
    if args.json:
        _print_json(result.to_json())
        return 0
    print(f"recorded {result.recorded} verdicts; skipped {len(result.skipped)}")
    for line in result.skipped[:20]:
        print(f"  skipped: {terminal_safe(line)}")
    return 0


def cmd_reindex(args: argparse.Namespace) -> int:
    feed = _open(args)
    bar = Progress(sys.stderr)
    count = feed.reindex(progress=bar.update)
    bar.done()
    print(f"re-embedded {count} articles with {feed.embedder.name if feed.embedder else 'no model'}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from engfeed.web.server import serve

    serve(_store_arg(args), host=args.host, port=args.port, angles_file=args.angles, workers=args.workers)
    return 0


# -- output helpers --------------------------------------------------------------------------
def _print_json(data: object) -> None:
    json.dump(data, sys.stdout, ensure_ascii=False, indent=2)
    sys.stdout.write("\n")


def _print_article(art: Article) -> None:
    """One article in a line or two. Every field came from a feed: control characters go."""
    angle = ""
    if art.angles:
        first = art.angles[0]
        angle = f"\n    Useful angle: {terminal_safe(first.name)} via {terminal_safe(', '.join(first.terms))}"
    date = "undated    " if art.published < EARLIEST_DATE else f"{art.published:%Y-%m-%d}"
    source, title = terminal_safe(art.source), terminal_safe(art.title)
    print(f"{date}  {source:<14.14}  {title}  [{terminal_safe(art.uid)}]{angle}")


def _print_hits(hits: list[SearchHit], as_json: bool) -> None:
    if as_json:
        _print_json([h.to_json() for h in hits])
        return
    if not hits:
        print("no matches")
    for hit in hits:
        _print_article(hit.article)
        if hit.context:
            plain = html.unescape(hit.context.replace("<mark>", "*").replace("</mark>", "*"))
            print(f"    {terminal_safe(plain)}")


def _report(report: IngestReport, as_json: bool, unit: str) -> None:
    if as_json:
        _print_json([r.to_json() for r in report.items])
        return
    rows = [
        (r.name, r.status, str(r.new), str(r.updated), str(r.unchanged), (r.error or "")[:70])
        for r in report.items
    ]
    if len(rows) > 40:  # a folder import: summarise instead of a screenful of rows
        rows = [r for r in rows if r[1] == "failed" or r[2] != "0"][:40]
    _table((unit, "status", "new", "updated", "unchanged", "error"), rows)
    print(
        f"{len(report.items)} {unit}s: {report.total('new')} new, {report.total('updated')} updated,"
        f" {report.total('unchanged')} unchanged, {len(report.failed)} failed"
    )


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(header)]
    widths = [min(w, 48) for w in widths]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))
    print(line.rstrip())
    print("  ".join("-" * w for w in widths))
    for row in rows:
        cells = (terminal_safe(c)[:w].ljust(w) for c, w in zip(row, widths, strict=True))
        print("  ".join(cells).rstrip())


def _ago(when: datetime | None) -> str:
    if when is None:
        return "never"
    seconds = (datetime.now(UTC) - when).total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit} ago"
    return "just now"


def _read_capped(path: str, limit: int, what: str) -> bytes:
    """A file's bytes, refused with a clear error past ``limit`` (checked before reading)."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise EngfeedError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if len(data) > limit:
        size = f"{limit // 1024 // 1024} MB" if limit >= 1024 * 1024 else f"{limit // 1024} KB"
        raise EngfeedError(f"{what} too large: {path} is over {size}")
    return data


def _err(message: str) -> None:
    print(f"engfeed: {terminal_safe(message)}", file=sys.stderr)


class Progress:
    """A one-line progress bar on a terminal; silent when output is redirected."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.active = stream.isatty() and not os.environ.get("CI")
        self.shown = False

    def update(self, stage: str, done: int, total: int) -> None:
        if not self.active or total <= 0:
            return
        width = 30
        filled = int(width * done / total)
        self.stream.write(f"\r{stage:<8} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
        self.stream.flush()
        self.shown = True

    def clear(self) -> None:
        if self.shown:
            self.stream.write("\r\033[K")
            self.shown = False

    def done(self) -> None:
        self.clear()
