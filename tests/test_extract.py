"""Article text from article pages (engfeed.extract): what trafilatura keeps, what we refuse.

The articles are real: their HTML is read at test time from the feeds in ``../shared`` (the
text belongs to its publishers and is never copied here) and wrapped in the boilerplate of a
real blog page: navigation, a cookie banner, share bars, related posts, comments, a
newsletter box and a footer. The helpers :func:`article_page`, :func:`real_articles` and
:data:`BOILERPLATE` are shared with ``test_fulltext.py`` and ``bench/fulltext.py``.
"""

from __future__ import annotations

import functools
import html as htmllib
import re
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engfeed.extract import (
    MAX_TREE_ELEMENTS,
    MIN_ARTICLE_WORDS,
    TEASER_WORDS,
    PageText,
    extract_page,
    is_teaser,
)
from engfeed.models import Article
from engfeed.parse import MAX_BODY_BYTES, parse_feed
from engfeed.text import html_to_text

URL = "https://engineering.example.com/blog/2026/how-we-did-it"

#: Strings that only the page's boilerplate holds: none may reach the extracted text.
BOILERPLATE = (
    "We use cookies to improve your experience",
    "Accept all cookies",
    "Products",
    "Careers at Example",
    "Share on LinkedIn",
    "Copy link to this post",
    "Related posts",
    "How we scaled the widget service",
    "Great write-up, we hit the same issue",
    "Subscribe to our newsletter",
    "All rights reserved",
    "Privacy policy",
    "dataLayer",
)

#: Real articles from different publishers and page generators (Ghost, Medium, Blogger,
#: WordPress, Jekyll, a corporate CMS): (feed file under ../shared, index in the feed).
ARTICLES = (
    ("feeds/cloudflare-blog-2023-01.xml", 1),
    ("feeds/dropbox-tech.xml", 1),
    ("feeds/google-ai-blog.xml", 0),
    ("feeds/netflix-techblog-medium.xml", 1),
    ("feeds/thoughtbot-giant-robots.xml", 0),
    ("feeds/artsy-engineering-2020.xml", 1),
    ("feeds-large/recent-stripe.xml", 1),
    ("feeds-large/recent-uber.xml", 1),
    ("feeds-large/recent-aws.xml", 0),
    ("feeds-large/recent-meta.xml", 1),
)


