"""parse_feed: fixtures of shapes seen in the wild, hostile documents, and the shared corpus."""

from __future__ import annotations

import io
import json
import random
import re
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

import feedparser
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engfeed.errors import EngfeedError
from engfeed.models import Article, ParsedFeed
from engfeed.parse import ParseError, parse_feed
from engfeed.urls import article_uid, canonical_url, dedup_key

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
UID = re.compile(r"[0-9a-f]{16}")


def load(fixtures_dir: Path, name: str) -> bytes:
    return (fixtures_dir / "feeds" / name).read_bytes()


def parse_fixture(fixtures_dir: Path, name: str, **kwargs: object) -> ParsedFeed:
    return parse_feed(load(fixtures_dir, name), now=NOW, source="Example", **kwargs)  # type: ignore[arg-type]


def by_title(feed: ParsedFeed) -> dict[str, Article]:
    return {a.title: a for a in feed.articles}


def check_invariants(feed: ParsedFeed, now: datetime = NOW) -> None:
    """What every article of every feed must satisfy."""
    for article in feed.articles:
        assert UID.fullmatch(article.uid), article
        assert article.url == "" or article.url.startswith(("http://", "https://"))
        assert article.published.tzinfo is not None and article.published.utcoffset() == timedelta(0)
        assert article.published <= now + timedelta(days=1)
        assert article.updated is None or article.updated.utcoffset() == timedelta(0)
        assert len(article.excerpt) <= 300
        assert article.first_seen == now
        for html in (article.summary_html, article.content_html):
            lowered = html.lower()
            assert "<script" not in lowered and "javascript:" not in lowered and " onerror=" not in lowered
    assert len({a.uid for a in feed.articles}) == len(feed.articles)


# --------------------------------------------------------------------------- RSS 2.0 (WordPress)


def test_wordpress_rss(fixtures_dir: Path) -> None:
    feed = parse_fixture(fixtures_dir, "wordpress-rss2.xml")
    check_invariants(feed)
    assert feed.title == "Example Engineering"
    assert feed.link == "https://eng.example.org/"
    assert feed.format == "rss20"
    assert feed.warning is None
    assert [a.title for a in feed.articles] == [
        "Sharding the job queue without downtime",
        "Postmortem: the Tuesday cache stampede – what went wrong",
    ]
    first, second = feed.articles
    assert first.url == "https://eng.example.org/2026/03/sharding-the-job-queue/"  # utm_* gone
    assert first.uid == article_uid(dedup_key(first.url))
    assert first.source == "Example"
    assert first.author == "Dana Whitfield"
    assert first.tags == ("Infrastructure", "queues", "Postgres")  # deduplicated, stripped
    assert first.guid == "https://eng.example.org/?p=4711"
    assert first.published == datetime(2026, 3, 3, 14, 30, tzinfo=UTC)  # +0200 converted to UTC
    assert not first.date_estimated
    # the excerpt comes from the description, boilerplate stripped, truncation marked
    assert first.excerpt.startswith("Our job queue outgrew a single Postgres primary last winter.")
    assert first.excerpt.endswith("differently next time…")
    assert "appeared first on" not in first.excerpt and "[" not in first.excerpt
    # the text comes from content:encoded
    assert "Lock contention on the jobs table reached 40 % of query time." in first.text
    assert "appeared first on" not in first.text
    assert "owned" not in first.text and "color: red" not in first.text and "video fallback" not in first.text
    # content sanitized
    html = first.content_html
    assert (
        '<a href="https://example.com/design-doc" rel="noopener noreferrer nofollow">design doc</a>' in html
    )
    assert '<img src="https://eng.example.org/wp-content/uploads/queue.png" alt="queue depth chart">' in html
    assert "<script" not in html and "onclick" not in html and "<iframe" not in html and "srcset" not in html
    assert "<h2>Why shard at all</h2>" in html
    assert second.excerpt == "A single expired key took the checkout service down for eleven minutes."


# --------------------------------------------------------------------------- Medium


def test_medium_rss(fixtures_dir: Path) -> None:
    feed = parse_fixture(fixtures_dir, "medium-rss.xml")
    check_invariants(feed)
    assert feed.link == "https://techblog.example.com/"
    first = feed.articles[0]
    assert (
        first.url
        == "https://techblog.example.com/moving-petabytes-between-regions-with-a-data-mesh-3fa1b2c3d4e5"
    )
    assert first.uid == article_uid("medium:3fa1b2c3d4e5")
    assert first.guid == "https://medium.com/p/3fa1b2c3d4e5"
    assert first.author == "Example Technology Blog"
    assert first.tags == ("data-mesh", "streaming")
    # no description in Medium feeds: the excerpt comes from content:encoded
    assert first.excerpt.startswith("By Someone and a team of four")
    assert "originally published" not in first.excerpt and "originally published" not in first.text
    assert "Most of our studio data now moves through a single pipeline abstraction." in first.text


