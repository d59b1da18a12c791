"""The weekly digest outside the web page: choosing and grouping the entries, the three
renderings (Markdown shown as written, escaped mail HTML under 100 KB, plain text), the
``digest`` command and its settings errors, mailing through a real SMTP server on loopback
(aiosmtpd): multipart/alternative, List-Unsubscribe, one send per ISO week, nothing sent
for an empty week, a failed send never claiming the week, SMTP login; the weekly schedule,
unsubscribing, and ``serve``'s digest_mailer.

Feeds are generated here, dated just before now (or before the explicit ``now`` of the
schedule tests), so the digest of the last days has something in it.
"""

from __future__ import annotations

import email
import email.policy
import functools
import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from browser_support import free_port
from conftest import run_cli
from engfeed import digest as digest_mod
from engfeed.config import DigestSettings, SmtpSettings, digest_settings, smtp_settings
from engfeed.digest import (
    MAX_ENTRIES,
    MAX_HTML_BYTES,
    OTHER_GROUP,
    Digest,
    DigestError,
    blurb,
    render,
    select,
)
from engfeed.errors import ConfigError, EngfeedError
from engfeed.feed import Feed
from engfeed.models import AngleMatch, Article
from engfeed.web.app import digest_mailer
from engfeed.web.refresh import Refresher
from feedgen import rss
from pgserver import store_location

ROOT = Path(__file__).resolve().parents[1]
ANGLES = str(ROOT / "src" / "engfeed" / "data" / "angles.toml")  # the bundled angles, whatever is installed
BASE = "http://127.0.0.1:8000"
READER = "reader@example.com"
OTHER = "other@example.com"
PASSWORD = "hunter2-pw"  # never in any message
MAIL_ENV = (
    "ENGFEED_SMTP_URL",
    "ENGFEED_DIGEST_TO",
    "ENGFEED_DIGEST_FROM",
    "ENGFEED_DIGEST_DAY",
    "ENGFEED_DIGEST_HOUR",
    "ENGFEED_BASE_URL",
    "ENGFEED_LLM_URL",
    "ENGFEED_LLM_MODEL",
)

pytestmark = pytest.mark.usefixtures("cli_env")


@pytest.fixture(autouse=True)
def _no_mail_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """No mail settings from the environment, and a short SMTP timeout (loopback only)."""
    for name in MAIL_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("engfeed.feed.send_mail", functools.partial(digest_mod.send, timeout=5.0))


# -- generated feeds ------------------------------------------------------------------------------
def channel(title: str, site: str, items: list[tuple[str, str, datetime, str]]) -> bytes:
    """An RSS 2.0 document with (slug, title, published, body) items."""
    out = [
        f"<item><title>{escape(t)}</title><link>{site}/{slug}</link><guid>{site}/{slug}</guid>"
        f"<pubDate>{format_datetime(when)}</pubDate><description>{escape(body)}</description></item>"
        for slug, t, when, body in items
    ]
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel>'
        f"<title>{escape(title)}</title><link>{site}/</link><description>d</description>"
        + "".join(out)
        + "</channel></rss>"
    ).encode()


PERF_TEXT = (
    "We cut p99 tail latency and raised throughput. The latency profile showed CPU bottlenecks; a "
    "flame graph showed lock contention. Throughput doubled and p99 latency fell by half with less "
    "memory and CPU use. "
) * 3
BENCH_TEXT = (
    "We ran a benchmark suite with reproducible methodology. The benchmark results show percentiles, "
    "p50 and p99 numbers, with variance across runs and a baseline comparison. "
) * 3
PERF = "Cutting p99 latency and raising throughput"  # systems performance (the first bundled angle)
BENCH = "Benchmark results: our methodology and numbers"  # benchmarking data (the last one)
OLD = "Old news from last month"
ZETA = "Zeta ships a new query planner"
HIRING = "Hiring for our new platform team (part 2)"
ACME = [
    "Scaling our queue to a million messages per second (part 0)",
    "How we run active-active across regions (part 1)",
    HIRING,
    "Making builds faster with remote caching (part 3)",
]
NEW = 2 + len(ACME) + 1  # PERF, BENCH, ACME, ZETA (OLD is older than a week)


def write_corpus(folder: Path, now: datetime) -> list[Path]:
    perf = folder / "perf.xml"
    perf.write_bytes(
        channel(
            "Perf Co",
            "https://perf.example",
            [
                ("perf", PERF, now - timedelta(hours=1), PERF_TEXT),
                ("bench", BENCH, now - timedelta(hours=2), BENCH_TEXT),
                ("old", OLD, now - timedelta(days=20), "Nothing to see. Really."),
            ],
        )
    )
    acme = folder / "acme.xml"
    acme.write_bytes(rss(len(ACME), start=now - timedelta(hours=3)))
    zeta = folder / "zeta.xml"
    zeta.write_bytes(
        channel(
            "Zeta Labs",
            "https://zeta.example",
            [("planner", ZETA, now - timedelta(minutes=30), "The planner picks better joins. It is faster.")],
        )
    )
    return [perf, acme, zeta]


def open_feed(db: Path | str) -> Feed:
    return Feed.open(db, angles_file=ANGLES, embed=False)


@pytest.fixture
def db(tmp_path: Path, request: pytest.FixtureRequest, backend: str) -> str:
    """A store with NEW articles of the last days (two with an angle) and one older, on each
    backend."""
    path = store_location(request, backend, "digest")
    feed = open_feed(path)
    try:
        feed.import_paths(write_corpus(tmp_path, datetime.now(UTC)))
    finally:
        feed.close()
    return str(path)


@pytest.fixture
def feed(db: str) -> Iterator[Feed]:
    f = open_feed(db)
    yield f
    f.close()


def by_title(feed: Feed, title: str) -> Article:
    found = [a for a in feed.articles(limit=100).articles if a.title == title]
    assert len(found) == 1, title
    return found[0]


def entry_titles(d: Digest) -> list[str]:
    return [e.article.title for g in d.groups for e in g.entries]


# -- articles made in place, for the units ------------------------------------------------------------
END = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)


def art(
    n: int,
    *,
    hours: float = 1,
    source: str = "Acme",
    angle: str | None = None,
    score: float = 0.5,
    saved: bool = False,
    title: str | None = None,
    excerpt: str = "First sentence here. Second sentence there. Third is left out.",
    url: str | None = None,
) -> Article:
    return Article(
        uid=f"id{n}",
        url=url or f"https://{source.lower().replace(' ', '-')}.example/post-{n}",
        title=title or f"Article number {n}",
        published=END - timedelta(hours=hours),
        source=source,
        excerpt=excerpt,
        angles=(AngleMatch(angle, ("p99",), score),) if angle else (),
        saved=saved,
    )


