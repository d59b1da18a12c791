"""HTML sanitizing, text extraction, boilerplate stripping and excerpts."""

from __future__ import annotations

import time

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from engfeed.text import (
    ELLIPSIS,
    excerpt_of,
    html_to_text,
    make_excerpt,
    plain_title,
    repair_mojibake,
    sanitize_html,
    strip_boilerplate,
    strip_html_trailer,
)

# --------------------------------------------------------------------------- sanitize_html


def test_sanitize_keeps_formatting_and_drops_active_content() -> None:
    html = (
        '<p onclick="x()">Hi <strong>there</strong> <em>you</em> <code>x = 1</code></p>'
        "<script>alert(1)</script><style>p{color:red}</style>"
        '<iframe src="https://evil.example/">iframe fallback</iframe>'
        "<ul><li>one</li></ul><pre>pre</pre><blockquote>quote</blockquote>"
        '<table><tr><th colspan="2">h</th></tr><tr><td>c</td></tr></table><h2>Heading</h2><hr><br>'
    )
    clean = sanitize_html(html, None)
    for kept in (
        "<strong>there</strong>",
        "<em>you</em>",
        "<code>x = 1</code>",
        "<li>one</li>",
        "<pre>pre</pre>",
    ):
        assert kept in clean
    for tag in ("<blockquote>", "<table>", '<th colspan="2">', "<td>", "<h2>", "<hr>", "<br>"):
        assert tag in clean
    for gone in ("onclick", "<script", "alert(1)", "<style", "color:red", "<iframe", "iframe fallback"):
        assert gone not in clean


def test_sanitize_links_get_rel_and_safe_schemes_only() -> None:
    html = (
        '<a href="https://ex.com/a" target="_blank">a</a>'
        '<a href="javascript:alert(1)">js</a>'
        '<a href="data:text/html,hi">data</a>'
        '<a href="mailto:team@ex.com">mail</a>'
    )
    clean = sanitize_html(html, None)
    assert '<a href="https://ex.com/a" rel="noopener noreferrer nofollow">a</a>' in clean
    assert 'href="mailto:team@ex.com"' in clean
    assert "javascript:" not in clean and "data:" not in clean and "target" not in clean


def test_sanitize_images_keep_src_and_alt_only() -> None:
    clean = sanitize_html(
        '<img src="https://ex.com/i.png" alt="chart" onerror="x()" srcset="a.png 2x">', None
    )
    assert clean == '<img src="https://ex.com/i.png" alt="chart">'


def test_sanitize_drops_tracking_pixels() -> None:
    # As FeedBurner and Medium append them to every entry (seen 90 times in the shared corpus).
    feedburner = (
        '<img src="http://feeds.feedburner.com/~r/blogspot/gJZg/~4/bcEqeVSMnBQ" height="1" width="1" alt="">'
    )
    medium = '<img src="https://medium.com/_/stat?event=post.clientViewed&amp;postId=1" width="1" height="1">'
    assert sanitize_html(f"<p>Hi</p>{feedburner}", None) == "<p>Hi</p>"
    assert sanitize_html(f"<p>Hi{medium}</p>", None) == "<p>Hi</p>"
    assert (
        sanitize_html('<p>C<img src="https://x.example/p.gif" width=0 height="0px"></p>', None) == "<p>C</p>"
    )
    # Real images stay, including thin ones and ones without dimensions.
    kept = '<img src="https://x.example/rule.png" width="600" height="1"><img src="https://x.example/b.png">'
    assert sanitize_html(f"<p>{kept}</p>", None) == f"<p>{kept}</p>"


@pytest.mark.parametrize(
    "trailer",
    [
        '<p>The post <a href="https://blog.asana.com/x">Scaling&nbsp;Tuist</a> appeared first on '
        '<a href="https://blog.asana.com">The Asana Blog</a>.</p>',
        '<hr><p><a href="https://medium.com/n/x">Re-Architecting the Gatekeeper</a> was originally '
        'published in <a href="https://medium.com/n">Netflix TechBlog</a> on Medium, where people are '
        "continuing the conversation by highlighting and responding to this story.</p>",
    ],
)
def test_html_trailer_is_stripped_from_bodies(trailer: str) -> None:
    body = "<p>We rebuilt the scheduler.</p><p>It is faster now […]</p>"
    assert strip_html_trailer(body + "\n" + trailer) == body
    assert strip_html_trailer("<p>" + "x " * 3000 + "</p>" + trailer) == "<p>" + "x " * 3000 + "</p>"