def test_medium_post_has_same_uid_on_custom_domain_and_medium_com(fixtures_dir: Path) -> None:
    custom = parse_fixture(fixtures_dir, "medium-rss.xml")
    on_medium = parse_fixture(fixtures_dir, "medium-dot-com-rss.xml")
    assert custom.articles[0].url != on_medium.articles[0].url
    assert custom.articles[0].uid == on_medium.articles[0].uid


# --------------------------------------------------------------------------- Atom


def test_atom_xhtml_with_xml_base(fixtures_dir: Path) -> None:
    feed = parse_fixture(fixtures_dir, "atom-xhtml.atom")
    check_invariants(feed)
    assert feed.format == "atom10"
    assert feed.link == "https://blog.example.net/engineering/"  # relative alternate link resolved
    post = feed.articles[0]
    assert post.url == "https://blog.example.net/engineering/posts/faster-builds/"
    assert post.title == "Faster builds with remote caching & friends"  # type="html" title to text
    assert post.author == "Mira Castellanos"
    assert post.tags == ("build-systems", "ci")
    assert post.published == datetime(2026, 1, 14, 14, 30, tzinfo=UTC)
    assert post.updated == datetime(2026, 1, 15, 7, 0, tzinfo=UTC)
    assert post.guid == "tag:blog.example.net,2026:post-42"
    # relative URLs inside the xhtml content resolve against the content's own xml:base
    assert (
        'src="https://blog.example.net/engineering/posts/faster-builds/img/cache-hits.png"'
        in post.content_html
    )
    assert 'href="https://blog.example.net/engineering/posts/flaky-tests/"' in post.content_html
    assert "<strong>19</strong>" in post.content_html and "<pre><code>bazel build" in post.content_html
    assert post.excerpt == "Remote caching cut our median CI time from 19 to 6 minutes."
    assert post.text.startswith("Remote caching cut our median CI time from 19 to 6 minutes. See also")


def test_atom_updated_only_and_plain_text_content(fixtures_dir: Path) -> None:
    post = parse_fixture(fixtures_dir, "atom-xhtml.atom").articles[1]
    assert post.published == datetime(2025, 12, 1, 12, 0, tzinfo=UTC)  # updated stands in for published
    assert not post.date_estimated
    assert post.content_html == (
        "<p>Plain text body with &lt;angle brackets&gt; that are not markup.</p><p>Second paragraph.</p>"
    )
    assert post.text == "Plain text body with <angle brackets> that are not markup. Second paragraph."


# --------------------------------------------------------------------------- RSS 1.0


def test_rss10_rdf(fixtures_dir: Path) -> None:
    feed = parse_fixture(fixtures_dir, "rss1-rdf.rdf")
    check_invariants(feed)
    assert feed.format == "rss10"
    assert feed.title == "Old School Engineering"
    raid, hadoop = feed.articles
    assert raid.url == "http://old.example.com/2009/01/raid-controllers.html"
    assert raid.published == datetime(2009, 1, 22, 0, 42, 28, tzinfo=UTC)
    assert raid.author == "pat"
    assert raid.tags == ("hardware",)
    assert hadoop.excerpt == "Shutdown hooks run in an order nobody promised."


# --------------------------------------------------------------------------- JSON Feed


def test_json_feed_11(fixtures_dir: Path) -> None:
    feed = parse_fixture(fixtures_dir, "jsonfeed-1.1.json")
    check_invariants(feed)
    assert feed.format == "json"
    assert feed.title == "Example & Co Engineering"
    assert feed.link == "https://json.example.io/"
    assert len(feed.articles) == 4  # the string "not an item" is skipped
    vector, plain, note, linked = feed.articles
    assert vector.url == "https://json.example.io/posts/vector-search"
    assert vector.author == "Lee Ann Moreau"
    assert vector.tags == ("search", "vectors")
    assert vector.published == datetime(2026, 4, 1, 10, 0, tzinfo=UTC)
    assert vector.updated == datetime(2026, 4, 2, 8, 0, tzinfo=UTC)
    assert vector.excerpt == "How far brute force goes before you need an index."
    assert vector.text == "We index a million vectors in under a minute."
    assert 'src="https://json.example.io/img/recall.png"' in vector.content_html
    assert "<script" not in vector.content_html
    assert plain.url == "https://json.example.io/posts/plain-text"  # relative to home_page_url
    assert plain.date_estimated and plain.published == NOW
    assert plain.author == "The Platform Team"  # the feed's author
    assert "&lt;text&gt; &amp; symbols" in plain.content_html
    assert plain.text == "No markup here, just <text> & symbols. And a second paragraph."
    assert note.url == "" and note.guid == "3" and UID.fullmatch(note.uid)
    assert linked.url == "https://elsewhere.example.org/linked-article"  # external_url as a fallback


