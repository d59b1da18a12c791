"""The digest: the best new articles of a period, grouped by angle, rendered and mailed.

Choosing (:func:`select`): of the new articles of the period that no mute rule hides, at most
``MAX_ENTRIES``: saved ones first, then those with a useful angle (the first angle that
cleared its threshold by most first: a trained head's probability and a prototype score are
compared through ``AngleLabeler.strength``), then the rest, newest first within each. They
are shown grouped by their first angle, in the order of the reader's angles, then "Also new"
for the ones without; within a group by company, then newest first. Each entry carries two
sentences: the overview of its stored summary when there is one (never computed here), else
its excerpt.

Rendering (:func:`render`): Markdown, HTML (inline CSS, for mail; under ``MAX_HTML_BYTES``,
the size past which Gmail clips a message) and plain text, from one Jinja2 template set
(``templates/digest.*``).

Mailing (:func:`message`, :func:`send`): stdlib ``smtplib``, ``multipart/alternative``
(text, then HTML), with ``List-Unsubscribe`` (and one-click ``List-Unsubscribe-Post`` when
the page's address is known). Idempotency per ISO week lives in the store
(engfeed.store.digests) and the schedule in :func:`due`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import smtplib
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from urllib.parse import quote, urlencode

import jinja2

from engfeed.config import DigestSettings, SmtpSettings
from engfeed.errors import EngfeedError
from engfeed.models import AngleMatch, Article, iso
from engfeed.summarize.sentences import split_sentences
from engfeed.text import clip

MAX_ENTRIES = 30
MAX_HTML_BYTES = 100_000
BLURB_CHARS = 320
FORMATS = ("md", "html", "text")
OTHER_GROUP = "Also new"
SMTP_TIMEOUT = 30.0


class DigestError(EngfeedError):
    """The digest could not be sent; the message says why (never the SMTP password)."""


@dataclass(frozen=True, slots=True)
class DigestEntry:
    article: Article
    angle: AngleMatch | None
    blurb: str

    def to_json(self) -> dict[str, object]:
        a = self.article
        return {
            "id": a.uid,
            "title": a.title,
            "url": a.url,
            "source": a.source,
            "published": iso(a.published),
            "angle": self.angle.to_json() if self.angle else None,
            "blurb": self.blurb,
            "saved": a.saved,
        }


@dataclass(frozen=True, slots=True)
class DigestGroup:
    title: str  # the angle's name, or OTHER_GROUP
    angle: str | None
    entries: tuple[DigestEntry, ...]

    @property
    def heading(self) -> str:
        """The title as a heading: angle names are lower case ("systems performance")."""
        return self.title[:1].upper() + self.title[1:]


@dataclass(frozen=True, slots=True)
class Digest:
    start: datetime
    end: datetime
    groups: tuple[DigestGroup, ...]
    total: int  # new articles in the period that no rule hides
    base_url: str = ""  # the page's address, for links ('' when unknown)

    @property
    def shown(self) -> int:
        return sum(len(g.entries) for g in self.groups)

    @property
    def more(self) -> int:
        return max(0, self.total - self.shown)

    @property
    def week(self) -> str:
        """The ISO week the period ends in, e.g. ``2026-W49``."""
        year, week, _ = (self.end - timedelta(seconds=1)).isocalendar()
        return f"{year}-W{week:02d}"

    @property
    def period(self) -> str:
        """The period in words, in the server's time zone (where the weeks start on Monday
        00:00): "30 Nov – 6 Dec 2026"."""
        first, last = self.start.astimezone(), (self.end - timedelta(seconds=1)).astimezone()
        if first.year != last.year:
            return f"{first:%-d %b %Y} – {last:%-d %b %Y}"
        return f"{first:%-d %b} – {last:%-d %b %Y}"

    @property
    def title(self) -> str:
        return f"Engineering Feed digest: {self.period}"

    def link(self, entry: DigestEntry) -> str:
        """Where an entry's title points: the article, else its page here (a feed URL that was
        not http(s) is not stored), else nothing."""
        url = entry.article.url
        if url.startswith(("http://", "https://")):
            return url
        return f"{self.base_url}/a/{quote(entry.article.uid, safe='')}" if self.base_url else ""

    @property
    def page_url(self) -> str:
        """The feed page from the period's start (where the articles not shown are)."""
        query = urlencode({"since": f"{self.start:%Y-%m-%d}"})
        return f"{self.base_url}/?{query}" if self.base_url else ""

    def to_json(self) -> dict[str, object]:
        return {
            "title": self.title,
            "start": iso(self.start),
            "end": iso(self.end),
            "week": self.week,
            "total": self.total,
            "shown": self.shown,
            "more": self.more,
            "groups": [
                {"title": g.title, "angle": g.angle, "entries": [e.to_json() for e in g.entries]}
                for g in self.groups
            ],
        }