def article_page(title: str, content_html: str, *, extra: str = "") -> bytes:
    """A blog article page as served: ``content_html`` (the article body) under an ``<h1>``
    repeating ``title``, in a page full of boilerplate; ``extra`` goes inside the article."""
    nav = "".join(
        f'<li><a href="/{w.lower().replace(" ", "-")}">{w}</a></li>'
        for w in ("Products", "Pricing", "Developers", "Careers at Example", "Blog", "Contact")
    )
    related = "".join(
        f'<li><a href="/blog/related-{i}"><img src="/img/r{i}.png" alt="">How we scaled the widget '
        f"service, part {i}</a><span>5 min read</span></li>"
        for i in range(6)
    )
    comments = "".join(
        f'<li class="comment" id="comment-{i}"><div class="comment-author">reader{i}</div><p>Great '
        "write-up, we hit the same issue last year and solved it with a sidecar instead. "
        f'Thanks for sharing! ({i})</p><a class="reply" href="#reply-{i}">Reply</a></li>'
        for i in range(5)
    )
    share = (
        '<div class="share-bar"><a href="https://twitter.com/intent/tweet">Share on X</a> '
        '<a href="https://www.linkedin.com/sharing/share-offsite/">Share on LinkedIn</a> '
        '<button class="copy">Copy link to this post</button></div>'
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{htmllib.escape(title)} | Example Engineering</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta property="og:title" content="{htmllib.escape(title)}"><link rel="stylesheet" href="/assets/app.css">
<style>.cookie-banner{{position:fixed;bottom:0}}</style>
<script>window.dataLayer = window.dataLayer || []; function gtag(){{dataLayer.push(arguments);}}</script>
</head><body class="post-template">
<div id="onetrust-banner-sdk" class="cookie-banner" role="dialog" aria-label="Cookie banner">
<p>We use cookies to improve your experience on our site and to show you relevant advertising.
By clicking "Accept all cookies" you agree to the storing of cookies on your device.</p>
<button id="accept">Accept all cookies</button><button>Cookie settings</button></div>
<header class="site-header"><a class="logo" href="/">Example Engineering</a>
<nav class="main-nav" aria-label="Main"><ul>{nav}</ul></nav>
<form class="search" action="/search"><input name="q" placeholder="Search the blog"></form></header>
<main id="main"><article class="post">
<header class="post-header"><h1 class="post-title">{htmllib.escape(title)}</h1>
<div class="post-meta"><span class="author">By Jane Doe</span> · <time>March 3, 2026</time>
· 12 min read</div>
{share}</header>
<div class="post-content">{content_html}{extra}</div>
<footer class="post-footer">{share}<div class="tags"><a href="/tag/infra">Infrastructure</a></div></footer>
</article>
<aside class="related-posts"><h2>Related posts</h2><ul>{related}</ul></aside>
<section id="comments" class="comments"><h2>5 comments</h2><ol class="comment-list">{comments}</ol>
<form class="comment-form"><textarea name="comment"></textarea><button>Post comment</button></form></section>
</main>
<section class="newsletter"><h3>Subscribe to our newsletter</h3>
<p>Get the best of engineering in your inbox.</p>
<form><input type="email" placeholder="you@example.com"><button>Sign up</button></form></section>
<footer class="site-footer"><ul><li><a href="/privacy">Privacy policy</a></li>
<li><a href="/terms">Terms of use</a></li><li><a href="/careers">Careers at Example</a></li></ul>
<p>© 2026 Example Corp. All rights reserved.</p></footer>
<script src="/assets/analytics.js" async></script></body></html>""".encode()


@functools.cache
def _feed_articles(path: Path) -> tuple[Article, ...]:
    return tuple(parse_feed(path.read_bytes()).articles)


def real_articles(
    shared: Path, picks: tuple[tuple[str, int], ...] = ARTICLES, *, min_words: int = 400
) -> list[Article]:
    """Real articles of at least ``min_words`` words, read from ``../shared``: for each
    (feed, n), the n-th such article of the feed in feed order."""
    found = []
    for name, index in picks:
        long = [a for a in _feed_articles(shared / name) if len(a.text.split()) >= min_words]
        found.append(long[index % len(long)])
    return found


def body_html(article: Article) -> str:
    return article.content_html or article.summary_html


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
_BLOCK = re.compile(
    r"</?(?:p|li|h[1-6]|pre|blockquote|div|td|th|figcaption|figure|ul|ol|dl|dd|dt|br)\b[^>]*>", re.I
)


def sentences(html: str, *, min_words: int = 6) -> list[str]:
    """The sentences of an HTML body (of at least ``min_words`` words), block by block."""
    found = []
    for block in _BLOCK.split(html):
        text = html_to_text(block)
        found += [s for s in _SENTENCE_END.split(text) if len(s.split()) >= min_words]
    return found


def kept(wanted: list[str], text: str) -> list[str]:
    """The sentences of ``wanted`` found in ``text`` (inline markup may move spaces)."""
    squeezed = "".join(text.split())
    return [s for s in wanted if "".join(s.split()) in squeezed]


def extract(
    body: bytes, *, url: str = URL, content_type: str = "text/html; charset=utf-8", title: str = ""
) -> PageText:
    return extract_page(body, url=url, content_type=content_type, title=title)


# -- real articles in real boilerplate -------------------------------------------------------
@pytest.mark.parametrize(("feed", "index"), ARTICLES, ids=[f.split("/")[-1] for f, _ in ARTICLES])
def test_the_article_is_kept_and_the_boilerplate_dropped(shared_dir: Path, feed: str, index: int) -> None:
    [article] = real_articles(shared_dir, ((feed, index),))
    source = html_to_text(body_html(article))
    page = extract(article_page(article.title, body_html(article)), title=article.title)
    assert page.status == "ok", page.reason
    wanted = sentences(body_html(article))
    found = kept(wanted, page.text)
    assert len(wanted) >= 10
    assert len(found) >= 0.9 * len(wanted), [s for s in wanted if s not in found][:5]
    assert 0.85 * len(source.split()) <= page.words <= 1.05 * len(source.split()) + 20
    leaked = [b for b in BOILERPLATE if b in page.text and b not in source]
    assert leaked == []
    assert "<script" not in page.html and "<style" not in page.html and "<form" not in page.html


def test_the_leading_h1_repeating_the_title_is_dropped(shared_dir: Path) -> None:
    [article] = real_articles(shared_dir, (("feeds/dropbox-tech.xml", 1),))
    body = article_page(article.title, body_html(article))
    heading = f"<h1>{htmllib.escape(article.title, quote=False)}</h1>"
    assert extract(body, title="").html.startswith(heading)  # trafilatura keeps it...
    dropped = extract(body, title=article.title)
    assert not dropped.html.lstrip().startswith("<h1")  # ...we drop it: it is the title
    assert dropped.text.split()[:5] != article.title.split()[:5]
    # The same title in other case, spacing or with entities is the same heading.
    assert not extract(body, title=f"  {article.title.upper()} ").html.startswith("<h1")
    # A heading that is not the title stays.
    assert extract(body, title="Another post entirely").html.startswith(heading)


def test_relative_links_and_images_become_absolute_and_safe(shared_dir: Path) -> None:
    [article] = real_articles(shared_dir, (("feeds/google-ai-blog.xml", 0),))
    extra = (
        '<p>See <a href="/blog/earlier-post">the earlier post</a> and <a href="../notes.html">notes</a>. '
        '<img src="/img/diagram.png" alt="Architecture diagram"></p>'
    )
    page = extract(article_page(article.title, body_html(article), extra=extra), title=article.title)
    assert page.status == "ok"
    assert 'href="https://engineering.example.com/blog/earlier-post"' in page.html
    assert 'src="https://engineering.example.com/img/diagram.png"' in page.html
    assert 'rel="noopener noreferrer nofollow"' in page.html


# -- the teaser rule ---------------------------------------------------------------------------
def test_is_teaser_counts_words() -> None:
    assert is_teaser("")
    assert is_teaser(" ".join(["word"] * (TEASER_WORDS - 1)))
    assert not is_teaser(" ".join(["word"] * TEASER_WORDS))
    assert is_teaser("a\n\tb  c " * 49)  # 147 words, whatever the whitespace


@given(st.lists(st.text(alphabet="ab \n\t\u00a0", max_size=8), max_size=200))
def test_is_teaser_is_the_word_count_rule(parts: list[str]) -> None:
    text = " ".join(parts)
    assert is_teaser(text) == (len(text.split()) < TEASER_WORDS)


def test_description_only_items_are_teasers_and_full_content_items_are_not(shared_dir: Path) -> None:
    teasers = [a for a in _feed_articles(shared_dir / "feeds-large/blogs-uber.xml") if a.text]
    full = [a for a in _feed_articles(shared_dir / "feeds/netflix-techblog-medium.xml")]
    assert teasers and full
    assert sum(map(is_teaser, (a.text for a in teasers))) >= 0.9 * len(teasers)
    assert not any(is_teaser(a.text) for a in full)


# -- what is not an article --------------------------------------------------------------------
@pytest.mark.parametrize(
    "content_type", ["video/mp4", "application/pdf", "image/png", "application/json", "text/plain"]
)
def test_a_page_that_is_not_html_is_not_an_article(shared_dir: Path, content_type: str) -> None:
    [article] = real_articles(shared_dir, (("feeds/dropbox-tech.xml", 1),))
    page = extract(article_page(article.title, body_html(article)), content_type=content_type)
    assert page.status == "not_article" and page.html == page.text == ""
    assert content_type in page.reason


@pytest.mark.parametrize(
    "content_type", ["text/html", "TEXT/HTML; charset=UTF-8", "application/xhtml+xml", ""]
)
def test_html_types_and_no_type_are_read(shared_dir: Path, content_type: str) -> None:
    [article] = real_articles(shared_dir, (("feeds/dropbox-tech.xml", 1),))
    assert extract(article_page(article.title, body_html(article)), content_type=content_type).status == "ok"


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/login?next=/blog/post",
        "https://example.com/account/login",
        "https://example.com/users/sign-in",
        "https://example.com/signin/",
        "https://sso.example.com/sso/start",
    ],
)
def test_a_login_page_is_not_an_article_however_long(shared_dir: Path, url: str) -> None:
    [article] = real_articles(shared_dir, (("feeds/dropbox-tech.xml", 1),))
    page = extract(article_page(article.title, body_html(article)), url=url)
    assert page.status == "not_article" and "log in" in page.reason


def test_an_article_whose_slug_mentions_auth_is_still_an_article(shared_dir: Path) -> None:
    [article] = real_articles(shared_dir, (("feeds/dropbox-tech.xml", 1),))
    body = article_page(article.title, body_html(article))
    assert extract(body, url="https://example.com/blog/authentication-at-scale").status == "ok"


def test_an_article_that_lives_under_an_auth_path_is_read_when_not_redirected(shared_dir: Path) -> None:
    [article] = real_articles(shared_dir, (("feeds/dropbox-tech.xml", 1),))
    body = article_page(article.title, body_html(article))
    url = "https://example.com/auth/how-we-rebuilt-login"
    assert extract_page(body, url=url, requested=url, title=article.title).status == "ok"
    moved = extract_page(body, url=url, requested="https://example.com/blog/post", title=article.title)
    assert moved.status == "not_article" and "log in" in moved.reason


def test_an_article_under_an_auth_path_is_read_after_a_redirect_within_it(shared_dir: Path) -> None:
    """A trailing slash or https added to /sso/... is not a login wall."""
    [article] = real_articles(shared_dir, (("feeds/dropbox-tech.xml", 1),))
    body = article_page(article.title, body_html(article))
    for requested in ("https://example.com/sso/how-we-built-sso", "http://example.com/sso/how-we-built-sso/"):
        got = extract_page(body, url="https://example.com/sso/how-we-built-sso/", requested=requested)
        assert got.status == "ok", requested
    signin = extract_page(
        body, url="https://example.com/auth/login?next=x", requested="https://example.com/auth/post"
    )
    assert signin.status == "not_article" and "log in" in signin.reason  # a redirect to sign in, still


def test_a_meta_charset_of_utf16_is_read_as_utf8(shared_dir: Path) -> None:
    """A meta tag readable as ASCII cannot be UTF-16; browsers read such pages as UTF-8."""
    [article] = real_articles(shared_dir, (("feeds/thoughtbot-giant-robots.xml", 0),))
    page = article_page(article.title, body_html(article), extra=f"<p>{ACCENTS}</p>").decode()
    page = page.replace('<meta charset="utf-8">', '<meta charset="utf-16">')
    got = extract(page.encode("utf-8"), content_type="text/html")
    assert got.status == "ok" and ACCENTS in got.text


def test_the_element_cap_holds_for_utf16_pages() -> None:
    body = ("<html><body><article>" + "<p>word word word word</p>" * (MAX_TREE_ELEMENTS + 10)).encode(
        "utf-16-le"
    )
    got = extract(body, content_type="text/html; charset=utf-16le")
    assert got.status == "not_article" and "elements" in got.reason  # refused before parsing


def test_a_paywall_teaser_is_too_little_text() -> None:
    content = (
        "<p>Our storage layer handles millions of writes a second. In this post we explain how "
        "we got there and what we learned about consistency along the way.</p>"
        '<div class="paywall"><p>Subscribe to keep reading.</p><a href="/subscribe">Subscribe</a></div>'
    )
    page = extract(article_page("Scaling storage", content), title="Scaling storage")
    assert page.status == "not_article" and "too little text" in page.reason
    assert page.words == 0 and MIN_ARTICLE_WORDS > 30


def test_an_empty_or_binary_page_is_not_an_article() -> None:
    for body in (b"", b"\x00" * 100, b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 10, b"<html></html>"):
        page = extract(body)
        assert page.status == "not_article" and page.reason


# -- encodings ---------------------------------------------------------------------------------
ACCENTS = "Café crème, naïve façade, the résumé of a jalapeño — “quoted”."


@pytest.mark.parametrize(
    ("encoding", "content_type", "meta"),
    [
        ("cp1252", "text/html; charset=windows-1252", ""),
        ("cp1252", "text/html; charset=ISO-8859-1", ""),  # browsers read it as windows-1252
        ("cp1252", "text/html", '<meta charset="windows-1252">'),
        ("cp1252", "text/html", '<meta http-equiv="Content-Type" content="text/html; charset=iso-8859-1">'),
        ("utf-8", "text/html", ""),
        ("utf-16", "text/html; charset=utf-16", ""),
        ("cp1252", "text/html; charset=windows-1252", '<meta charset="utf-8">'),  # the header wins
    ],
)
def test_the_declared_encoding_is_used(shared_dir: Path, encoding: str, content_type: str, meta: str) -> None:
    [article] = real_articles(shared_dir, (("feeds/thoughtbot-giant-robots.xml", 0),))
    page = article_page(article.title, body_html(article), extra=f"<p>{ACCENTS}</p>").decode()
    page = page.replace('<meta charset="utf-8">', meta)
    got = extract(page.encode(encoding, "xmlcharrefreplace"), content_type=content_type)
    assert got.status == "ok"
    assert ACCENTS in got.text


# -- hostile pages -----------------------------------------------------------------------------
HOSTILE = (
    "<p>Before the trap.</p><script>alert('script')</script>"
    '<p><img src="x.png" onerror="alert(\'img\')" alt="a diagram"> An image that runs code.</p>'
    "<p><a href=\"javascript:alert('link')\">a javascript link</a> and "
    '<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">a data link</a>.</p>'
    '<iframe src="https://evil.example/frame" onload="alert(\'frame\')">inside the frame</iframe>'
    '<svg onload="alert(\'svg\')"><circle r="4"/></svg>'
    '<p style="background:url(javascript:alert(1))" onclick="alert(\'p\')">Styled and clickable.</p>'
    '<object data="evil.swf"><embed src="evil.swf"></object>'
    '<form action="https://evil.example/steal"><input name="password"></form>'
    "<p>After the trap.</p>"
)


def assert_inert(html: str) -> None:
    """No element, attribute or URL in ``html`` that could run code or restyle the page."""
    lowered = html.lower()
    for bad in ("<script", "<iframe", "<svg", "<object", "<embed", "<form", "<input", "<style"):
        assert bad not in lowered
    tags = re.findall(r"<[a-z][^>]*>", lowered)
    assert not [t for t in tags if re.search(r"\s(on\w+|style)\s*=", t)]
    assert not [t for t in tags if re.search(r"""(href|src)\s*=\s*["']?\s*(javascript|data|vbscript):""", t)]