def test_json_feed_10(fixtures_dir: Path) -> None:
    feed = parse_fixture(fixtures_dir, "jsonfeed-1.0.json")
    (post,) = feed.articles
    assert post.author == "Solo Writer"
    assert post.published == datetime(2020, 5, 17, 17, 0, tzinfo=UTC)
    assert post.text == "Hello from JSON Feed 1.0."


def test_json_feed_detection(fixtures_dir: Path) -> None:
    data = load(fixtures_dir, "jsonfeed-1.0.json")
    assert parse_feed(b"\xef\xbb\xbf \n" + data, now=NOW).format == "json"  # BOM and whitespace
    assert parse_feed(data.decode().encode("utf-16"), now=NOW).format == "json"
    # an XML body served with a JSON content type is still XML
    xml = load(fixtures_dir, "rss1-rdf.rdf")
    assert parse_feed(xml, headers={"Content-Type": "application/feed+json"}, now=NOW).format == "rss10"


@pytest.mark.parametrize(
    "body",
    [
        b'{"version": "https://jsonfeed.org/version/1.1", "title": "no items"}',
        b'{"items": [{"id": "1"}]}',  # no JSON Feed version
        b'{"hello": "world"}',
        b'{"version": "https://jsonfeed.org/version/1", "items": ',  # truncated
        b"{" * 100_000,  # nesting bomb
        b'{"version": "https://jsonfeed.org/version/1", "items": [], "n": 1' + b"1" * 10_000 + b"}",
    ],
)
def test_json_that_is_not_a_feed(body: bytes) -> None:
    with pytest.raises(ParseError, match="not a feed"):
        parse_feed(body, now=NOW)


# --------------------------------------------------------------------------- encodings


def test_declared_utf8_but_windows_1252(fixtures_dir: Path) -> None:
    feed = parse_fixture(fixtures_dir, "declares-utf8-is-cp1252.xml")
    (post,) = feed.articles
    assert feed.title == "Café engineering"
    assert post.title == "Naïve “quotes” and cafés"
    assert post.excerpt == "Crème brûlée – déjà vu’s"
    assert feed.warning is not None and "windows-1252" in feed.warning


def test_declared_latin1_but_utf8(fixtures_dir: Path) -> None:
    post = parse_fixture(fixtures_dir, "declares-latin1-is-utf8.xml").articles[0]
    assert post.title == "Naïve “quotes” and cafés"
    assert post.excerpt == "Crème brûlée – déjà vu’s"


def test_http_charset_and_text_xml_without_charset(fixtures_dir: Path) -> None:
    body = load(fixtures_dir, "wordpress-rss2.xml").replace(b"Sharding", "Shärding".encode())
    feed = parse_feed(body, headers={"Content-Type": "text/xml"}, now=NOW)
    # RFC 7303: no charset parameter means the XML declaration decides (not US-ASCII)
    assert feed.articles[0].title.startswith("Shärding")
    assert feed.warning is None
    latin = body.decode("utf-8").replace('encoding="UTF-8"', "").encode("latin-1")
    feed = parse_feed(latin, headers={"content-type": "application/rss+xml; charset=ISO-8859-1"}, now=NOW)
    assert feed.articles[0].title.startswith("Shärding")


def test_utf16_document(fixtures_dir: Path) -> None:
    body = load(fixtures_dir, "rss1-rdf.rdf").decode().replace('encoding="utf-8"', 'encoding="utf-16"')
    feed = parse_feed(body.encode("utf-16"), now=NOW)
    assert [a.title for a in feed.articles] == [
        "RAID controllers lie about write caches",
        "Graceful shutdown and the JVM",
    ]