def make_digest(
    articles: list[Article], *, total: int | None = None, base_url: str = "", **kw: Any
) -> Digest:
    groups = select(articles, angle_order=kw.pop("angle_order", ["A", "B"]), **kw)
    return Digest(END - timedelta(days=7), END, groups, len(articles) if total is None else total, base_url)


# -- choosing and grouping ------------------------------------------------------------------------
def test_select_keeps_at_most_30_saved_then_angled_by_score_then_newest() -> None:
    plain = [art(i, hours=i) for i in range(40)]  # id0 newest
    saved = [art(100, hours=500, saved=True), art(101, hours=400, saved=True)]  # old, no angle
    angled = [art(200 + i, hours=300, angle="A", score=s) for i, s in enumerate((0.2, 0.9, 0.5))]
    chosen = [e.article.uid for g in select(plain + saved + angled, angle_order=["A"]) for e in g.entries]
    assert len(chosen) == MAX_ENTRIES == 30
    assert {"id100", "id101", "id200", "id201", "id202"} <= set(chosen)
    assert set(chosen) - {"id100", "id101", "id200", "id201", "id202"} == {f"id{i}" for i in range(25)}

    def top(limit: int) -> set[str]:
        groups = select(plain + saved + angled, angle_order=["A"], limit=limit)
        return {e.article.uid for g in groups for e in g.entries}

    assert top(2) == {"id100", "id101"}  # saved first, however old and unangled
    assert top(3) == {"id100", "id101", "id201"}  # then the best angle score
    assert top(4) == {"id100", "id101", "id201", "id202"}
    assert top(0) == set()


def test_groups_follow_the_readers_angle_order_then_unknown_angles_then_also_new() -> None:
    articles = [
        art(1, angle="Beta", score=0.99),
        art(2, angle="zulu", score=0.95),  # an angle the reader no longer has
        art(3),
        art(4, angle="alpha", score=0.1),  # matched case-insensitively against the order
        art(5, angle="Beta", score=0.2),
    ]
    groups = select(articles, angle_order=["Alpha", "beta"])
    assert [g.title for g in groups] == ["alpha", "Beta", "zulu", OTHER_GROUP]
    assert [g.angle for g in groups] == ["alpha", "Beta", "zulu", None]
    assert [[e.article.uid for e in g.entries] for g in groups] == [["id4"], ["id1", "id5"], ["id2"], ["id3"]]
    assert groups[1].entries[0].angle == AngleMatch("Beta", ("p99",), 0.99)
    assert groups[3].entries[0].angle is None


def test_within_a_group_by_company_then_newest() -> None:
    articles = [
        art(1, hours=1, source="Zeta Labs"),
        art(2, hours=9, source="acme"),
        art(3, hours=2, source="Acme"),
        art(4, hours=5, source="Beta"),
        art(5, hours=3, source="Acme"),
    ]
    (group,) = select(articles, angle_order=[])
    assert [e.article.uid for e in group.entries] == ["id3", "id5", "id2", "id4", "id1"]


def test_blurb_is_two_sentences_from_the_overview_else_the_excerpt() -> None:
    a = art(1, excerpt="The queue was slow under load. We rebuilt the broker in Rust. Then p99 fell.")
    assert blurb(a) == "The queue was slow under load. We rebuilt the broker in Rust."
    assert blurb(a, "Overview one says this. Overview two says that. Three.") == (
        "Overview one says this. Overview two says that."
    )
    assert blurb(a, "") == blurb(a)  # an empty overview falls back to the excerpt
    long = blurb(art(2, excerpt="word " * 400))
    assert len(long) <= digest_mod.BLURB_CHARS and long.endswith("…")
    assert blurb(art(3, excerpt="")) == ""
    (group,) = select([a], angle_order=[], overviews={"id1": "From the summary. Second. Third."})
    assert group.entries[0].blurb == "From the summary. Second."


# -- rendering --------------------------------------------------------------------------------------
def test_more_on_the_page_in_every_format_with_the_link_when_the_address_is_known() -> None:
    articles = [art(i, hours=i + 1) for i in range(35)]
    linked = make_digest(articles, base_url=BASE)
    assert (linked.total, linked.shown, linked.more) == (35, 30, 5)
    page = f"{BASE}/?since=2026-11-27"
    assert linked.page_url == page
    md, html, text = (render(linked, f) for f in ("md", "html", "text"))
    assert f"[5 more on the page]({page})" in md
    assert f'<a href="{page}" style="color:#0b5cad;">5 more on the page</a>' in html
    assert f"5 more on the page: {page}" in text
    for out in (md, html, text):
        assert "35 new articles; the 30 most useful below." in out
        assert out.count("Article number") == 30
        assert "Article number 0" in out and "Article number 29" in out and "Article number 30" not in out

    unlinked = make_digest(articles)
    assert unlinked.page_url == ""
    for fmt in ("md", "html", "text"):
        out = render(unlinked, fmt)
        assert "\n5 more on the page" in out.replace(">", ">\n") and "/?since=" not in out

    few = make_digest(articles[:3])
    for fmt in ("md", "html", "text"):
        out = render(few, fmt)
        assert "more on the page" not in out and "most useful below" not in out
        assert "3 new articles." in out
    assert "1 new article." in render(make_digest(articles[:1]), "text")


def test_groups_render_in_order_with_the_angle_and_its_evidence() -> None:
    d = make_digest([art(1), art(2, angle="B", score=0.9), art(3, angle="A", score=0.1)])
    md, html, text = (render(d, f) for f in ("md", "html", "text"))
    assert md.index("## A") < md.index("## B") < md.index(f"## {OTHER_GROUP}")
    assert text.index("\nA\n-\n") < text.index("\nB\n-\n") < text.index("\nALSO NEW\n--------\n")
    assert html.index(">A</h2>") < html.index(">B</h2>") < html.index(f">{OTHER_GROUP}</h2>")
    assert "*Useful angle:* A via p99" in md
    assert "Useful angle: B via p99" in text
    assert "Useful angle:</span> A" in html
    assert md.startswith("# Engineering Feed digest: 27 Nov – 4 Dec 2026\n")
    assert text.startswith("Engineering Feed digest: 27 Nov – 4 Dec 2026\n" + "=" * 44 + "\n")
    assert "<title>Engineering Feed digest: 27 Nov – 4 Dec 2026</title>" in html