def test_active_content_never_survives_extraction(shared_dir: Path) -> None:
    [article] = real_articles(shared_dir, (("feeds/dropbox-tech.xml", 1),))
    page = extract(article_page(article.title, body_html(article), extra=HOSTILE), title=article.title)
    assert page.status == "ok"
    assert_inert(page.html)
    assert "alert(" not in page.html and "alert(" not in page.text and "inside the frame" not in page.text
    assert "Before the trap." in page.text and "After the trap." in page.text


def test_deep_nesting_is_refused_fast_and_never_crashes() -> None:
    paragraph = "<p>" + "Deeply nested words about distributed systems. " * 30 + "</p>"
    deep = "<html><body><article>" + paragraph + "<div>" * 100_000 + "bottom" + "</div>" * 100_000
    started = time.perf_counter()
    page = extract((deep + "</article></body></html>").encode())
    assert time.perf_counter() - started < 5
    assert page.status == "not_article" and "elements" in page.reason


def test_nesting_under_the_element_cap_ends_quickly(shared_dir: Path) -> None:
    [article] = real_articles(shared_dir, (("feeds/dropbox-tech.xml", 1),))
    depth = 5_000  # far deeper than libxml2's 256 levels: the parser stops, nothing crashes
    nested = "<div>" * depth + "<p>the bottom of the well</p>" + "</div>" * depth
    started = time.perf_counter()
    page = extract(article_page(article.title, body_html(article), extra=nested), title=article.title)
    assert time.perf_counter() - started < 10
    assert page.status == "ok"
    wanted = sentences(body_html(article))
    assert len(kept(wanted, page.text)) >= 0.9 * len(wanted)