def test_mojibake_in_correctly_encoded_feed_is_repaired() -> None:
    body = (
        '<rss version="2.0"><channel><title>t</title><item><title>We canâ€™t wait</title>'
        "<link>https://m.example.com/a</link>"
        "<description>Itâ€™s here â€“ finally. Real “quotes” stay.</description>"
        "</item></channel></rss>"
    ).encode()
    post = parse_feed(body, now=NOW).articles[0]
    assert post.title == "We can’t wait"
    assert post.excerpt == "It’s here – finally. Real “quotes” stay."


# --------------------------------------------------------------------------- links and dates


def test_relative_links_resolve_against_fetch_url(fixtures_dir: Path) -> None:
    feed = parse_fixture(fixtures_dir, "relative-links.xml", url="https://blog.example.com/feed/")
    check_invariants(feed)
    assert feed.link == "https://blog.example.com/"
    root, doc = feed.articles
    # entry links resolve against the channel link (itself resolved against the fetch URL)
    assert root.url == "https://blog.example.com/blog/root-relative/"
    assert doc.url == "https://blog.example.com/posts/doc-relative.html"  # fragment dropped
    # links inside a body resolve against the article's page
    assert 'href="https://blog.example.com/docs/setup"' in root.summary_html
    assert 'src="https://blog.example.com/blog/root-relative/images/diagram.png"' in root.summary_html
    assert feed.warning is None


def test_relative_links_without_channel_link_resolve_against_fetch_url() -> None:
    body = (
        b'<rss version="2.0"><channel><title>t</title>'
        b"<item><title>a</title><link>posts/a.html</link></item></channel></rss>"
    )
    feed = parse_feed(body, url="https://blog.example.com/feed/", now=NOW)
    assert feed.link == "https://blog.example.com/feed/"
    assert feed.articles[0].url == "https://blog.example.com/feed/posts/a.html"
    moved = parse_feed(
        body, url="https://blog.example.com/feed/", headers={"Content-Location": "/v2/"}, now=NOW
    )
    assert moved.articles[0].url == "https://blog.example.com/v2/posts/a.html"


def test_relative_links_without_any_base(fixtures_dir: Path) -> None:
    feed = parse_fixture(fixtures_dir, "relative-links.xml")
    check_invariants(feed)
    assert [a.url for a in feed.articles] == ["", ""]  # nothing to resolve against: no bogus links
    assert len({a.uid for a in feed.articles}) == 2
    assert "href" not in feed.articles[0].summary_html  # a relative href would point at our own site


def test_dates(fixtures_dir: Path) -> None:
    feed = parse_fixture(fixtures_dir, "dates.xml")
    check_invariants(feed)
    posts = by_title(feed)
    for title in ("No date at all", "Unparseable date", "Far future", "Epoch zero"):
        assert posts[title].published == NOW, title
        assert posts[title].date_estimated, title
        assert posts[title].first_seen == NOW
    assert posts["Offset date"].published == datetime(2026, 3, 4, 7, 30, tzinfo=UTC)
    assert not posts["Offset date"].date_estimated
    # a few hours ahead of "now" is clock skew, not a bogus date
    assert posts["Within clock skew"].published == datetime(2026, 11, 22, 18, 0, tzinfo=UTC)
    assert not posts["Within clock skew"].date_estimated


def test_default_now_is_current_utc_time(fixtures_dir: Path) -> None:
    before = datetime.now(UTC)
    feed = parse_feed(load(fixtures_dir, "dates.xml"))
    post = by_title(feed)["No date at all"]
    assert post.first_seen is not None and before <= post.first_seen <= datetime.now(UTC)
    assert post.published == post.first_seen


def test_duplicate_guids_and_links_keep_one(fixtures_dir: Path) -> None:
    feed = parse_fixture(fixtures_dir, "duplicate-guids.xml")
    check_invariants(feed)
    assert [a.title for a in feed.articles] == [
        "Corrected title",
        "Another post",
        "No link, guid only (again)",
    ]
    assert feed.articles[0].url == "http://dup.example.com/a"  # the last occurrence's data
    assert feed.articles[2].guid == "note-1" and feed.articles[2].url == ""


def test_guid_only_entries_are_scoped_to_their_feed() -> None:
    def doc(link: str) -> bytes:
        return (
            f'<rss version="2.0"><channel><title>t</title><link>{link}</link>'
            '<item><title>Note</title><guid isPermaLink="false">1</guid></item></channel></rss>'
        ).encode()

    one = parse_feed(doc("https://one.example.com/"), now=NOW).articles[0]
    two = parse_feed(doc("https://two.example.com/"), now=NOW).articles[0]
    assert one.uid != two.uid  # "1" is not a global identifier