def test_html_trailer_is_stripped_from_plain_text_summaries() -> None:
    text = "Failover now takes seconds. The post How we run active-active appeared first on Acme."
    assert strip_html_trailer(text) == "Failover now takes seconds."


def test_html_trailer_keeps_ordinary_paragraphs() -> None:
    for body in (
        "<p>This idea first appeared first on our old blog, years ago; here it is again.</p><p>More.</p>",
        "<p>Only a paragraph.</p>",
        "",
    ):
        assert strip_html_trailer(body) == body
    # Only the last paragraph is a trailer; one that mentions it mid-way stays.
    mid = "<p>A post that appeared first on Hacker News.</p><p>The end.</p>"
    assert strip_html_trailer(mid) == mid


def test_sanitize_resolves_relative_urls_against_base() -> None:
    clean = sanitize_html('<a href="/docs">d</a><img src="img/a.png" alt="">', "https://ex.com/blog/post/")
    assert 'href="https://ex.com/docs"' in clean
    assert 'src="https://ex.com/blog/post/img/a.png"' in clean


def test_sanitize_without_base_drops_relative_urls() -> None:
    clean = sanitize_html('<a href="/docs">docs</a>', None)
    assert "href" not in clean and "docs</a>" in clean


@given(st.text(), st.sampled_from([None, "https://ex.com/", "not a url"]))
@example("<a href='x'>\ud800</a>", None)
def test_sanitize_never_raises(html: str, base: str | None) -> None:
    assert "<script" not in sanitize_html(html, base).lower()


# --------------------------------------------------------------------------- html_to_text


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        ("<p>One</p><p>Two</p>", "One Two"),
        ("<h2>Title</h2>Body<br>next<li>a</li><li>b</li>", "Title Body next a b"),
        ("Tom &amp; Jerry &lt;3 &#8217; &nbsp;x", "Tom & Jerry <3 ’ x"),
        ("<p>keep <b>inline</b>words</p>", "keep inlinewords"),
        ("<script>var x = 1;</script><style>.a{}</style>visible", "visible"),
        ("  lots \n\n of \t whitespace  ", "lots of whitespace"),
        ("<td>a</td><td>b</td>", "a b"),
        ("", ""),
        ("plain text only", "plain text only"),
        ("nul\x00byte and \x07bell", "nul byte and bell"),
    ],
)
def test_html_to_text(html: str, expected: str) -> None:
    assert html_to_text(html) == expected


@given(st.text())
@example("\ud800<p>lone surrogate</p>")
@example("<" * 1000)
def test_html_to_text_never_raises_and_is_collapsed(html: str) -> None:
    text = html_to_text(html)
    assert text == text.strip()
    assert "  " not in text and "\n" not in text


def test_html_to_text_survives_binary_junk_and_huge_input() -> None:
    junk = bytes(range(256)).decode("latin-1") * 100
    assert isinstance(html_to_text(junk), str)
    huge = "<p>" + "word " * 400_000 + "</p>"  # ~2 MB
    start = time.perf_counter()
    text = html_to_text(huge)
    assert time.perf_counter() - start < 5
    assert text.count("word") == 400_000


# --------------------------------------------------------------------------- plain_title


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("What is <CODE>ERROR_<WBR>ARENA_<WBR>TRASHED</CODE>?", "What is ERROR_ARENA_TRASHED?"),
        ("Fish &amp; chips", "Fish & chips"),
        ("Using <select> in forms", "Using <select> in forms"),
        ("  A\n title  ", "A title"),
        ("<em>Bold</em> move", "Bold move"),
        ("Postmortem &#8211; what went wrong", "Postmortem – what went wrong"),
    ],
)
def test_plain_title(title: str, expected: str) -> None:
    assert plain_title(title) == expected