def test_saved_articles_are_marked_in_every_format() -> None:
    d = make_digest([art(1, saved=True, title="Kept for later"), art(2, title="Not kept")])
    md, html, text = (render(d, f) for f in ("md", "html", "text"))
    assert md.count("★ saved") == 1
    assert re.search(r"Kept for later.*★ saved", md) and not re.search(r"Not kept.*saved", md)
    assert len(re.findall(r"<strong[^>]*>★ saved</strong>", html)) == 1 and html.count("saved") == 1
    assert html.index("Kept for later") < html.index("★ saved")
    assert text.count("· saved") == 1
    kept = text[text.index("* Kept for later") :]
    assert kept.splitlines()[1].endswith("· saved")


EVIL = "*[evil](http://x)* # 1. <b>"


def test_markdown_shows_feed_text_as_written() -> None:
    a = art(1, title=EVIL, source="Co_op|<i>", excerpt="1. Not a list item. # Not a heading either.")
    b = art(2, title="# Heading? - no", excerpt="- not a bullet. Second.", url="https://x.example/a b(c)<d>")
    md = render(make_digest([a, b]), "md")
    assert r"\*\[evil\](http://x)\* # 1. \<b\>" in md
    assert "[evil](http://x)" not in md and "<b>" not in md
    assert r"Co\_op\|\<i\>" in md
    assert "\n  1\\. Not a list item." in md  # a blurb line that would start an ordered list
    assert "\n  \\- not a bullet." in md
    assert r"[\# Heading? - no](https://x.example/a%20b%28c%29%3Cd%3E)" in md  # no raw ( ) < > in links


def test_html_escapes_feed_text() -> None:
    a = art(
        1,
        title=EVIL,
        source="Co<i>op",
        excerpt="<script>alert(1)</script> hi. Second.",
        url='https://x.example/"onmouseover=alert(1)',
    )
    html = render(make_digest([a]), "html")
    assert "*[evil](http://x)* # 1. &lt;b&gt;" in html
    assert "<b>" not in html and "<script>" not in html and "<i>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; hi. Second." in html
    assert 'href="https://x.example/&#34;onmouseover=alert(1)"' in html
    assert "Co&lt;i&gt;op" in html
    text = render(make_digest([a]), "text")
    assert EVIL in text and "<script>alert(1)</script> hi. Second." in text  # plain text: as written


def test_html_stays_under_100_kb_with_30_long_entries() -> None:
    title = ("Long titles & <odd> marks: " + "word " * 100)[:500]
    excerpt = " ".join(["A long sentence of feed text that goes on and on"] * 12) + ". " * 2
    articles = [
        art(i, hours=i + 1, title=f"{i} {title}"[:500], excerpt=excerpt, source=f"Company number {i % 7}")
        for i in range(40)
    ]
    d = make_digest(articles, base_url=BASE)
    html = render(d, "html", unsubscribe_url=f"{BASE}/digest/unsubscribe?address=a&token=b")
    assert d.shown == 30
    assert len(html.encode()) < MAX_HTML_BYTES
    assert html.count("font-weight:600;color:#0b5cad") == 30  # every entry is there, none dropped


def test_html_with_long_urls_still_renders() -> None:
    """8 KB URLs (parse.MAX_URL) would take the mail past 100 KB: the last entries go to the page."""
    articles = [art(i, url=f"https://x.example/{'a' * 8000}{i}") for i in range(30)]
    html = render(make_digest(articles), "html")
    assert len(html.encode()) < MAX_HTML_BYTES
    kept = html.count("https://x.example/")
    assert 5 < kept < 30 and f"{30 - kept} more on the page" in html


def test_an_empty_period_says_nothing_new() -> None:
    empty = Digest(END - timedelta(days=7), END, (), 0)
    for fmt in ("md", "html", "text"):
        out = render(empty, fmt)
        assert "Nothing new this week." in out
        assert "0 new articles." in out and "more on the page" not in out
    assert empty.to_json()["groups"] == [] and empty.more == 0


def test_unknown_format_is_refused() -> None:
    with pytest.raises(EngfeedError, match="unknown digest format 'pdf'"):
        render(make_digest([art(1)]), "pdf")


def test_unsubscribe_link_in_every_format() -> None:
    url = f"{BASE}/digest/unsubscribe?address=r%40x.example&token=abc"
    d = make_digest([art(1)])
    assert f"[Unsubscribe]({url}) from this digest." in render(d, "md", unsubscribe_url=url)
    assert f"Unsubscribe from this digest: {url}" in render(d, "text", unsubscribe_url=url)
    html = render(d, "html", unsubscribe_url=url)
    assert f'<a href="{url.replace("&", "&amp;")}"' in html
    for fmt in ("md", "html", "text"):
        assert "nsubscribe" not in render(d, fmt)


def test_week_and_period_words() -> None:
    d = Digest(datetime(2026, 12, 28, tzinfo=UTC), datetime(2027, 1, 4, tzinfo=UTC), (), 0)
    assert d.week == "2026-W53"  # 3 January 2027, the period's last day, is in 2026's 53rd ISO week
    assert d.period == "28 Dec 2026 – 3 Jan 2027"
    assert Digest(END - timedelta(days=7), END, (), 0).period == "27 Nov – 4 Dec 2026"


def test_period_words_are_in_the_servers_time_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    """Weeks start on the local Monday: their labels must be local dates too."""
    import time as clock

    try:
        for zone, start in (("Asia/Tokyo", datetime(2026, 11, 29, 15, tzinfo=UTC)),
                            ("America/Los_Angeles", datetime(2026, 11, 30, 8, tzinfo=UTC))):  # fmt: skip
            monkeypatch.setenv("TZ", zone)
            clock.tzset()
            d = Digest(start, start + timedelta(weeks=1), (), 0)
            assert d.period == "30 Nov – 6 Dec 2026", zone  # Monday to Sunday of ISO week 49
    finally:
        monkeypatch.undo()
        clock.tzset()


# -- the store's digest ----------------------------------------------------------------------------
def test_feed_digest_groups_by_angle_order_then_company(feed: Feed) -> None:
    d = feed.digest()
    assert d.total == NEW and d.shown == NEW and d.more == 0
    assert [g.title for g in d.groups] == ["systems performance", "benchmarking data", OTHER_GROUP]
    assert entry_titles(d) == [PERF, BENCH, *ACME, ZETA]  # Acme before Zeta, although Zeta is newest
    assert OLD not in entry_titles(d)
    assert feed.digest(days=30).total == NEW + 1
    assert feed.digest(end=datetime.now(UTC) - timedelta(days=200)).total == 0


def test_feed_digest_leaves_muted_out_and_keeps_saved_ones(feed: Feed) -> None:
    feed.add_mute("term", "hiring")
    d = feed.digest()
    assert HIRING not in entry_titles(d) and d.total == NEW - 1
    feed.add_mute("source", by_title(feed, ZETA).source)
    assert entry_titles(feed.digest()) == [PERF, BENCH, ACME[0], ACME[1], ACME[3]]

    oldest = by_title(feed, ACME[3])
    feed.save([oldest.uid])
    top = feed.digest(limit=1)
    assert entry_titles(top) == [ACME[3]] and top.groups[0].entries[0].article.saved
    assert (top.total, top.more) == (NEW - 2, NEW - 3)
    assert "★ saved" in render(top, "md")