# --------------------------------------------------------------------------- not feeds


def test_html_page_is_a_parse_error(fixtures_dir: Path) -> None:
    with pytest.raises(ParseError, match="HTML page"):
        parse_fixture(fixtures_dir, "html-page.html")


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"   \n\t ",
        b"\x00\x00\x00\x00",
        bytes(random.Random(7).getrandbits(8) for _ in range(5000)),
        b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 20,
        b"plain text, not markup at all",
        b"<?xml version='1.0'?><root><child/></root>",
        b"/etc/passwd",  # a path is data, never opened
        b"https://example.com/feed.xml",  # a URL is data, never fetched
    ],
)
def test_non_feeds_are_parse_errors(body: bytes) -> None:
    with pytest.raises(ParseError) as info:
        parse_feed(body, now=NOW)
    message = str(info.value)
    assert message and "\n" not in message
    assert isinstance(info.value, EngfeedError) and isinstance(info.value, ValueError)


def test_illformed_feed_with_entries_has_warning(fixtures_dir: Path) -> None:
    feed = parse_fixture(fixtures_dir, "illformed-bozo.xml")
    check_invariants(feed)
    assert feed.warning is not None and "\n" not in feed.warning
    assert [a.title for a in feed.articles] == ["Fish & chips at scale", "Second item"]
    assert feed.articles[0].url == "https://bozo.example.com/fish?a=1&b=2"


def test_wellformed_feeds_have_no_warning(fixtures_dir: Path) -> None:
    for name in (
        "wordpress-rss2.xml",
        "medium-rss.xml",
        "atom-xhtml.atom",
        "rss1-rdf.rdf",
        "jsonfeed-1.1.json",
    ):
        assert parse_fixture(fixtures_dir, name).warning is None, name


# --------------------------------------------------------------------------- hostile XML


def _billion_laughs(separator: str) -> bytes:
    lines = ['<?xml version="1.0"?>', "<!DOCTYPE rss [", '<!ENTITY lol "lol">']
    for i in range(1, 10):
        previous = f"lol{i - 1}" if i > 1 else "lol"
        lines.append(f'<!ENTITY lol{i} "{f"&{previous};" * 10}">')
    lines += [
        "]>",
        '<rss version="2.0"><channel><title>t &lol9;</title><item><title>a &lol9;</title>'
        "<link>https://laughs.example.com/a</link><description>&lol9;</description></item></channel></rss>",
    ]
    return separator.join(lines).encode()


@pytest.mark.parametrize("variant", ["fixture", "one-line", "utf-16"])
def test_billion_laughs_does_not_expand(fixtures_dir: Path, variant: str) -> None:
    if variant == "fixture":
        body = load(fixtures_dir, "billion-laughs.xml")
    elif variant == "one-line":
        body = _billion_laughs("")  # feedparser's own filter only sees declarations at line starts
    else:
        body = _billion_laughs("\n").decode().replace('version="1.0"?>', 'version="1.0" encoding="utf-16"?>')
        body = body.encode("utf-16")
    tracemalloc.start()
    start = time.perf_counter()
    try:
        feed = parse_feed(body, now=NOW)
    except ParseError:
        feed = None
    elapsed = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert elapsed < 1.0
    assert peak < 20 * 1024 * 1024
    if feed is not None:
        assert "lollollol" not in repr(feed)
        assert all(len(a.title) < 100 for a in feed.articles)


@pytest.fixture
def secret_file(tmp_path: Path) -> tuple[Path, str]:
    marker = f"ENGFEED-SECRET-{random.Random().getrandbits(64):016x}"
    path = tmp_path / "secret.txt"
    path.write_text(marker, encoding="utf-8")
    return path, marker


@pytest.mark.parametrize("layout", ["multi-line", "one-line", "parameter-entity", "external-dtd"])
def test_external_entities_never_read_local_files(secret_file: tuple[Path, str], layout: str) -> None:
    path, marker = secret_file
    uri = path.as_uri()
    body_xml = (
        '<rss version="2.0"><channel><title>x &xxe;</title><link>https://xxe.example.com/</link>'
        "<item><title>Item &xxe;</title><link>https://xxe.example.com/item</link>"
        "<description>Body &xxe;</description></item></channel></rss>"
    )
    if layout == "multi-line":
        doc = f'<?xml version="1.0"?>\n<!DOCTYPE rss [\n<!ENTITY xxe SYSTEM "{uri}">\n]>\n{body_xml}'
    elif layout == "one-line":
        doc = f'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY xxe SYSTEM "{uri}">]>{body_xml}'
    elif layout == "parameter-entity":
        doc = f'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY % ext SYSTEM "{uri}"> %ext;]>{body_xml}'
    else:
        doc = f'<?xml version="1.0"?><!DOCTYPE rss SYSTEM "{uri}">{body_xml}'
    try:
        result: object = parse_feed(doc.encode(), now=NOW)
    except ParseError as exc:
        result = str(exc)
    assert marker not in repr(result)