# --------------------------------------------------------------------------- boilerplate


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Our queue outgrew one primary. The post Sharding the queue appeared first on Example Blog.",
            "Our queue outgrew one primary.",
        ),
        ("A new design [...] Read More... The post X appeared first on Engineering at Meta.", "A new design"),
        ("Cut short by the publisher […]", "Cut short by the publisher"),
        ("Cut short [&hellip;]", "Cut short"),
        (
            "Evals are a powerful new... The post Y appeared first on Spotify Engineering.",
            "Evals are a powerful new",
        ),
        ("Short teaser… Continue reading on Example Blog »", "Short teaser"),
        ('Teaser text. Continue reading "A Long Title" →', "Teaser text."),
        ("Body text. Read more", "Body text."),
        ("That is why knowing how Continue reading", "That is why knowing how"),
        ("Teaser. The post Z first appeared on Some Site.", "Teaser."),
        ("Recovery matters. The post T appeared first on…", "Recovery matters."),
        (
            "Body. A Title was originally published in Example Blog on Medium, where people are continuing "
            "the conversation by highlighting and responding to this story.",
            "Body.",
        ),
        # look-alikes in the middle or as a sentence of the article stay
        ("You can read more about it in the docs.", "You can read more about it in the docs."),
        (
            "This post first appeared on our old blog. Then it grew.",
            "This post first appeared on our old blog. Then it grew.",
        ),
        ("Nothing to strip here.", "Nothing to strip here."),
        ("", ""),
    ],
)
def test_strip_boilerplate(text: str, expected: str) -> None:
    assert strip_boilerplate(text) == expected


def test_strip_boilerplate_on_product_page_samples(shared_dir: object) -> None:
    from pathlib import Path

    page = (Path(str(shared_dir)) / "seeds" / "engineering-feed-page.txt").read_text(encoding="utf-8")
    samples = [line for line in page.splitlines() if "appeared first on" in line or line.endswith("[…]")]
    assert len(samples) >= 5
    for line in samples:
        clean = strip_boilerplate(line)
        assert "appeared first on" not in clean
        assert "Read More" not in clean
        assert not clean.endswith(("[…]", "[...]", "…"))
        assert len(clean) > 20


# --------------------------------------------------------------------------- excerpts


def test_make_excerpt_short_text_unchanged() -> None:
    assert make_excerpt("short  text\n here") == "short text here"


def test_make_excerpt_cuts_at_word_boundary() -> None:
    text = "alpha beta gamma delta epsilon"
    assert make_excerpt(text, 14) == "alpha beta…"
    assert make_excerpt(text, 16) == "alpha beta…"  # "gamma" would be cut: dropped whole
    assert make_excerpt(text, 17) == "alpha beta gamma…"
    assert make_excerpt("one, two, three", 10) == "one, two…"  # no dangling comma
    assert make_excerpt("x" * 50, 10) == ELLIPSIS  # a single over-long word is never cut


def test_excerpt_of_marks_publisher_truncation() -> None:
    assert excerpt_of("Short teaser [...] Read More... The post X appeared first on Y.") == "Short teaser…"
    assert excerpt_of("Complete sentence. The post X appeared first on Y.") == "Complete sentence."
    assert excerpt_of("Write &ldquo;Tell, Don&rsquo;t Ask&rdquo;.") == "Write “Tell, Don’t Ask”."
    long = "word " * 100 + "[…]"
    result = excerpt_of(long, 50)
    assert len(result) <= 50 and result.endswith(ELLIPSIS)