def test_feed_digest_blurb_from_the_stored_summary(feed: Feed) -> None:
    zeta = by_title(feed, ZETA)
    before = {e.article.title: e.blurb for g in feed.digest().groups for e in g.entries}
    assert before[ZETA] == "The planner picks better joins. It is faster."
    assert zeta.id is not None
    overview = "The summary's first sentence. Its second sentence. A third one."
    feed.store.summaries.save(
        zeta.id, "hash", feed.summary_method(), json.dumps({"overview": overview}), now=datetime.now(UTC)
    )
    after = {e.article.title: e.blurb for g in feed.digest().groups for e in g.entries}
    assert after[ZETA] == "The summary's first sentence. Its second sentence."
    assert after[PERF] == before[PERF]  # the others keep their excerpt
    feed.store.summaries.save(
        zeta.id, "hash", "an-older-method", json.dumps({"overview": "Stale. Words."}), now=datetime.now(UTC)
    )
    assert {e.article.title: e.blurb for g in feed.digest().groups for e in g.entries}[ZETA] == before[ZETA]


# -- the digest command ------------------------------------------------------------------------------
def cli(capsys: pytest.CaptureFixture[str], db: str, *argv: str) -> tuple[int, str, str]:
    return run_cli(capsys, "--db", db, "--angles", ANGLES, "digest", *argv)


def one_line(err: str) -> str:
    assert err.endswith("\n") and err.count("\n") == 1, err
    return err