def test_xxe_fixture_does_not_leak_passwd(fixtures_dir: Path) -> None:
    feed = parse_fixture(fixtures_dir, "xxe-passwd.xml")
    assert [a.url for a in feed.articles] == ["https://xxe.example.com/item"]
    assert "root:" not in repr(feed)


def test_file_path_as_bytes_is_not_opened(secret_file: tuple[Path, str]) -> None:
    path, marker = secret_file
    with pytest.raises(ParseError) as info:
        parse_feed(str(path).encode(), now=NOW)
    assert marker not in str(info.value)


# --------------------------------------------------------------------------- amplification and caps


def _entity_feed(prefix: str, value: str, refs: str) -> bytes:
    return (
        f'{prefix}<!DOCTYPE rss [\n<!ENTITY a "{value}">\n]>\n<rss version="2.0"><channel><title>t</title>'
        f"<item><title>x</title><link>http://e.example/1</link><description>{refs}</description></item>"
        "</channel></rss>"
    ).encode()


def _text_size(feed: ParsedFeed) -> int:
    return sum(
        len(a.title) + len(a.text) + len(a.content_html) + len(a.summary_html) + len(a.excerpt)
        for a in feed.articles
    ) + len(feed.title)


@pytest.mark.parametrize(
    ("prefix", "refs"),
    [
        ('<?xml version="1.0"?>\n', "&a;" * 30_000),  # expat refuses it, the loose parser expanded it
        ("", "&a;" * 30_000),  # one line
        ("junk\n", "&a;" * 30_000),  # DOCTYPE after junk: only feedparser's own filter saw it
        ('<?xml version="1.0"?>\n', "&a " * 30_000),  # sgmllib needs no semicolon
        ('<?xml version="1.0"?>\n', "&a_b; " * 30_000),  # sgmllib reads "a" in "a_b"
    ],
)
def test_plain_text_entities_cannot_amplify_a_feed(prefix: str, refs: str) -> None:
    # ~100 KB declaring one 1,000-character entity referenced 30,000 times: it used to
    # parse to 30 MB of text per field (54 s and 4.9 GB in a real refresh).
    doc = _entity_feed(prefix, "A" * 1000, refs)
    feed = parse_feed(doc, now=NOW)
    # Every field of every article together: at most a small constant times the input.
    assert _text_size(feed) <= 4 * len(doc)
    assert "A" * 2000 not in feed.articles[0].text


def test_plain_text_entities_within_budget_still_expand() -> None:
    doc = _entity_feed('<?xml version="1.0"?>\n', "Example Corporation", "&a; builds &a; things")
    assert (
        parse_feed(doc, now=NOW).articles[0].text == "Example Corporation builds Example Corporation things"
    )
    nbsp = _entity_feed('<?xml version="1.0"?>\n', "&#160;", "x&a;y " * 5000)
    text = parse_feed(nbsp, now=NOW).articles[0].text
    assert text.startswith("x y x y") and "&a" not in text


def test_hostile_field_sizes_are_capped_with_a_visible_mark() -> None:
    from engfeed.parse import MAX_AUTHOR, MAX_BODY_BYTES, MAX_TAG, MAX_TAGS, MAX_TITLE

    paragraphs = "".join(f"<p>paragraph {i} " + "word " * 60 + "</p>" for i in range(4000))
    doc = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": "T" * 100_000,
        "items": [
            {
                "id": "1",
                "url": "https://e.example/post",
                "title": "A" * 2_000_000,
                "authors": [{"name": "B" * 1_000_000}],
                "tags": [f"tag{i}-" + "x" * 100 for i in range(20_000)],
                "content_html": paragraphs,
            }
        ],
    }
    feed = parse_feed(json.dumps(doc).encode(), now=NOW)
    art = feed.articles[0]
    assert len(feed.title) == MAX_TITLE and feed.title.endswith("…")
    assert len(art.title) == MAX_TITLE and art.title.endswith("…")
    assert len(art.author) == MAX_AUTHOR and art.author.endswith("…")
    assert len(art.tags) == MAX_TAGS
    assert all(len(t) <= MAX_TAG for t in art.tags) and art.tags[0].endswith("…")
    body = art.content_html
    assert len(body.encode()) <= MAX_BODY_BYTES
    assert body.endswith("Read the original</a> for the rest.</em></p>")
    assert 'href="https://e.example/post"' in body.rsplit("<p>", 1)[1]
    # Cut at an element boundary: the last kept paragraph is whole, and re-sanitising
    # changes nothing (every element is closed).
    kept = re.findall(r"<p>paragraph (\d+) ", body)
    assert kept and body.count("</p>") == len(kept) + 1
    assert re.search(r"<p>paragraph \d+ (word ){60}</p><p><em>This article was truncated", body)
    assert len(art.text.encode()) <= MAX_BODY_BYTES
    assert "truncated" not in art.text  # the note is for readers, not for search