@given(st.text(), st.integers(min_value=1, max_value=400))
@example("a" * 10 + " " + "b" * 10, 15)
@example("  ", 1)
def test_make_excerpt_properties(text: str, limit: int) -> None:
    excerpt = make_excerpt(text, limit)
    normalized = " ".join(text.split())
    assert len(excerpt) <= limit
    if len(normalized) <= limit:
        assert excerpt == normalized
        return
    assert excerpt.endswith(ELLIPSIS)
    body = excerpt[: -len(ELLIPSIS)]
    assert normalized.startswith(body)  # prefix property
    if body:  # no partial words: the cut falls on a word boundary of the text
        words = normalized.split(" ")
        body_words = body.split(" ")
        assert body_words[:-1] == words[: len(body_words) - 1]
        assert words[len(body_words) - 1].startswith(body_words[-1])
        # the last kept word is whole, up to trailing punctuation we trimmed
        assert words[len(body_words) - 1].rstrip(",;:-–—([{") == body_words[-1].rstrip(",;:-–—([{")


@given(st.text(), st.integers(min_value=1, max_value=400))
def test_excerpt_of_respects_limit(text: str, limit: int) -> None:
    assert len(excerpt_of(text, limit)) <= limit


# --------------------------------------------------------------------------- mojibake


def test_repair_mojibake() -> None:
    assert repair_mojibake("We canâ€™t wait") == "We can’t wait"
    assert repair_mojibake("â€œquotedâ€\x9d") == "“quoted”"  # 0x9d has no windows-1252 character
    assert repair_mojibake("cafÃ© and Ã–sterreich") == "café and Österreich"
    assert repair_mojibake("real “quotes” and £5") == "real “quotes” and £5"  # correct text untouched
    assert repair_mojibake("Â") == "Â"


@given(st.text())
def test_repair_mojibake_never_raises(text: str) -> None:
    assert isinstance(repair_mojibake(text), str)


# -- caps ------------------------------------------------------------------------------------
def test_clip() -> None:
    from engfeed.text import clip

    assert clip("short", 10) == "short"
    assert clip("x" * 20, 10) == "x" * 9 + "…"
    assert len(clip("word " * 100, 50)) <= 50


def test_cap_html_cuts_after_a_whole_block_and_stays_well_formed() -> None:
    from engfeed.text import cap_html, sanitize_html

    html = sanitize_html("".join(f"<p>para {i} <b>bold</b> text</p>" for i in range(5000)), None)
    capped, cut = cap_html(html, 10_000)
    assert cut and len(capped.encode()) <= 10_000
    assert capped.endswith("</p>")
    assert sanitize_html(capped, None) == capped  # nothing left open, nothing to repair
    assert cap_html("<p>small</p>", 10_000) == ("<p>small</p>", False)


@given(st.text(alphabet="<>/abpi &;é\n", max_size=3000), st.integers(min_value=0, max_value=2000))
def test_cap_html_never_exceeds_the_limit(raw: str, limit: int) -> None:
    from engfeed.text import cap_html, sanitize_html

    html = sanitize_html(raw, None)
    capped, cut = cap_html(html, limit)
    assert len(capped.encode()) <= max(limit, 0) or (not cut and capped == html)
    if cut:
        assert sanitize_html(capped, None) == capped


def test_deeply_nested_markup_is_capped_too() -> None:
    from engfeed.text import cap_html, sanitize_html

    html = sanitize_html("<blockquote>" * 3000 + "x" * 100_000 + "</blockquote>" * 3000, None)
    capped, cut = cap_html(html, 20_000)
    assert cut and len(capped.encode()) <= 20_000


def test_terminal_safe_removes_c0_and_c1_controls() -> None:
    from engfeed.text import terminal_safe

    hostile = "Not Found\x1b]0;owned\x07\x1b[2J\x9b31mred\r\x00ok\u0085"
    assert terminal_safe(hostile) == "Not Found]0;owned[2J31mredok"
    assert terminal_safe("line one\nline two\ttab", multiline=True) == "line one\nline two\ttab"
    assert terminal_safe("Ünïcødé — fine") == "Ünïcødé — fine"


def test_clean_text_drops_surrogates_from_undecodable_arguments() -> None:
    from engfeed.text import clean_text

    assert clean_text(b"\xff cache".decode("utf-8", "surrogateescape"), 300) == "cache"
    assert clean_text("a\x00b  c", 300) == "a b c"