def blurb(article: Article, overview: str | None = None) -> str:
    """Two sentences about the article: its summary's overview when there is one, else its excerpt."""
    text = overview or article.excerpt
    sentences = split_sentences(text)
    return clip(" ".join(sentences[:2]), BLURB_CHARS)


def select(
    articles: Sequence[Article],
    *,
    angle_order: Sequence[str],
    overviews: dict[str, str] | None = None,
    limit: int = MAX_ENTRIES,
    strength: Callable[[AngleMatch], float] | None = None,
) -> tuple[DigestGroup, ...]:
    """The digest's entries, grouped: see the module docstring for the rules. ``strength``
    compares angles of different rules (``AngleLabeler.strength``); without it, raw scores."""
    overviews = overviews or {}

    def priority(a: Article) -> tuple[bool, bool, float, float]:
        best = (strength(a.angles[0]) if strength else a.angles[0].score) if a.angles else 0.0
        return (not a.saved, not a.angles, -best, -a.published.timestamp())

    chosen = sorted(articles, key=priority)[: max(0, limit)]
    order = {name.casefold(): i for i, name in enumerate(angle_order)}
    groups: dict[str | None, list[DigestEntry]] = {}
    for art in chosen:
        angle = art.angles[0] if art.angles else None
        key = angle.name if angle else None
        groups.setdefault(key, []).append(DigestEntry(art, angle, blurb(art, overviews.get(art.uid))))

    def group_rank(key: str | None) -> tuple[int, int, str]:
        if key is None:
            return (2, 0, "")
        return (0, order[key.casefold()], key) if key.casefold() in order else (1, 0, key.casefold())

    out: list[DigestGroup] = []
    for key in sorted(groups, key=group_rank):
        entries = sorted(
            groups[key], key=lambda e: (e.article.source.casefold(), -e.article.published.timestamp())
        )
        out.append(DigestGroup(key or OTHER_GROUP, key, tuple(entries)))
    return tuple(out)


# -- rendering ----------------------------------------------------------------------------
def _markdown_text(value: object) -> str:
    """Text that Markdown shows as written (no links, emphasis or HTML from a feed's title)."""
    text = "".join(f"\\{c}" if c in "\\`*_[]<>|" else c for c in " ".join(str(value).split()))
    if text[:1] in ("#", "-", "+", "="):
        text = "\\" + text  # would start a heading, a list item or a setext underline
    elif ordered := _ORDERED.match(text):
        text = f"{ordered.group(1)}\\{text[ordered.end(1) :]}"  # "1. x" would start a list
    return text


_ORDERED = re.compile(r"(\d+)[.)]")


def _markdown_url(value: object) -> str:
    return quote(str(value), safe=":/?#@!$&'*+,;=%~-._")


_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("engfeed", "templates"),
    autoescape=jinja2.select_autoescape(enabled_extensions=("html", "html.j2"), default_for_string=False),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)
_ENV.filters["md"] = _markdown_text
_ENV.filters["mdurl"] = _markdown_url
_TEMPLATES = {"md": "digest.md.j2", "html": "digest.html.j2", "text": "digest.txt.j2"}


def render(digest: Digest, fmt: str = "md", *, unsubscribe_url: str = "") -> str:
    """The digest as Markdown (``md``), mail HTML (``html``) or plain text (``text``).

    The HTML stays under ``MAX_HTML_BYTES``: when long titles or URLs (a feed may give URLs of
    8 KB) push it over, the last entries move to "N more on the page" until it fits."""
    if fmt not in _TEMPLATES:
        raise EngfeedError(f"unknown digest format {fmt!r}: use md, html or text")
    template = _ENV.get_template(_TEMPLATES[fmt])
    out = template.render(d=digest, unsubscribe_url=unsubscribe_url)
    while fmt == "html" and len(out.encode("utf-8")) > MAX_HTML_BYTES and digest.shown:
        digest = _without_last(digest)
        out = template.render(d=digest, unsubscribe_url=unsubscribe_url)
    return out