def test_a_feed_of_huge_fields_stays_small_in_xml_too() -> None:
    title = "T" * (20 * 1024 * 1024)
    doc = (
        f'<rss version="2.0"><channel><title>c</title><item><title>{title}</title>'
        f"<link>http://e.example/1</link><author>{'x' * 300_000}</author></item></channel></rss>"
    ).encode()
    art = parse_feed(doc, now=NOW).articles[0]
    assert len(art.title) == 500
    assert len(art.author) <= 200


@pytest.mark.parametrize("element", ["author", "dc:creator", "managingEditor"])
def test_a_huge_author_line_does_not_stall_the_parser(element: str) -> None:
    # feedparser searches a plain author string for an e-mail address with a regex that is
    # quadratic in its length: 100,000 letters took hours before the author was cut first.
    doc = (
        '<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/"><channel><title>c</title>'
        f"<managingEditor>{'m' * 200_000}</managingEditor>"
        f"<item><title>t</title><link>http://e.example/1</link><{element}>{'x' * 200_000} (a@b.example)"
        f"</{element}></item></channel></rss>"
    ).encode()
    art = parse_feed(doc, now=NOW).articles[0]  # milliseconds now; without the cut, hours
    assert len(art.author) <= 200


def test_entries_past_the_cap_are_not_read() -> None:
    from engfeed.parse import MAX_ENTRIES

    items = "".join(
        f"<item><title>t{i}</title><link>http://e.example/{i}</link></item>" for i in range(12_000)
    )
    feed = parse_feed(
        f'<rss version="2.0"><channel><title>c</title>{items}</channel></rss>'.encode(), now=NOW
    )
    assert len(feed.articles) == MAX_ENTRIES
    assert feed.articles[-1].title == f"t{MAX_ENTRIES - 1}"
    assert feed.warning is not None and "5,000" in feed.warning
    doc = {"version": "https://jsonfeed.org/version/1", "items": [{"id": str(i)} for i in range(6000)]}
    json_feed = parse_feed(json.dumps(doc).encode(), now=NOW)
    assert len(json_feed.articles) == MAX_ENTRIES and json_feed.warning


# --------------------------------------------------------------------------- fuzzing


FIXTURE_NAMES = [
    "wordpress-rss2.xml",
    "medium-rss.xml",
    "atom-xhtml.atom",
    "rss1-rdf.rdf",
    "jsonfeed-1.1.json",
    "illformed-bozo.xml",
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=3000))
def test_any_bytes_parse_or_raise_parse_error(data: bytes) -> None:
    try:
        feed = parse_feed(data, now=NOW)
    except ParseError:
        return
    check_invariants(feed)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(FIXTURE_NAMES),
    st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), max_size=12),
    st.floats(0.05, 1.0),
)
def test_mutated_feeds_parse_or_raise_parse_error(
    name: str, flips: list[tuple[float, int]], keep: float
) -> None:
    original = (Path(__file__).parent / "fixtures" / "feeds" / name).read_bytes()
    data = bytearray(original[: max(1, int(len(original) * keep))])
    for where, value in flips:
        data[min(len(data) - 1, int(where * len(data)))] = value
    try:
        feed = parse_feed(bytes(data), now=NOW)
    except ParseError:
        return
    check_invariants(feed)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)