def test_a_page_of_too_many_elements_is_refused_before_parsing() -> None:
    flat = b"<html><body><article>" + b"<p>word word word word</p>" * (MAX_TREE_ELEMENTS + 1)
    started = time.perf_counter()
    page = extract(flat + b"</article></body></html>")
    # Parsed, this page costs trafilatura minutes (200k elements took 6 minutes here).
    assert time.perf_counter() - started < 2
    assert page.status == "not_article" and f"{MAX_TREE_ELEMENTS:,}" in page.reason


def test_an_entity_heavy_page_is_decoded_in_bounded_time(shared_dir: Path) -> None:
    [article] = real_articles(shared_dir, (("feeds/dropbox-tech.xml", 1),))
    entities = "<p>" + "caf&eacute; &amp; na&iuml;ve &#8212; &#x201C;q&#x201D; &lt;tag&gt; " * 20_000 + "</p>"
    laughs = (
        '<!DOCTYPE html [<!ENTITY a "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa">'
        '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>'
    )
    body = article_page(article.title, body_html(article), extra=entities + "<p>&c;&c;&c;&c;&c;</p>")
    body = body.replace(b"<!DOCTYPE html>", laughs.encode())
    started = time.perf_counter()
    page = extract(body, title=article.title)
    assert time.perf_counter() - started < 20
    assert page.status == "ok"
    assert "&eacute;" not in page.text and "&amp;" not in page.text
    assert "aaaaaaaaaa" * 10 not in page.text  # HTML parsers expand no DTD entities
    assert len(page.html.encode()) <= MAX_BODY_BYTES