def _without_last(digest: Digest) -> Digest:
    """The digest with its last entry left to the page."""
    groups = list(digest.groups)
    last = groups.pop()
    if len(last.entries) > 1:
        groups.append(replace(last, entries=last.entries[:-1]))
    return replace(digest, groups=tuple(groups))


# -- mailing -------------------------------------------------------------------------------
def unsubscribe_token(secret: str, address: str) -> str:
    """The token that lets ``address`` (and only it) unsubscribe without logging in."""
    mac = hmac.new(secret.encode(), address.strip().casefold().encode(), hashlib.sha256)
    return mac.hexdigest()[:32]


def check_token(secret: str, address: str, token: str) -> bool:
    token = token.strip()
    return token.isascii() and hmac.compare_digest(unsubscribe_token(secret, address), token)


def message(
    digest: Digest, settings: DigestSettings, recipient: str, *, unsubscribe_url: str = "", now: datetime
) -> EmailMessage:
    """The mail: ``multipart/alternative`` with the text part first and the HTML part last
    (mail clients show the last part they can), and the unsubscribe headers."""
    msg = EmailMessage()
    msg["Subject"] = f"{digest.title} ({digest.total} new)"
    msg["From"] = f"Engineering Feed <{settings.sender}>"
    msg["To"] = recipient
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = make_msgid(domain=settings.sender.rpartition("@")[2] or "localhost")
    unsubscribe = [f"<mailto:{settings.sender}?subject=unsubscribe>"]
    if unsubscribe_url:
        unsubscribe.insert(0, f"<{unsubscribe_url}>")
        msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg["List-Unsubscribe"] = ", ".join(unsubscribe)
    msg["List-Id"] = "Engineering Feed digest <digest.engfeed.local>"
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(render(digest, "text", unsubscribe_url=unsubscribe_url))
    msg.add_alternative(render(digest, "html", unsubscribe_url=unsubscribe_url), subtype="html")
    return msg


def send(msg: EmailMessage, smtp: SmtpSettings, *, timeout: float = SMTP_TIMEOUT) -> None:
    """Deliver one message; :class:`DigestError` (naming the server, never the password) when
    the server cannot be reached, refuses the login or refuses the message."""
    where = smtp.display()
    try:
        client: smtplib.SMTP
        if smtp.tls == "ssl":
            client = smtplib.SMTP_SSL(
                smtp.host, smtp.port, timeout=timeout, context=ssl.create_default_context()
            )
        else:
            client = smtplib.SMTP(smtp.host, smtp.port, timeout=timeout)
        with client:
            if smtp.tls == "starttls":
                client.starttls(context=ssl.create_default_context())
            if smtp.user:
                client.login(smtp.user, smtp.password)
            client.send_message(msg)
    except smtplib.SMTPAuthenticationError:
        raise DigestError(f"the mail server {where} refused the login") from None
    except smtplib.SMTPRecipientsRefused as exc:
        raise DigestError(
            f"the mail server {where} refused the recipient {', '.join(exc.recipients)}"
        ) from None
    except smtplib.SMTPException as exc:
        raise DigestError(f"the mail server {where} refused the digest: {exc}") from None
    except (OSError, ssl.SSLError) as exc:
        raise DigestError(f"cannot reach the mail server {where}: {exc.strerror or exc}") from None
    except (ValueError, UnicodeError) as exc:  # e.g. a user or password smtplib cannot encode
        raise DigestError(f"cannot talk to the mail server {where}: {type(exc).__name__}") from None


def week_of(when: datetime) -> str:
    year, week, _ = when.isocalendar()
    return f"{year}-W{week:02d}"


def due(now: datetime, *, day: int, hour: int) -> bool:
    """Is this week's send due at ``now`` (local time)? From ``day`` (ISO weekday) at ``hour``
    to the end of the ISO week; the store makes it once per week."""
    return (now.isoweekday(), now.hour) >= (day, hour)


def week_start(when: datetime) -> datetime:
    """Monday 00:00 of ``when``'s ISO week, in ``when``'s time zone."""
    day = when - timedelta(days=when.isoweekday() - 1)
    return day.replace(hour=0, minute=0, second=0, microsecond=0)