item_fields = st.sampled_from(
    ["id", "url", "external_url", "title", "content_html", "content_text", "summary", "date_published",
     "date_modified", "authors", "author", "tags"]
)  # fmt: skip
json_items = st.dictionaries(item_fields, json_values | st.text(), max_size=8)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(json_items | json_values, max_size=5),
    st.dictionaries(st.text(max_size=8), json_values, max_size=4),
)
def test_arbitrary_json_feed_fields_never_crash(items: list[object], extra: dict[str, object]) -> None:
    doc = {**extra, "version": "https://jsonfeed.org/version/1.1", "items": items}
    feed = parse_feed(json.dumps(doc).encode(), now=NOW)
    check_invariants(feed)
    for article in feed.articles:  # whatever came in, what comes out is storable text
        for value in (
            article.title,
            article.text,
            article.excerpt,
            article.author,
            article.guid,
            *article.tags,
        ):
            value.encode("utf-8")


# --------------------------------------------------------------------------- shared corpus


def _feed_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_every_shared_feed_parses(shared_dir: Path) -> None:
    files = _feed_files(shared_dir / "feeds")
    assert len(files) >= 30
    for path in files:
        data = path.read_bytes()
        feed = parse_feed(data, source=path.stem, now=NOW)
        check_invariants(feed)
        expected = len(
            feedparser.parse(io.BytesIO(data), sanitize_html=False, resolve_relative_uris=False).entries
        )
        if expected:
            assert feed.articles, path.name
        assert feed.title or path.name == "dropbox-tech.xml", path.name  # that one has an empty title
        assert all(a.title for a in feed.articles), path.name
        assert all(a.url for a in feed.articles), path.name
        assert sum(a.date_estimated for a in feed.articles) == 0, path.name


def test_shared_feed_quirks(shared_dir: Path) -> None:
    feeds = shared_dir / "feeds"
    # served with a newline before the XML declaration
    typepad = parse_feed((feeds / "aws-blog-typepad-2009.xml").read_bytes(), now=NOW)
    assert len(typepad.articles) == 10 and typepad.warning is not None
    # a browser-saved copy that is not well-formed
    browser = parse_feed((feeds / "cloudflare-blog-2023-03-browser-copy.xml").read_bytes(), now=NOW)
    assert len(browser.articles) == 15 and browser.warning is not None
    # UTF-8 decoded as windows-1252 upstream
    github = parse_feed((feeds / "github-blog-2018.xml").read_bytes(), now=NOW)
    assert not any("â€" in a.title + a.text + a.excerpt for a in github.articles)
    # Medium posts on the custom domain and on medium.com collapse to medium:<id>
    for name in ("netflix-techblog-medium.xml", "netflix-techblog-medium-2019.xml"):
        for article in parse_feed((feeds / name).read_bytes(), now=NOW).articles:
            assert "?source=" not in article.url
            assert article.uid == article_uid(dedup_key(article.url))
            assert dedup_key(article.url).startswith("medium:")
            assert article.guid.endswith(dedup_key(article.url).removeprefix("medium:"))


def test_feedparser_test_suite_files_never_crash(shared_dir: Path) -> None:
    files = _feed_files(shared_dir / "feedparser-tests")
    assert len(files) > 2000
    failures: list[str] = []
    parsed = rejected = with_articles = 0
    start = time.perf_counter()
    for path in files:
        try:
            feed = parse_feed(path.read_bytes(), url="http://example.com/feed", source=path.stem, now=NOW)
            check_invariants(feed)
        except ParseError:
            rejected += 1
        except Exception as exc:  # collect, so one run reports every failure
            failures.append(f"{path.relative_to(shared_dir)}: {type(exc).__name__}: {exc}")
        else:
            parsed += 1
            with_articles += bool(feed.articles)
    assert failures == []
    assert parsed > 1500 and with_articles > 1000
    assert rejected < 200
    assert time.perf_counter() - start < 60


def test_feeds_large_article_counts_match_distinct_dedup_keys(shared_dir: Path) -> None:
    files = sorted((shared_dir / "feeds-large").glob("*.xml"))
    assert len(files) >= 70
    total = 0
    for path in files:
        data = path.read_bytes()
        raw = feedparser.parse(io.BytesIO(data), sanitize_html=False, resolve_relative_uris=False)
        base = raw.feed.get("link") or None  # a few files carry root-relative item links
        assert all(entry.get("link") for entry in raw.entries), path.name
        expected = {dedup_key(canonical_url(entry["link"], base)) for entry in raw.entries}
        feed = parse_feed(data, source=path.stem, now=NOW)
        assert len(feed.articles) == len(expected), path.name
        assert {dedup_key(a.url) for a in feed.articles} == expected, path.name
        total += len(feed.articles)
    assert total > 8000