def test_cli_formats_to_stdout(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, md, err = cli(capsys, db)
    assert code == 0 and err == ""
    assert md.startswith("# Engineering Feed digest: ")
    assert md.index("## Systems performance") < md.index("## Benchmarking data") < md.index("## Also new")
    assert f"{NEW} new articles." in md and OLD not in md
    assert cli(capsys, db, "--format", "md")[1] == md
    code, html, _ = cli(capsys, db, "--format", "html")
    assert code == 0 and html.startswith("<!DOCTYPE html>") and PERF in html and "</html>" in html
    code, text, _ = cli(capsys, db, "--format", "text")
    assert code == 0 and "\nALSO NEW\n" in text and f"* {ZETA}\n" in text and "**" not in text


def test_cli_output_file(db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "digest.html"
    target.write_text("old", encoding="utf-8")
    code, out, err = cli(capsys, db, "--format", "html", "-o", str(target))
    assert code == 0 and out == ""
    assert one_line(err) == f"wrote the digest ({NEW} of {NEW} new articles) to {target}\n"
    assert target.read_text(encoding="utf-8") == cli(capsys, db, "--format", "html")[1]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temp file left


def test_cli_output_file_is_replaced_whole_or_not_at_all(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "digest.md"
    target.write_text("the previous digest", encoding="utf-8")

    def refuse(src: Any, dst: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)
    code, out, err = cli(capsys, db, "-o", str(target))
    assert code == 1 and out == ""
    assert one_line(err) == f"engfeed: error: cannot write {target}: No space left on device\n"
    assert target.read_text(encoding="utf-8") == "the previous digest"
    assert not (tmp_path / ".digest.md.tmp").exists()
    monkeypatch.undo()
    code, _, err = cli(capsys, db, "-o", str(tmp_path / "missing" / "d.md"))
    assert code == 1 and one_line(err).startswith("engfeed: error: cannot write ")


def test_cli_json_shape(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, db, "--json")
    assert code == 0
    data = json.loads(out)
    assert set(data) == {"title", "start", "end", "week", "total", "shown", "more", "groups"}
    assert data["title"].startswith("Engineering Feed digest: ")
    assert data["start"].endswith("Z") and data["end"].endswith("Z") and data["start"] < data["end"]
    assert re.fullmatch(r"\d{4}-W\d{2}", data["week"])
    assert (data["total"], data["shown"], data["more"]) == (NEW, NEW, 0)
    assert [g["title"] for g in data["groups"]] == ["systems performance", "benchmarking data", OTHER_GROUP]
    assert [g["angle"] for g in data["groups"]] == ["systems performance", "benchmarking data", None]
    entries = [e for g in data["groups"] for e in g["entries"]]
    assert [e["title"] for e in entries] == [PERF, BENCH, *ACME, ZETA]
    for e in entries:
        assert set(e) == {"id", "title", "url", "source", "published", "angle", "blurb", "saved"}
        assert e["url"].startswith("https://") and e["published"].endswith("Z") and e["saved"] is False
    first = entries[0]
    assert first["source"] == "Perf Co" and first["url"] == "https://perf.example/perf"
    assert first["angle"]["name"] == "systems performance" and "p99" in first["angle"]["terms"]
    assert first["blurb"].startswith("We cut p99 tail latency and raised throughput.")
    assert (
        entries[-1]["angle"] is None
        and entries[-1]["blurb"] == "The planner picks better joins. It is faster."
    )
    shown = json.loads(run_cli(capsys, "--db", db, "show", first["id"], "--json")[1])
    assert shown["title"] == PERF


def test_cli_more_than_30_links_to_the_page(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    now = datetime.now(UTC)
    paths = []
    for k in range(7):
        path = tmp_path / f"co{k}.xml"
        path.write_bytes(
            rss(5, title=f"Company {k}", site=f"https://co{k}.example", start=now - timedelta(hours=4 + k))
        )
        paths.append(str(path))
    assert run_cli(capsys, "--db", db, "--angles", ANGLES, "import", *paths)[0] == 0
    data = json.loads(cli(capsys, db, "--json")[1])
    assert (data["total"], data["shown"], data["more"]) == (NEW + 35, 30, NEW + 5)
    assert data["groups"][0]["title"] == "systems performance"  # the angled ones are always chosen
    monkeypatch.setenv("ENGFEED_BASE_URL", BASE + "/")
    text = cli(capsys, db, "--format", "text")[1]
    assert re.search(rf"\n{NEW + 5} more on the page: {re.escape(BASE)}/\?since=\d{{4}}-\d\d-\d\d\n", text)


@pytest.mark.parametrize("days", ["0", "91", "-1", "seven"])
def test_cli_days_out_of_range_is_a_usage_error(
    days: str, db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        cli(capsys, db, "--days", days)
    assert exc.value.code == 2
    assert "--days" in capsys.readouterr().err


def test_cli_days_bounds_are_accepted(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert json.loads(cli(capsys, db, "--days", "90", "--json")[1])["total"] == NEW + 1
    one = json.loads(cli(capsys, db, "--days", "1", "--json")[1])
    assert one["total"] == 4 and [e["title"] for g in one["groups"] for e in g["entries"]][-1] == ZETA


def test_cli_send_without_settings(
    db: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = cli(capsys, db, "--send")
    assert code == 2 and out == ""
    assert one_line(err).startswith(
        "engfeed: error: to send the digest, set ENGFEED_SMTP_URL and ENGFEED_DIGEST_TO"
    )
    monkeypatch.setenv("ENGFEED_SMTP_URL", f"smtp://bob:{PASSWORD}@127.0.0.1:1")
    code, _, err = cli(capsys, db, "--send")
    assert code == 2 and "ENGFEED_DIGEST_TO" in one_line(err) and PASSWORD not in err
    monkeypatch.delenv("ENGFEED_SMTP_URL")
    monkeypatch.setenv("ENGFEED_DIGEST_TO", READER)
    code, _, err = cli(capsys, db, "--send")
    assert code == 2 and "ENGFEED_SMTP_URL" in one_line(err)


GOOD_URL = f"smtp://bob:{PASSWORD}@mail.example:587?starttls=1"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"ENGFEED_SMTP_URL": f"http://bob:{PASSWORD}@mail.example"}, "ENGFEED_SMTP_URL must look like"),
        (
            {"ENGFEED_SMTP_URL": f"smtp://bob:{PASSWORD}@mail.example:notaport"},
            "ENGFEED_SMTP_URL is not a URL",
        ),
        ({"ENGFEED_SMTP_URL": f"smtp://bob:{PASSWORD}@:25"}, "ENGFEED_SMTP_URL must look like"),
        ({"ENGFEED_DIGEST_TO": f"{READER}, not-an-address"}, "ENGFEED_DIGEST_TO: not an e-mail address"),
        ({"ENGFEED_DIGEST_TO": "a@b@c"}, "ENGFEED_DIGEST_TO: not an e-mail address"),
        ({"ENGFEED_DIGEST_FROM": "me"}, "ENGFEED_DIGEST_FROM: not an e-mail address"),
        ({"ENGFEED_DIGEST_DAY": "someday"}, "ENGFEED_DIGEST_DAY: use mon..sun or 1-7"),
        ({"ENGFEED_DIGEST_DAY": "8"}, "ENGFEED_DIGEST_DAY: use mon..sun or 1-7"),
        ({"ENGFEED_DIGEST_HOUR": "24"}, "ENGFEED_DIGEST_HOUR: use 0-23"),
        ({"ENGFEED_DIGEST_HOUR": "-1"}, "ENGFEED_DIGEST_HOUR: use 0-23"),
        ({"ENGFEED_BASE_URL": "ftp://mail.example"}, "ENGFEED_BASE_URL must start with http"),
    ],
)
def test_cli_bad_settings_are_one_line_without_the_password(
    env: dict[str, str],
    expected: str,
    db: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ENGFEED_SMTP_URL", GOOD_URL)
    monkeypatch.setenv("ENGFEED_DIGEST_TO", READER)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code, out, err = cli(capsys, db, "--send")
    assert code == 2 and out == ""
    assert one_line(err).startswith(f"engfeed: error: {expected}")
    assert PASSWORD not in err
    with pytest.raises(ConfigError) as exc:
        digest_settings()
    assert PASSWORD not in str(exc.value)


def test_smtp_settings_parse_and_hide_the_password(monkeypatch: pytest.MonkeyPatch) -> None:
    s = smtp_settings(f"smtp://alice%40example.com:{PASSWORD}%40x@mail.example:2525?starttls=yes")
    assert (s.host, s.port, s.user, s.password, s.tls) == (
        "mail.example",
        2525,
        "alice@example.com",
        f"{PASSWORD}@x",
        "starttls",
    )
    assert s.display() == "smtp://alice@example.com@mail.example:2525"
    assert PASSWORD not in s.display() and PASSWORD not in repr(s)
    assert smtp_settings("smtp://mail.example").port == 25
    assert smtp_settings("smtp://mail.example?starttls=1").port == 587
    ssl = smtp_settings("smtps://u:p@mail.example")
    assert (ssl.port, ssl.tls, ssl.display()) == (465, "ssl", "smtps://u@mail.example:465")
    assert smtp_settings("smtp://127.0.0.1:2525").display() == "smtp://127.0.0.1:2525"

    monkeypatch.setenv("ENGFEED_SMTP_URL", f"smtp://alice%40example.com:{PASSWORD}@mail.example")
    monkeypatch.setenv("ENGFEED_DIGEST_TO", f" {READER} , {OTHER},")
    monkeypatch.setenv("ENGFEED_DIGEST_DAY", "Friday")
    monkeypatch.setenv("ENGFEED_BASE_URL", BASE + "/")
    s2 = digest_settings()
    assert s2.to == (READER, OTHER) and s2.can_send
    assert s2.sender == "alice@example.com"  # the login, when it is an address
    assert (s2.day, s2.hour, s2.base_url) == (5, 8, BASE)
    assert PASSWORD not in repr(s2)
    monkeypatch.setenv("ENGFEED_DIGEST_DAY", "7")
    monkeypatch.setenv("ENGFEED_DIGEST_HOUR", "0")
    monkeypatch.setenv("ENGFEED_DIGEST_FROM", "digest@example.com")
    assert (digest_settings().day, digest_settings().hour, digest_settings().sender) == (
        7,
        0,
        "digest@example.com",
    )
    monkeypatch.delenv("ENGFEED_SMTP_URL")
    assert not digest_settings().can_send and digest_settings().smtp is None


# -- SMTP on loopback ---------------------------------------------------------------------------------
@dataclass
class Collector:
    """An aiosmtpd handler that keeps every message and refuses the addresses in ``refuse``."""

    messages: list[bytes] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if address in self.refuse:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(bytes(envelope.content))
        return "250 Message accepted for delivery"

    def parsed(self) -> list[EmailMessage]:
        out = []
        for raw in self.messages:
            msg = email.message_from_bytes(raw, policy=email.policy.default)
            assert isinstance(msg, EmailMessage)
            out.append(msg)
        return out


@dataclass
class Server:
    handler: Collector
    port: int

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def settings(self, *to: str, day: int = 1, hour: int = 0, base_url: str = BASE) -> DigestSettings:
        smtp = SmtpSettings("127.0.0.1", self.port)
        return DigestSettings(smtp, to or (READER,), "engfeed@localhost", day, hour, base_url)


@pytest.fixture
def start_smtp(request: pytest.FixtureRequest) -> Callable[..., Server]:
    """Start an SMTP server on 127.0.0.1 (stopped when the test ends); kwargs go to aiosmtpd."""

    def start(**kwargs: Any) -> Server:
        handler = Collector()
        port = free_port()
        controller = Controller(handler, hostname="127.0.0.1", port=port, ready_timeout=5.0, **kwargs)
        controller.start()
        request.addfinalizer(controller.stop)
        return Server(handler, port)

    return start


@pytest.fixture
def smtp(start_smtp: Callable[..., Server], monkeypatch: pytest.MonkeyPatch) -> Server:
    server = start_smtp()
    monkeypatch.setenv("ENGFEED_SMTP_URL", server.url)
    monkeypatch.setenv("ENGFEED_DIGEST_TO", READER)
    monkeypatch.setenv("ENGFEED_BASE_URL", BASE)
    return server


def parts(msg: EmailMessage) -> tuple[str, str]:
    """The text and HTML parts of a digest mail (checking that it is built as it should be)."""
    assert msg.get_content_type() == "multipart/alternative"
    found = list(msg.iter_parts())
    assert [p.get_content_type() for p in found] == ["text/plain", "text/html"]
    text, html = (p.get_content() for p in found)
    assert isinstance(text, str) and isinstance(html, str)
    return text, html


def unsubscribe_links(msg: EmailMessage) -> list[str]:
    return re.findall(r"<([^>]+)>", str(msg["List-Unsubscribe"]))


def test_cli_send_delivers_one_multipart_message(
    db: str, feed: Feed, smtp: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    feed.add_mute("term", "hiring")
    code, out, err = cli(capsys, db, "--send")
    assert (code, err) == (0, "")
    assert out == f"sent the digest of {NEW - 1} articles to {READER}\n"
    (msg,) = smtp.handler.parsed()

    assert "Engineering Feed digest" in msg["Subject"] and f"({NEW - 1} new)" in msg["Subject"]
    assert msg["To"] == READER and msg["From"] == "Engineering Feed <engfeed@localhost>"
    assert msg["Date"] and msg["Message-ID"] and msg["Auto-Submitted"] == "auto-generated"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    web, mailto = unsubscribe_links(msg)
    assert web.startswith(f"{BASE}/digest/unsubscribe?")
    assert mailto == "mailto:engfeed@localhost?subject=unsubscribe"
    query = parse_qs(urlsplit(web).query)
    assert query["address"] == [READER] and re.fullmatch(r"[0-9a-f]{32}", query["token"][0])

    text, html = parts(msg)
    for title in (PERF, BENCH, ACME[0], ACME[1], ACME[3], ZETA):
        assert title in text and title in html
    assert HIRING not in text and HIRING not in html and "Hiring" not in text + html
    assert OLD not in text and OLD not in html
    assert f"Unsubscribe from this digest: {web}" in text
    assert f'href="{web.replace("&", "&amp;")}"' in html and web in unescape(html)
    assert html.index(PERF) < html.index(BENCH) < html.index(ACME[0]) < html.index(ZETA)

    code, out, _ = cli(capsys, db, "--send")
    assert code == 0 and out.startswith("not sent: already sent this week (")
    assert "--force sends it again" in out
    code, out, _ = cli(capsys, db, "--send", "--json")
    report = json.loads(out)
    assert code == 0 and report["status"] == "skipped" and report["recipients"] == []
    first = feed.last_digest_send()
    assert first is not None and report["week"] == first.week and first.articles == NEW - 1
    assert len(smtp.handler.messages) == 1

    code, out, _ = cli(capsys, db, "--send", "--force", "--json")
    report = json.loads(out)
    assert code == 0 and report["status"] == "sent" and report["recipients"] == [READER]
    assert report["articles"] == NEW - 1 and report["message"] == ""
    assert len(smtp.handler.messages) == 2
    last = feed.last_digest_send()
    assert last is not None and last.articles == NEW - 1 and last.recipient == READER


def test_no_base_url_means_mailto_only(feed: Feed, smtp: Server) -> None:
    report = feed.send_digest(smtp.settings(base_url=""))
    assert report.status == "sent"
    (msg,) = smtp.handler.parsed()
    assert unsubscribe_links(msg) == ["mailto:engfeed@localhost?subject=unsubscribe"]
    assert msg["List-Unsubscribe-Post"] is None
    text, html = parts(msg)
    assert "nsubscribe" not in text and "nsubscribe" not in html


def test_nothing_new_is_not_sent_and_does_not_claim_the_week(
    tmp_path: Path, smtp: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "empty.db")
    code, out, _ = cli(capsys, db, "--send")
    assert code == 0 and out == "not sent: nothing new in the last 7 days: not sent\n"
    report = json.loads(cli(capsys, db, "--send", "--json")[1])
    assert report["status"] == "empty" and report["recipients"] == [] and report["articles"] == 0
    assert smtp.handler.messages == []
    feed = open_feed(db)
    try:
        assert feed.store.digests.sent(report["week"]) is None and feed.last_digest_send() is None
        feed.import_paths(write_corpus(tmp_path, datetime.now(UTC)))
    finally:
        feed.close()
    report = json.loads(cli(capsys, db, "--send", "--json")[1])
    assert report["status"] == "sent" and report["articles"] == NEW  # the same week, now with news
    assert len(smtp.handler.messages) == 1


def test_an_unreachable_server_fails_cleanly_and_keeps_the_week_open(
    db: str,
    feed: Feed,
    start_smtp: Callable[..., Server],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    closed = free_port()  # nothing listens there
    monkeypatch.setenv("ENGFEED_SMTP_URL", f"smtp://bob:{PASSWORD}@127.0.0.1:{closed}")
    monkeypatch.setenv("ENGFEED_DIGEST_TO", READER)
    code, out, err = cli(capsys, db, "--send")
    assert code == 1 and out == ""
    assert one_line(err).startswith(
        f"engfeed: error: cannot reach the mail server smtp://bob@127.0.0.1:{closed}: "
    )
    assert PASSWORD not in err

    settings = Server(Collector(), closed).settings()
    with pytest.raises(DigestError, match=f"cannot reach the mail server smtp://127.0.0.1:{closed}"):
        feed.send_digest(settings)
    assert feed.last_digest_send() is None  # the claim was released

    server = start_smtp()
    report = feed.send_digest(server.settings())
    assert report.status == "sent" and len(server.handler.messages) == 1


def test_tls_that_the_server_cannot_do_fails_cleanly(feed: Feed, smtp: Server) -> None:
    """The loopback server speaks plain SMTP only: STARTTLS is refused, smtps:// finds no TLS."""
    for url, expected in (
        (f"smtp://127.0.0.1:{smtp.port}?starttls=1", f"the mail server smtp://127.0.0.1:{smtp.port} refused"),
        (f"smtps://127.0.0.1:{smtp.port}", f"cannot reach the mail server smtps://127.0.0.1:{smtp.port}: "),
    ):
        settings = DigestSettings(smtp_settings(url), (READER,), "engfeed@localhost", 1, 0, BASE)
        with pytest.raises(DigestError) as exc:
            feed.send_digest(settings)
        assert str(exc.value).startswith(expected) and "\n" not in str(exc.value)
        assert feed.last_digest_send() is None
    assert smtp.handler.messages == []
    assert feed.send_digest(smtp.settings()).status == "sent"


def test_a_failed_forced_resend_keeps_the_weeks_first_send(feed: Feed, smtp: Server) -> None:
    now = datetime.now(UTC)
    assert feed.send_digest(smtp.settings(), now=now).status == "sent"
    closed = Server(Collector(), free_port()).settings()
    with pytest.raises(DigestError):
        feed.send_digest(closed, force=True, now=now)
    assert feed.send_digest_if_due(smtp.settings(day=1, hour=0), now=now) is None
    assert len(smtp.handler.messages) == 1


def test_a_refused_recipient_does_not_stop_the_others(feed: Feed, smtp: Server) -> None:
    smtp.handler.refuse.add(OTHER)
    report = feed.send_digest(smtp.settings(OTHER, READER))
    assert report.status == "sent" and report.recipients == (READER,)
    assert f"refused the recipient {OTHER}" in report.message
    assert [m["To"] for m in smtp.handler.parsed()] == [READER]
    assert feed.send_digest(smtp.settings(OTHER, READER)).status == "skipped"  # the week is taken

    smtp.handler.refuse.add(READER)
    with pytest.raises(DigestError, match="refused the recipient"):
        feed.send_digest(smtp.settings(OTHER, READER), force=True)


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
@pytest.mark.filterwarnings("ignore:Session.login_data is deprecated")
def test_smtp_login(feed: Feed, start_smtp: Callable[..., Server]) -> None:
    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"bob", PASSWORD.encode())
        return AuthResult(success=ok, handled=False)  # handled=False: answer 535

    server = start_smtp(authenticator=authenticator, auth_require_tls=False, auth_required=True)
    good = smtp_settings(f"smtp://bob:{PASSWORD}@127.0.0.1:{server.port}")
    assert good.user == "bob" and good.password == PASSWORD and PASSWORD not in good.display()
    settings = DigestSettings(good, (READER,), "bob@example.com", 1, 0, BASE)
    bad = DigestSettings(
        smtp_settings(f"smtp://bob:wrong-pw@127.0.0.1:{server.port}"), (READER,), "b@x.y", 1, 0, ""
    )
    with pytest.raises(DigestError) as exc:
        feed.send_digest(bad)
    assert str(exc.value) == f"the mail server smtp://bob@127.0.0.1:{server.port} refused the login"
    assert feed.last_digest_send() is None and server.handler.messages == []

    anonymous = DigestSettings(SmtpSettings("127.0.0.1", server.port), (READER,), "b@x.y", 1, 0, "")
    with pytest.raises(DigestError, match="refused the digest"):
        feed.send_digest(anonymous)  # the server asks for a login

    assert feed.send_digest(settings).status == "sent"
    (msg,) = server.handler.parsed()
    assert msg["From"] == "Engineering Feed <bob@example.com>"


# -- the schedule and unsubscribing ------------------------------------------------------------------
def local(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    """An aware datetime at this wall-clock time in the local time zone (the schedule's)."""
    return datetime(year, month, day, hour, minute).astimezone()


@pytest.fixture
def dated(tmp_path: Path) -> Iterator[Feed]:
    """A store with one article a day at 06:00 UTC from 2 to 25 November 2026 (ISO weeks 45 to 48);
    "(part i)" is published i days before the 25th."""
    path = tmp_path / "feed.xml"
    path.write_bytes(rss(24, start=datetime(2026, 11, 25, 6, tzinfo=UTC)))
    f = open_feed(tmp_path / "dated.db")
    f.import_paths([path])
    yield f
    f.close()


def test_the_weekly_schedule(dated: Feed, smtp: Server) -> None:
    settings = smtp.settings(day=3, hour=9)  # Wednesdays from 09:00
    assert dated.send_digest_if_due(settings, now=local(2026, 11, 2, 10)) is None  # Monday
    assert dated.send_digest_if_due(settings, now=local(2026, 11, 4, 8, 59)) is None  # Wednesday, early
    assert smtp.handler.messages == []

    report = dated.send_digest_if_due(settings, now=local(2026, 11, 4, 9))
    assert report is not None and report.status == "sent" and report.recipients == (READER,)
    assert report.week == "2026-W45" and report.articles > 0
    assert len(smtp.handler.messages) == 1
    assert dated.send_digest_if_due(settings, now=local(2026, 11, 4, 9, 10)) is None
    assert dated.send_digest_if_due(settings, now=local(2026, 11, 8, 23, 59)) is None  # Sunday
    assert dated.send_digest_if_due(settings, now=local(2026, 11, 9, 10)) is None  # next Monday
    assert len(smtp.handler.messages) == 1

    report = dated.send_digest_if_due(settings, now=local(2026, 11, 11, 9, 30))
    assert report is not None and report.status == "sent" and report.week == "2026-W46"
    assert dated.send_digest_if_due(settings, now=local(2026, 11, 12, 9)) is None
    assert len(smtp.handler.messages) == 2
    first, second = smtp.handler.parsed()
    assert "(part 23)" in parts(first)[0] and "(part 23)" not in parts(second)[0]  # each its own week
    assert "(part 14)" not in parts(first)[0] and "(part 14)" in parts(second)[0]
    assert "(part 13)" not in parts(first)[0] + parts(second)[0]  # published after the second send

    unconfigured = DigestSettings(None, (READER,), "engfeed@localhost", 1, 0, "")
    assert dated.send_digest_if_due(unconfigured, now=local(2026, 11, 18, 9)) is None
    with pytest.raises(ConfigError, match="ENGFEED_SMTP_URL and ENGFEED_DIGEST_TO"):
        dated.send_digest(unconfigured)


def test_due_and_weeks() -> None:
    assert not digest_mod.due(local(2026, 11, 2, 23), day=2, hour=0)
    assert digest_mod.due(local(2026, 11, 3, 0), day=2, hour=0)
    assert digest_mod.due(local(2026, 11, 8, 23), day=7, hour=23)
    assert not digest_mod.due(local(2026, 11, 8, 22), day=7, hour=23)
    assert digest_mod.week_of(local(2026, 11, 9, 0)) == "2026-W46"
    assert digest_mod.week_start(local(2026, 11, 11, 15, 30)) == local(2026, 11, 9)


def test_an_empty_scheduled_week_is_tried_again(dated: Feed, smtp: Server) -> None:
    settings = smtp.settings(day=1, hour=0)
    report = dated.send_digest_if_due(settings, now=local(2026, 12, 30, 9))
    assert report is not None and report.status == "empty" and smtp.handler.messages == []
    assert dated.send_digest_if_due(settings, now=local(2026, 12, 30, 9, 10)) is not None  # not claimed


def test_unsubscribe_link_and_scheduled_sends(dated: Feed, smtp: Server) -> None:
    both = smtp.settings(READER, OTHER)
    now = local(2026, 11, 4, 9)
    assert dated.send_digest(both, now=now).recipients == (READER, OTHER)
    mails = {m["To"]: m for m in smtp.handler.parsed()}
    web, _ = unsubscribe_links(mails[READER])
    query = parse_qs(urlsplit(web).query)
    address, token = query["address"][0], query["token"][0]
    assert address == READER and web == dated.unsubscribe_url(BASE, READER)
    assert unsubscribe_links(mails[OTHER])[0] != web  # each address has its own link

    assert not dated.unsubscribe(READER, "0" * 32)
    assert not dated.unsubscribe(OTHER, token)  # the token is the address's own
    assert not dated.unsubscribe("", token) and not dated.unsubscribe("x" * 400, token)
    assert dated.store.digests.unsubscribed(READER) is None
    assert dated.unsubscribe(address, token)
    assert dated.store.digests.unsubscribed(READER) is not None
    assert dated.unsubscribe(READER.upper(), token)  # addresses are compared without case

    scheduled = dated.send_digest(both, scheduled=True, force=True, now=now)
    assert scheduled.status == "sent" and scheduled.recipients == (OTHER,)
    assert [m["To"] for m in smtp.handler.parsed()[2:]] == [OTHER]
    nxt = dated.send_digest_if_due(both, now=local(2026, 11, 11, 9))
    assert nxt is not None and nxt.recipients == (OTHER,)

    only = smtp.settings(READER)
    later = dated.send_digest_if_due(only, now=local(2026, 11, 18, 9))
    assert later is not None and later.status == "skipped" and "unsubscribed" in later.message
    assert dated.send_digest(only, scheduled=True, now=local(2026, 11, 18, 9)).status == "skipped"
    assert len(smtp.handler.messages) == 4

    manual = dated.send_digest(only, now=local(2026, 11, 18, 9))  # asked for by hand: re-subscribes
    assert manual.status == "sent" and manual.recipients == (READER,)
    assert dated.store.digests.unsubscribed(READER) is None
    again = dated.send_digest_if_due(only, now=local(2026, 11, 25, 9))
    assert again is not None and again.recipients == (READER,)
    assert len(smtp.handler.messages) == 6


def test_unsubscribe_tokens_survive_reopening(dated: Feed, tmp_path: Path) -> None:
    url = dated.unsubscribe_url(BASE, READER)
    assert dated.unsubscribe_url("", READER) == ""
    reopened = open_feed(tmp_path / "dated.db")
    try:
        assert reopened.unsubscribe_url(BASE, READER) == url  # the secret is stored, not per process
    finally:
        reopened.close()


# -- serve's weekly send ---------------------------------------------------------------------------------
def test_digest_mailer_is_off_without_mail_settings(feed: Feed, monkeypatch: pytest.MonkeyPatch) -> None:
    assert digest_mailer(feed, base_url=BASE, interval_s=600) is None
    monkeypatch.setenv("ENGFEED_SMTP_URL", "smtp://127.0.0.1:2525")
    assert digest_mailer(feed, base_url=BASE, interval_s=600) is None  # nobody to send to
    monkeypatch.setenv("ENGFEED_DIGEST_TO", READER)
    monkeypatch.setenv("ENGFEED_DIGEST_HOUR", "25")
    assert digest_mailer(feed, base_url=BASE, interval_s=600) is None  # a bad setting: logged, off


def test_digest_mailer_sends_when_due(feed: Feed, smtp: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ENGFEED_BASE_URL")
    monkeypatch.setenv("ENGFEED_DIGEST_DAY", "1")
    monkeypatch.setenv("ENGFEED_DIGEST_HOUR", "0")  # always due
    mailer = digest_mailer(feed, base_url="http://engfeed.test:8000/", interval_s=600)
    assert isinstance(mailer, Refresher)
    assert mailer.interval_s == 600 and mailer.jitter_s == 0 and mailer.initial_delay_s == 60
    assert mailer.job(True) == "digest sent"
    assert mailer.job(True) == "digest not due"  # sent this week
    (msg,) = smtp.handler.parsed()
    assert unsubscribe_links(msg)[0].startswith("http://engfeed.test:8000/digest/unsubscribe?address=")


# -- hardening found in review ----------------------------------------------------------------------
def test_any_failure_while_sending_leaves_the_week_free(
    feed: Feed, smtp: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not only a DigestError: whatever stops the send (here a bug), the week is not claimed."""

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr("engfeed.feed.send_mail", broken)
    with pytest.raises(RuntimeError):
        feed.send_digest(smtp.settings())
    assert feed.last_digest_send() is None
    monkeypatch.undo()
    assert feed.send_digest(smtp.settings()).status == "sent"


def test_a_password_smtplib_cannot_encode_is_a_clear_error(feed: Feed, smtp: Server) -> None:
    settings = smtp.settings()
    assert settings.smtp is not None
    odd = replace(settings, smtp=replace(settings.smtp, user="lé", password="pässwörd"))
    with pytest.raises(DigestError) as err:
        feed.send_digest(odd)
    assert "pässwörd" not in str(err.value)
    assert feed.last_digest_send() is None


def test_unsubscribe_tokens_outside_ascii_are_refused_not_an_error(feed: Feed) -> None:
    assert feed.unsubscribe("reader@example.com", "é" * 32) is False
    assert feed.unsubscribe("reader@example.com", "\udce9") is False


def test_an_article_without_a_web_address_links_to_its_page_here() -> None:
    odd = art(1, url="ftp://files.example/post")
    d = make_digest([odd], base_url=BASE)
    entry = d.groups[0].entries[0]
    assert d.link(entry) == f"{BASE}/a/{odd.uid}"
    assert f'href="{BASE}/a/{odd.uid}"' in render(d, "html") and "ftp://" not in render(d, "html")
    bare = make_digest([odd])
    assert bare.link(bare.groups[0].entries[0]) == ""
    assert "[" not in render(bare, "md").split("\n- ", 1)[1].split("\n", 1)[0].replace("\\[", "")