def test_a_huge_article_is_capped_like_a_feed_body(shared_dir: Path) -> None:
    [article] = real_articles(shared_dir, (("feeds/cloudflare-blog-2023-01.xml", 1),))
    content = body_html(article) * 30  # ~1 MB of real article HTML
    page = extract(article_page(article.title, content), title=article.title)
    assert page.status == "ok"
    assert len(page.html.encode()) <= MAX_BODY_BYTES
    assert page.html.endswith(">")


# -- anything at all ---------------------------------------------------------------------------
_TAGS = [
    "p",
    "div",
    "article",
    "main",
    "nav",
    "footer",
    "a",
    "h1",
    "script",
    "style",
    "iframe",
    "img",
    "table",
]
_ATTRS = ["", ' onerror="alert(1)"', ' href="javascript:alert(1)"', ' src="/x.png"', ' class="post-content"']
_WORDS = ["alpha", "beta", "latency", "&amp;", "&#0;", "&#xD800;", "\x00", "é", "<", ">", '"', "'"]


@st.composite
def html_soup(draw: st.DrawFn) -> bytes:
    parts = []
    for _ in range(draw(st.integers(0, 60))):
        kind = draw(st.integers(0, 3))
        if kind == 0:
            parts.append(f"<{draw(st.sampled_from(_TAGS))}{draw(st.sampled_from(_ATTRS))}>")
        elif kind == 1:
            parts.append(f"</{draw(st.sampled_from(_TAGS))}>")
        elif kind == 2:
            parts.append(" ".join(draw(st.lists(st.sampled_from(_WORDS), max_size=40))))
        else:
            parts.append(draw(st.text(max_size=30)))
    encoding = draw(st.sampled_from(["utf-8", "latin-1", "utf-16"]))
    return "".join(parts).encode(encoding, "surrogatepass" if encoding == "utf-8" else "replace")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=st.one_of(html_soup(), st.binary(max_size=2000)),
    content_type=st.one_of(
        st.just("text/html"),
        st.builds(lambda c: f"text/html; charset={c}", st.text(max_size=12)),
        st.text(max_size=40),
    ),
    url=st.one_of(st.just(URL), st.text(max_size=40)),
    title=st.text(max_size=40),
)
def test_extract_page_never_raises_and_never_emits_active_content(
    body: bytes, content_type: str, url: str, title: str
) -> None:
    page = extract_page(body, url=url, content_type=content_type, title=title)
    assert page.status in ("ok", "not_article")
    if page.status == "ok":
        assert page.words >= MIN_ARTICLE_WORDS and page.text
        assert_inert(page.html)
    else:
        assert page.reason and page.html == "" and page.text == ""
