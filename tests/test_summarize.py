"""Deep summaries (engfeed.summarize): sentence splitting, the document model, the extractive
summary on real long articles of ``../shared`` (read in place, never copied), its public JSON
shape, caching in the store (``Feed.summary``), ``engfeed summarize`` and the API's article.

Most tests use the lexical embedder (what a store without embeddings gets); one uses MiniLM.
The LLM tier is tested in test_summarize_llm.py.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import engfeed.summarize.extractive
import engfeed.summarize.llm as llm
from conftest import run_cli
from engfeed.embed import Embedder
from engfeed.errors import EngfeedError
from engfeed.feed import LLM_RETRY, Feed
from engfeed.models import Article
from engfeed.parse import parse_feed
from engfeed.store import Store
from engfeed.summarize import (
    MIN_WORDS,
    LexicalEmbedder,
    Summary,
    SummaryResult,
    document_of,
    note_from,
    render_text,
    summarize,
    text_hash,
)
from engfeed.summarize.document import Document, from_html, from_text
from engfeed.summarize.sentences import split_sentences
from httpserver import LocalHTTPServer
from pgserver import NewStore, store_argv

ROOT = Path(__file__).resolve().parents[1]
JUDGED = json.loads((ROOT / "bench" / "summaries" / "data" / "judged.json").read_text(encoding="utf-8"))
JUDGED_IDS = [str(a["id"]) for a in JUDGED["articles"]]
SUMMARY_KEYS = {"overview", "sections", "takeaways", "method", "text_source", "words"}


@pytest.fixture(autouse=True)
def no_llm(monkeypatch: pytest.MonkeyPatch) -> None:
    """Summaries here are extractive: no model server from the environment."""
    monkeypatch.delenv("ENGFEED_LLM_URL", raising=False)
    monkeypatch.delenv("ENGFEED_LLM_MODEL", raising=False)


# -- real articles ---------------------------------------------------------------------------------
@cache
def _feed(path: Path) -> tuple[Article, ...]:
    return tuple(parse_feed(path.read_bytes(), url="").articles)


def real_article(shared: Path, judged_id: str) -> Article:
    """One long article of the judged set (bench/summaries), parsed from its feed in ../shared."""
    [item] = [a for a in JUDGED["articles"] if a["id"] == judged_id]
    [art] = [a for a in _feed(shared / str(item["feed"])) if a.url == item["url"]]
    return art


def short_article(shared: Path) -> Article:
    """A real article whose feed text is under MIN_WORDS words (a teaser)."""
    for art in _feed(shared / "feeds" / "github-blog-2018.xml"):
        if 20 <= len(art.text.split()) < MIN_WORDS:
            return art
    raise AssertionError("no short article in the feed")


def letters(text: str) -> str:
    """Only the letters: compares text across white space, entities and footnote marks."""
    return re.sub(r"[^A-Za-z]+", "", text)


def assert_quoted(summary: Summary, art: Article) -> None:
    """Every unit of the summary is verbatim a sentence of the article."""
    doc = document_of(art)
    sentences = set(doc.sentences)
    body = letters(art.text)
    for unit in summary.units():
        assert unit in sentences, unit
        assert letters(unit) in body, unit


def assert_shape(summary: Summary, art: Article) -> None:
    doc = document_of(art)
    assert 2 <= len(summary.overview_sentences) <= 3
    assert summary.overview == " ".join(summary.overview_sentences)
    assert 3 <= len(summary.takeaways) <= 6
    assert len(set(summary.takeaways)) == len(summary.takeaways), "a takeaway repeats"
    assert not set(summary.takeaways) & set(summary.overview_sentences), "a takeaway repeats the overview"
    chapters = iter(doc.chapters())
    if not doc.chapters():
        assert summary.sections == ()
    for sec in summary.sections:  # in the article's order, each from its own chapter
        assert 1 <= len(sec.points) <= 3
        assert len(set(sec.points)) == len(sec.points)
        members = next((m for heading, m in chapters if heading == sec.heading), None)
        assert members is not None, f"{sec.heading!r} is not a chapter of the article, or out of order"
        own = {s for i in members for s in doc.sections[i].sentences}
        assert set(sec.points) <= own, f"a point of {sec.heading!r} is from another section"
    assert summary.method == "extractive"
    assert summary.text_source == art.text_source == "feed"
    assert summary.words == len(art.text.split())


# -- 1. sentences ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text",
    [
        "We tried several stores, e.g. Redis and Memcached, before settling on one.",
        "Use a durable queue, i.e. SQS, for anything that must not be lost.",
        "Postgres vs. MySQL is an old debate that we did not reopen.",
        "Smith et al. showed that tail latency dominates at fan-out.",
        "Smith et al. (2019) showed that tail latency dominates at fan-out.",
        "We upgraded to v1.2.3 last week and the leak was gone.",
        "We run Python 3.11 in production since March.",
        "The new encoder was 3.5x faster on the same hardware.",
        "Availability reached 99.99% over the quarter.",
        "The spec lives at example.com/a.b and nowhere else.",
        "See https://example.com/docs/v2.1/index.html for the full API.",
        "Edit config.yaml and ~/.config/app.toml before you restart.",
        "The design came from J. Smith and R. K. Jones on the storage team.",
        "Fig. 3 shows the p99 before and after the change.",
        "Item No. 5 on the list was the slowest query.",
        "The U.S. region took most of the traffic.",
        "Dr. Lee reviewed the postmortem.",
        "It took approx. 40 ms per request.",
        "We waited... and then the replica caught up.",
        "Call client.get() and read resp.json() once.",
        "Step 2. Run the migration.",
    ],
)
def test_split_keeps_engineering_prose_whole(text: str) -> None:
    assert split_sentences(text) == [text]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("We sharded the ledger. Writes now scale.", ["We sharded the ledger.", "Writes now scale."]),
        ("Is it fast? Yes! It is.", ["Is it fast?", "Yes!", "It is."]),
        ('He said "it works." Then he left.', ['He said "it works."', "Then he left."]),
        ("He said “it works.” Then he left.", ["He said “it works.”", "Then he left."]),
        ("(This is an aside.) The point stands.", ["(This is an aside.)", "The point stands."]),
        ("We saw 2 errors. 3 more came later.", ["We saw 2 errors.", "3 more came later."]),
        ("We waited... Then it worked.", ["We waited...", "Then it worked."]),
        ("It was 3.5x faster. Availability hit 99.99%.", ["It was 3.5x faster.", "Availability hit 99.99%."]),
        ("We upgraded to v1.2.3. It fixed the leak.", ["We upgraded to v1.2.3.", "It fixed the leak."]),
        ("Edit config.yaml. Then restart.", ["Edit config.yaml.", "Then restart."]),
        ("It ends with e.g. Redis. The next one.", ["It ends with e.g. Redis.", "The next one."]),
        ('Tail latency matters. "Fast" is not enough.', ["Tail latency matters.", '"Fast" is not enough.']),
        # Abbreviations that are also the end of a sentence when no number or name follows.
        ("The answer is no. We moved on.", ["The answer is no.", "We moved on."]),
        (
            "Latency fell to 40 ms. The rest was queueing.",
            ["Latency fell to 40 ms.", "The rest was queueing."],
        ),
        ("It took 5 min. Then it failed.", ["It took 5 min.", "Then it failed."]),
        (
            "We verify tables, files, blocks, etc. All of these run off-peak.",
            ["We verify tables, files, blocks, etc.", "All of these run off-peak."],
        ),
        (
            "As described in Sculley et al. They are pipelines too.",
            ["As described in Sculley et al.", "They are pipelines too."],
        ),
        ("It spans business lines . We own checkout.", ["It spans business lines .", "We own checkout."]),
    ],
)
def test_split_ends_sentences(text: str, expected: list[str]) -> None:
    assert split_sentences(text) == expected


def test_split_collapses_white_space() -> None:
    assert split_sentences("  One  line\nwraps here.\n\n\tNext\u00a0one.  ") == [
        "One line wraps here.",
        "Next one.",
    ]
    assert split_sentences("") == split_sentences(" \n\t ") == []


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_split_never_raises_and_only_cuts_text(text: str) -> None:
    out = split_sentences(text)
    collapsed = " ".join(text.split())
    for sentence in out:
        assert sentence and sentence == sentence.strip() and "  " not in sentence
        assert sentence in collapsed
    assert " ".join(out) == collapsed  # nothing lost, nothing added, in order


_PLAIN = ["cache", "latency", "shard", "replica", "the", "queue", "throughput", "region", "was", "we", "on",
          "Kafka", "Postgres", "Netflix", "rollout", "budget", "fell", "for", "every", "request"]  # fmt: skip
_TRICKY = [
    "e.g. Redis", "i.e. the cache", "Postgres vs. MySQL", "Smith et al. showed", "Smith et al. (2019) found",
    "v1.2.3", "Python 3.11", "3.5x", "99.99%", "example.com/a.b", "config.yaml", "J. Smith", "Fig. 3",
    "No. 5", "the U.S. team", "Dr. Lee", "approx. 40 ms", "node.js", "p99", "client.get()", "1,000",
    "https://example.com/docs/v2.1/index.html", "a.k.a. Bob",
]  # fmt: skip
_STARTS = ["We", "The", "Our", "Latency", "Netflix", "3", '"Fast', "(Note"]
_ENDS = [".", "!", "?", '."', ".)", "...", "!)"]


@st.composite
def prose_sentence(draw: st.DrawFn) -> str:
    middle = draw(st.lists(st.sampled_from(_PLAIN + _TRICKY), min_size=2, max_size=10))
    last = draw(st.sampled_from([w for w in _PLAIN if w.islower() and len(w) > 3]))
    return " ".join([draw(st.sampled_from(_STARTS)), *middle, last]) + draw(st.sampled_from(_ENDS))


@settings(max_examples=300, deadline=None)
@given(st.lists(prose_sentence(), min_size=1, max_size=8), st.sampled_from([" ", "\n", "  \t", "\n\n"]))
def test_split_recovers_generated_engineering_sentences(sentences: list[str], gap: str) -> None:
    assert split_sentences(gap.join(sentences)) == sentences


# -- 2. the document model -------------------------------------------------------------------------
def test_headings_make_sections_and_chapters() -> None:
    doc = from_html(
        "<p>Intro one. Intro two.</p>"
        "<h2>Design</h2><p>We sharded it. Each shard owns a range.</p>"
        "<h3>Routing</h3><p>A router maps keys to shards.</p>"
        "<h2>Results</h2><ul><li>Writes scale.</li><li>Reads too.</li></ul>",
        "Title",
    )
    assert doc.title == "Title"
    assert [(s.heading, s.level, s.sentences) for s in doc.sections] == [
        ("", 0, ["Intro one.", "Intro two."]),
        ("Design", 2, ["We sharded it.", "Each shard owns a range."]),
        ("Routing", 3, ["A router maps keys to shards."]),
        ("Results", 2, ["Writes scale.", "Reads too."]),
    ]
    assert doc.chapters() == [("Design", [1, 2]), ("Results", [3])]
    assert doc.words == sum(len(s.split()) for s in doc.sentences) == 22


def test_chapters_need_two_headings_with_text_at_one_level() -> None:
    one = from_html("<p>Intro.</p><h2>Only</h2><p>Body text.</p>")
    assert one.chapters() == []
    empty = from_html("<h2>A</h2><p>Text under A.</p><h2>B</h2><h2>C</h2>")  # B and C have no text
    assert empty.chapters() == []
    # One h2 but two h3 with text: the chapters are the h3s.
    deeper = from_html("<h2>Part</h2><h3>First</h3><p>One.</p><h3>Second</h3><p>Two.</p>")
    assert [h for h, _ in deeper.chapters()] == ["First", "Second"]
    assert from_text("One sentence. Another.").chapters() == []
    assert from_text("One sentence. Another.").sections[0].sentences == ["One sentence.", "Another."]


def test_code_tables_captions_and_scripts_give_no_sentences() -> None:
    doc = from_html(
        "<p>Prose before the code.</p>"
        "<pre><code>SECRETCODE = connect(host). Then = run()</code></pre>"
        "<table><tr><td>SECRETCELL. Value.</td></tr></table>"
        "<figure><img src='x.png' alt='SECRETALT'><figcaption>SECRETCAPTION. Figure.</figcaption></figure>"
        "<script>var SECRETSCRIPT = 1;</script><style>.SECRETSTYLE{}</style>"
        "<noscript>SECRETNOSCRIPT.</noscript><nav>SECRETNAV.</nav>"
        "<p>Inline <code>Client.get()</code> stays. The end.</p>"
    )
    text = " ".join(doc.sentences)
    assert "SECRET" not in text
    assert doc.sentences == ["Prose before the code.", "Inline Client.get() stays.", "The end."]


@pytest.mark.parametrize(
    "heading",
    ["Acknowledgements", "Acknowledgments", "References", "We’re hiring!", "We're hiring", "Footnotes",
     "About the author", "Further reading", "Special thanks to", "Appendix A: Useful commands",
     "Share this:"],
)  # fmt: skip
def test_sections_that_are_not_the_argument_are_dropped(heading: str) -> None:
    doc = from_html(
        f"<h2>Design</h2><p>We kept the design.</p><h2>{heading}</h2><p>DROPPED text here.</p>"
        "<h3>Sub</h3><p>DROPPED as well.</p><h2>Results</h2><p>Kept results.</p>"
    )
    assert [s.heading for s in doc.sections] == ["Design", "Results"]
    assert not any("DROPPED" in s for s in doc.sentences)


@pytest.mark.parametrize(
    "heading",
    ["Notes on sharding", "Resources and quotas", "Career growth", "Related work", "Thanks to caching"],
)
def test_headings_that_only_start_like_boilerplate_are_kept(heading: str) -> None:
    doc = from_html(f"<h2>Design</h2><p>We kept the design.</p><h2>{heading}</h2><p>Kept text here.</p>")
    assert [s.heading for s in doc.sections] == ["Design", heading]


def test_medium_byline_and_trailer_are_removed() -> None:
    doc = from_html(
        "<p>Jane Doe7 min read·Aug 12, 2026 Our system serves 5 million requests a day. It is fast.</p>"
        "<p>The rest of the article.</p>"
        '<hr><p><a href="https://medium.com/x">Our system</a> was originally published in '
        '<a href="https://medium.com/p">Some Blog</a> on Medium, where people are continuing the '
        "conversation by highlighting and responding to this story.</p>"
    )
    assert doc.sentences == [
        "Our system serves 5 million requests a day.",
        "It is fast.",
        "The rest of the article.",
    ]
    ago = from_html("<p>Sam Lee3 min read·2 days ago We moved the queue.</p>")
    assert ago.sentences == ["We moved the queue."]
    untouched = from_html("<p>This post takes 7 min read time for most people.</p>")
    assert untouched.sentences == ["This post takes 7 min read time for most people."]


def test_footnote_marks_go_but_powers_stay() -> None:
    doc = from_html(
        "<p>About 40% of prefixes are covered<sup>1</sup>. A range holds 2<sup>8</sup> addresses. "
        "The naive join is O(n<sup>2</sup>). See the note<sup>[2]</sup>. It launched in 2019<sup>3</sup>. "
        "Errors fell to 10<sup>-6</sup> in the 21<sup>st</sup> release.</p>"
    )
    assert doc.sentences == [
        "About 40% of prefixes are covered.",
        "A range holds 2^8 addresses.",
        "The naive join is O(n^2).",
        "See the note.",
        "It launched in 2019.",
        "Errors fell to 10^-6 in the 21st release.",
    ]


def test_a_superscript_after_a_long_number_is_a_power_and_a_line_break_is_a_space() -> None:
    doc = from_html(
        "<p>Checkout latency at the p99 fell<br>from 2.1 seconds to 340 milliseconds. "
        "It serves 1000<sup>2</sup> reads a second.<br><br>A new paragraph starts here.</p>"
        "<p>It costs 500<sup>1</sup> a month.</p>"
    )
    assert doc.sentences == [
        "Checkout latency at the p99 fell from 2.1 seconds to 340 milliseconds.",  # not cut at <br>
        "It serves 1000^2 reads a second.",  # the figure kept whole
        "A new paragraph starts here.",
        "It costs 500 a month.",  # a footnote mark, not a power
    ]


_BLOCK_TEXT = st.text(st.characters(blacklist_characters="<>&", blacklist_categories=["Cs"]), max_size=80)


@st.composite
def html_blocks(draw: st.DrawFn) -> tuple[str, list[str]]:
    """Well-formed article HTML and the texts its prose blocks hold."""
    parts: list[str] = []
    prose: list[str] = []
    for kind in draw(
        st.lists(st.sampled_from(["p", "li", "h2", "h3", "pre", "script", "table"]), max_size=12)
    ):
        text = draw(_BLOCK_TEXT)
        if kind in ("pre", "script"):
            parts.append(f"<{kind}>ZQXHIDDEN {text}</{kind}>")
        elif kind == "table":
            parts.append(f"<table><tr><td>ZQXHIDDEN {text}</td></tr></table>")
        elif kind == "li":
            parts.append(f"<ul><li>{text}</li></ul>")
            prose.append(text)
        else:
            parts.append(f"<{kind}>{text}</{kind}>")
            prose.append(text)
    return "".join(parts), prose


@settings(max_examples=200, deadline=None)
@given(html_blocks())
def test_document_sentences_come_from_prose_blocks(case: tuple[str, list[str]]) -> None:
    html, prose = case
    doc = from_html(html)
    blocks = [" ".join(p.split()) for p in prose]
    for sentence in doc.sentences:
        assert sentence and sentence == sentence.strip()
        assert "ZQXHIDDEN" not in sentence
        assert any(sentence in b for b in blocks), sentence
    for sec in doc.sections:
        assert sec.heading == sec.heading.strip() and len(sec.heading) <= 200
    for heading, members in doc.chapters():
        assert heading and members and all(0 <= i < len(doc.sections) for i in members)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from("<>/=\"' abcdehlpr1.!?&;#x[]-\n")) | st.text())
def test_document_never_raises_on_arbitrary_html(html: str) -> None:
    doc = from_html(html, "t")
    assert isinstance(doc, Document)
    for sentence in doc.sentences:
        assert sentence and sentence == sentence.strip()
    doc.chapters()


def test_lexical_embedder_rows() -> None:
    texts = ["Caching cut p99 latency by 40%.", "", "the and of", "Caching cut p99 latency by 40%."]
    model = LexicalEmbedder.from_texts(texts)
    vecs = model.embed(texts)
    assert vecs.shape == (4, model.dim) and vecs.dtype == np.float32
    assert np.allclose(np.linalg.norm(vecs[[0, 3]], axis=1), 1.0)
    assert not vecs[1].any() and not vecs[2].any()  # nothing to weigh: a zero row, not NaN
    assert float(vecs[0] @ vecs[3]) == pytest.approx(1.0)
    again = LexicalEmbedder.from_texts(texts).embed(texts)
    assert np.array_equal(vecs, again)
    assert np.array_equal(model.embed_query(texts[0]), vecs[0])


# -- 3. the extractive summary on real articles ----------------------------------------------------
@pytest.mark.parametrize("judged_id", JUDGED_IDS)
def test_real_article_summary_quotes_the_article_in_shape(shared_dir: Path, judged_id: str) -> None:
    art = real_article(shared_dir, judged_id)
    result = summarize(art)
    assert result.summary is not None and result.reason is None, result.reason
    assert_quoted(result.summary, art)
    assert_shape(result.summary, art)


def test_summary_is_deterministic(shared_dir: Path) -> None:
    for judged_id in ("a05", "a13", "a24"):
        art = real_article(shared_dir, judged_id)
        first, second = summarize(art).summary, summarize(replace(art)).summary
        assert first is not None and second is not None
        assert first.to_json() == second.to_json()
        assert first.overview_sentences == second.overview_sentences


def test_summary_with_the_real_model(shared_dir: Path) -> None:
    from engfeed.embed import get_embedder

    model = get_embedder()
    for judged_id in ("a13", "a21"):
        art = real_article(shared_dir, judged_id)
        first = summarize(art, model).summary
        assert first is not None
        assert_quoted(first, art)
        assert_shape(first, art)
        again = summarize(art, model).summary
        assert again is not None and again.to_json() == first.to_json()


def test_code_heavy_article_is_summarised_from_its_prose() -> None:
    prose = " ".join(
        f"Step {i} of the rollout moved the scheduler for region {i} onto the new worker pool."
        for i in range(14)
    )
    code = "\n".join(
        f"pool.assign(region = {i}, timeout = 30, level = 2)  # drain it first" for i in range(60)
    )
    art = replace(article("code-heavy", prose), content_html=f"<p>{prose}</p><pre><code>{code}</code></pre>")
    art = replace(art, text=f"{prose}\n\n{code}")  # what the feed text holds: the code too
    doc = document_of(art)
    assert doc.words >= MIN_WORDS
    assert not any("pool.assign" in s for s in doc.sentences)


def test_articles_without_headings_get_no_sections(shared_dir: Path) -> None:
    art = real_article(shared_dir, "a25")  # a Medium profile with no headings in its feed HTML
    assert document_of(art).chapters() == []
    summary = summarize(art).summary
    assert summary is not None and summary.sections == ()


def test_short_articles_get_no_summary(shared_dir: Path) -> None:
    art = short_article(shared_dir)
    result = summarize(art)
    assert result.summary is None and result.to_json() is None
    assert result.reason and "too short" in result.reason and str(MIN_WORDS) in result.reason
    made = article("short", " ".join(["word"] * (MIN_WORDS - 1)) + ".")
    assert summarize(made).summary is None


def test_a_repeated_sentence_is_quoted_once() -> None:
    same = "We cache cache cache cache cache."
    longer = (
        "We cache cache cache cache cache cache cache cache cache cache cache cache cache cache cache cache."
    )
    paragraphs = [f"{same} {same}"] * 5 + [f"{same} {longer[:-1]} today."] + [f"{longer} {longer}"] * 2
    summary = summarize(article("repeats", paragraphs, title="Cache")).summary
    assert summary is not None
    assert len(set(summary.overview_sentences)) == len(summary.overview_sentences)
    assert len(set(summary.takeaways)) == len(summary.takeaways)
    assert not set(summary.takeaways) & set(summary.overview_sentences)


def test_sentences_pointing_at_figures_are_not_takeaways() -> None:
    figure = "As shown in the figure above, the cache hit rate of the replica shards rose to 93% in a week."
    facts = [
        f"The {w} layer of the cache moved to {n} replica shards, which cut p99 latency by {n * 3}%."
        for n, w in ((4, "index"), (8, "queue"), (12, "batch"), (16, "region"), (20, "retry"))
    ]
    paragraphs = [
        " ".join(facts[:3]),
        figure,
        " ".join(facts[3:]),
        " ".join(f"{f[:-1]} again." for f in facts),
    ]
    summary = summarize(article("figure", paragraphs, title="Cache replica shards")).summary
    assert summary is not None
    assert figure not in summary.takeaways and figure not in summary.overview_sentences


def article(
    uid: str, paragraphs: str | list[str], *, title: str = "Caching at scale", html: bool = True
) -> Article:
    paras = [paragraphs] if isinstance(paragraphs, str) else paragraphs
    return Article(
        uid=uid,
        url=f"https://example.com/{uid}",
        title=title,
        published=datetime(2025, 3, 4, tzinfo=UTC),
        source="Example",
        content_html="".join(f"<p>{p}</p>" for p in paras) if html else "",
        text="\n\n".join(paras),
    )


_WORDS = ["cache", "latency", "shard", "replica", "queue", "throughput", "region", "failover", "index",
          "compaction", "batch", "retry", "deploy", "canary", "budget", "Kafka", "Postgres", "p99",
          "40%"]  # fmt: skip


@st.composite
def generated_article(draw: st.DrawFn) -> tuple[Article, list[str], list[str]]:
    """A multi-paragraph article (HTML with optional headings) and its sentences and headings."""
    sentences: list[str] = []
    headings: list[str] = []
    html: list[str] = []
    paragraphs: list[str] = []
    for p in range(draw(st.integers(4, 9))):
        if p and draw(st.booleans()):
            heading = f"Part {p} {draw(st.sampled_from(_WORDS))}"
            headings.append(heading)
            html.append(f"<h2>{heading}</h2>")
        para = []
        for _ in range(draw(st.integers(2, 6))):
            words = draw(st.lists(st.sampled_from(_WORDS), min_size=5, max_size=16))
            step = f" in step {len(sentences) + len(para)}"  # no two alike: repeats are another test
            para.append("We " + " ".join(words) + step + draw(st.sampled_from([".", "!", " today."])))
        sentences += para
        paragraphs.append(" ".join(para))
        html.append(f"<p>{paragraphs[-1]}</p>")
    text = "\n\n".join(paragraphs)
    art = Article(
        uid="generated", url="https://example.com/g", title=draw(st.sampled_from(_WORDS)).title(),
        published=datetime(2025, 3, 4, tzinfo=UTC), content_html="".join(html), text=text,
    )  # fmt: skip
    return art, sentences, headings


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(generated_article())
def test_generated_article_summary_only_quotes_its_sentences(
    case: tuple[Article, list[str], list[str]],
) -> None:
    art, sentences, headings = case
    result = summarize(art)
    if result.summary is None:
        assert result.reason
        return
    summary = result.summary
    quoted = set(sentences)
    for unit in summary.units():
        assert unit in quoted, unit
    assert 1 <= len(summary.overview_sentences) <= 3
    assert 1 <= len(summary.takeaways) <= 6
    assert len(set(summary.takeaways)) == len(summary.takeaways)
    assert {s.heading for s in summary.sections} <= set(headings)
    assert all(1 <= len(s.points) <= 3 for s in summary.sections)
    assert summarize(art).to_json() == result.to_json()


# -- 4. the JSON shape -----------------------------------------------------------------------------
def test_json_shape_and_round_trip(shared_dir: Path) -> None:
    art = real_article(shared_dir, "a01")
    summary = summarize(art).summary
    assert summary is not None and summary.sections
    data = summary.to_json()
    assert set(data) == SUMMARY_KEYS
    assert isinstance(data["overview"], str) and isinstance(data["words"], int)
    assert isinstance(data["takeaways"], list) and all(isinstance(t, str) for t in data["takeaways"])
    assert isinstance(data["sections"], list)
    for sec in data["sections"]:
        assert set(sec) == {"heading", "points"}
        assert isinstance(sec["heading"], str) and all(isinstance(p, str) for p in sec["points"])
    assert data["method"] == "extractive" and data["text_source"] == "feed"
    text = json.dumps(data, ensure_ascii=False)
    loaded = Summary.from_json(json.loads(text))
    assert loaded.to_json() == data
    assert (loaded.overview, loaded.sections, loaded.takeaways) == (
        summary.overview,
        summary.sections,
        summary.takeaways,
    )
    assert SummaryResult(summary).to_json() == data


def test_from_json_tolerates_missing_parts() -> None:
    loaded = Summary.from_json({"overview": "One.", "sections": "nonsense", "takeaways": None})
    assert loaded.to_json() == {
        "overview": "One.",
        "sections": [],
        "takeaways": [],
        "method": "extractive",
        "text_source": "feed",
        "words": 0,
    }


def test_render_text_and_note(shared_dir: Path) -> None:
    art = real_article(shared_dir, "a01")
    summary = summarize(art).summary
    assert summary is not None
    text = render_text(summary, art.title)
    assert text.startswith(art.title + "\n")
    assert "Key takeaways" in text and "Sections" in text
    assert all(f"  - {t}" in text for t in summary.takeaways)
    assert "(extractive, from the feed text," in text
    note = note_from(summary)
    assert note.startswith(summary.overview + "\n\n1. " + summary.takeaways[0])
    assert note.endswith("\n") and f"{len(summary.takeaways)}. " in note


# -- 5. caching in the store -----------------------------------------------------------------------
@pytest.fixture
def store_feed(new_store: NewStore, shared_dir: Path) -> Iterator[tuple[Feed, Article, Article]]:
    """A Feed (lexical summaries) over a store holding a long and a short real article, on
    each backend (summaries are cached in the store)."""
    long_art, short_art = real_article(shared_dir, "a13"), short_article(shared_dir)
    store = Store(new_store("s"))
    with store.transaction() as tx:
        store.upsert_articles([long_art, short_art], source_id=None, conn=tx)
    feed = Feed(store, embedder=None)
    stored_long, stored_short = feed.article(long_art.uid), feed.article(short_art.uid)
    assert stored_long is not None and stored_short is not None
    yield feed, stored_long, stored_short
    feed.close()


@pytest.fixture
def extractive_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts runs of the extractive summariser."""
    calls: list[int] = []
    real = engfeed.summarize.extractive.summarize

    def counting(doc: Document, embedder: Embedder) -> engfeed.summarize.extractive.Extract:
        calls.append(1)
        return real(doc, embedder)

    monkeypatch.setattr(engfeed.summarize.extractive, "summarize", counting)
    return calls


def test_summary_is_made_once_and_stored(
    store_feed: tuple[Feed, Article, Article], extractive_calls: list[int]
) -> None:
    feed, art, _ = store_feed
    assert art.id is not None
    assert feed.summary(art, compute=False).summary is None
    assert feed.summary(art, compute=False).reason == "not summarised yet"
    assert extractive_calls == []
    first = feed.summary(art)
    assert first.summary is not None and first.seconds > 0 and len(extractive_calls) == 1
    method = feed.summary_method()
    assert feed.store.summaries.get(art.id, text_hash(art, method)) is not None
    again = feed.summary(art)
    again_stored = feed.summary(art, compute=False)
    assert len(extractive_calls) == 1, "a stored summary was made again"
    assert again.summary is not None and again.seconds == 0.0
    assert again.to_json() == again_stored.to_json() == first.to_json()
    assert feed.stored_summaries([art]) == {art.uid: first.to_json()}


def test_short_article_is_neither_summarised_nor_stored(
    store_feed: tuple[Feed, Article, Article], extractive_calls: list[int]
) -> None:
    feed, _, short = store_feed
    result = feed.summary(short)
    assert result.summary is None and result.reason and "too short" in result.reason
    assert extractive_calls == [] and feed.stored_summaries([short]) == {}


def test_unstored_article_is_refused(store_feed: tuple[Feed, Article, Article]) -> None:
    feed, art, _ = store_feed
    with pytest.raises(EngfeedError):
        feed.summary(replace(art, id=None))


def test_summary_is_remade_when_the_feed_changes_the_text(
    store_feed: tuple[Feed, Article, Article], extractive_calls: list[int]
) -> None:
    feed, art, _ = store_feed
    assert art.id is not None
    feed.summary(art)
    # The same content again: unchanged, the summary stays.
    with feed.store.transaction() as tx:
        written = feed.store.upsert_articles([replace(art, id=None)], source_id=None, conn=tx)
    assert written.unchanged == 1 and feed.stored_summaries([art])
    # The feed rewrites the article: the stored summary goes in the same write.
    added = (
        "Since then we moved every replica of the metadata store to a second region, which cut "
        "failover time from forty minutes to ninety seconds for the whole fleet."
    )
    changed = replace(
        art, id=None, content_html=art.content_html + f"<p>{added}</p>", text=art.text + "\n\n" + added
    )
    with feed.store.transaction() as tx:
        written = feed.store.upsert_articles([changed], source_id=None, conn=tx)
    assert written.updated == [art.id]
    assert feed.stored_summaries([art]) == {}
    assert feed.store.summaries.get(art.id, text_hash(art, feed.summary_method())) is None
    fresh = feed.article(art.uid)
    assert fresh is not None and added in fresh.text
    remade = feed.summary(fresh)
    assert remade.summary is not None and len(extractive_calls) == 2
    assert_quoted(remade.summary, fresh)
    assert remade.summary.words == len(fresh.text.split())
    feed.summary(fresh)
    assert len(extractive_calls) == 2


def test_warm_summaries_makes_the_newest_missing_ones_once(
    store_feed: tuple[Feed, Article, Article], extractive_calls: list[int]
) -> None:
    feed, long_art, short_art = store_feed
    assert long_art.id is not None and short_art.id is not None
    assert feed.warm_summaries() == 1  # the long article; the short one gets none
    assert feed.store.summaries.get_many([long_art.id, short_art.id], feed.summary_method()).keys() == {
        long_art.id
    }
    assert feed.warm_summaries() == 0 and len(extractive_calls) == 1  # made once
    feed.summary(long_art)
    assert len(extractive_calls) == 1  # and the article page reads the stored one
    assert feed.warm_summaries(limit=0) == 0


def test_the_servers_background_refresh_makes_summaries_ahead(
    store_feed: tuple[Feed, Article, Article], extractive_calls: list[int]
) -> None:
    from engfeed.web.app import create_app

    feed, long_art, _ = store_feed
    app = create_app(feed, refresh_interval_min=0, allowed_hosts=["testserver"])
    refresher = app.state.refresher
    assert refresher.trigger(only_due=False) and refresher.wait_idle(timeout=60)
    assert refresher.last.ok and "1 summary made ahead" in refresher.last.summary
    assert len(extractive_calls) == 1
    assert feed.summary(long_art, compute=False).summary is not None


def test_summary_is_remade_when_the_method_changes(
    store_feed: tuple[Feed, Article, Article],
    extractive_calls: list[int],
    monkeypatch: pytest.MonkeyPatch,
    http_server: LocalHTTPServer,
) -> None:
    feed, art, _ = store_feed
    assert art.id is not None
    plain = feed.summary_method()
    feed.summary(art)
    assert feed.store.summaries.get_many([art.id], plain)
    # A model server (down: it answers 500) changes the method: the summary is made again.
    http_server.route("/v1/chat/completions", status=500, body=b"<html>Internal Server Error</html>")
    monkeypatch.setenv("ENGFEED_LLM_URL", http_server.base)
    monkeypatch.setenv("ENGFEED_LLM_MODEL", "tiny")
    monkeypatch.setattr(llm, "TIMEOUT", 5.0)
    with_llm = feed.summary_method()
    assert with_llm != plain and "llm:tiny@" in with_llm
    result = feed.summary(art)
    assert len(extractive_calls) == 2
    assert result.summary is not None and result.summary.method == "extractive"  # the fallback
    assert len(http_server.requests) == 1
    assert feed.store.summaries.get_many([art.id], with_llm) and not feed.store.summaries.get_many(
        [art.id], plain
    )
    feed.summary(art)
    assert len(extractive_calls) == 2 and len(http_server.requests) == 1
    # An hour later the model is asked again (the outage may be over); still down: kept.
    with feed.store.transaction() as tx:
        tx.execute("UPDATE summaries SET created = created - ?", (int(LLM_RETRY.total_seconds()) + 60,))
    feed.summary(art)
    assert len(http_server.requests) == 2 and len(extractive_calls) == 3
    feed.summary(art)
    assert len(http_server.requests) == 2
    # Back to no server: made again, and nothing sent.
    monkeypatch.delenv("ENGFEED_LLM_URL")
    assert feed.summary_method() == plain
    feed.summary(art)
    assert len(extractive_calls) == 4 and len(http_server.requests) == 2


# -- 6. the command line ---------------------------------------------------------------------------
@pytest.fixture
def cli_db(new_store: NewStore, shared_dir: Path, cli_env: None) -> tuple[list[str], Article, Article]:
    """The CLI option naming a store (on each backend) that holds a long and a short article."""
    long_art, short_art = real_article(shared_dir, "a13"), short_article(shared_dir)
    location = new_store("cli")
    store = Store(location)
    with store.transaction() as tx:
        store.upsert_articles([long_art, short_art], source_id=None, conn=tx)
    store.close_all()
    return store_argv(location), long_art, short_art


def test_cli_summarize_json(
    cli_db: tuple[list[str], Article, Article], capsys: pytest.CaptureFixture[str]
) -> None:
    db, art, _ = cli_db
    code, out, err = run_cli(capsys, *db, "summarize", art.uid, "--json")
    assert code == 0, err
    data = json.loads(out)
    assert set(data) == SUMMARY_KEYS
    assert data["method"] == "extractive" and data["words"] == len(art.text.split())
    assert 3 <= len(data["takeaways"]) <= 6
    assert all(set(s) == {"heading", "points"} for s in data["sections"])
    # The second run reads the stored summary: the same answer.
    code, again, _ = run_cli(capsys, *db, "summarize", art.uid, "--json")
    assert code == 0 and json.loads(again) == data


def test_cli_summarize_human(
    cli_db: tuple[list[str], Article, Article], capsys: pytest.CaptureFixture[str]
) -> None:
    db, art, _ = cli_db
    code, out, err = run_cli(capsys, *db, "summarize", art.uid)
    assert code == 0, err
    assert out.startswith(art.title) and "Key takeaways" in out and "(extractive, from the feed text" in out


def test_cli_summarize_short_article(
    cli_db: tuple[list[str], Article, Article], capsys: pytest.CaptureFixture[str]
) -> None:
    db, _, short = cli_db
    code, out, err = run_cli(capsys, *db, "summarize", short.uid, "--json")
    assert code == 0
    assert json.loads(out) is None
    assert "no summary" in err and "too short" in err
    code, out, _ = run_cli(capsys, *db, "summarize", short.uid)
    assert code == 0 and out.startswith("No summary: too short")


def test_cli_summarize_unknown_id(
    cli_db: tuple[list[str], Article, Article], capsys: pytest.CaptureFixture[str]
) -> None:
    db, _, _ = cli_db
    code, out, err = run_cli(capsys, *db, "summarize", "no-such-article", "--json")
    assert code == 1 and out == ""
    assert "no such article" in err and "Traceback" not in err


# -- 7. the API ------------------------------------------------------------------------------------
def test_api_article_has_its_summary(new_store: NewStore, shared_dir: Path) -> None:
    from test_web import build_feed, client_for

    long_art, short_art = real_article(shared_dir, "a24"), short_article(shared_dir)
    feed = build_feed(new_store("api"), [long_art, short_art])
    try:
        with client_for(feed) as client:
            r = client.get(f"/api/articles/{long_art.uid}")
            assert r.status_code == 200
            body = r.json()
            assert body["summary_reason"] is None
            summary = body["summary"]
            assert set(summary) == SUMMARY_KEYS
            assert all(set(s) == {"heading", "points"} for s in summary["sections"])
            stored = feed.article(long_art.uid)
            assert stored is not None
            assert summary == feed.summary(stored).to_json()  # the stored one
            doc = client.get("/openapi.json").json()
            assert set(doc["components"]["schemas"]["Summary"]["required"]) == SUMMARY_KEYS

            r = client.get(f"/api/articles/{short_art.uid}")
            assert r.status_code == 200
            body = r.json()
            assert body["summary"] is None and "too short" in body["summary_reason"]
    finally:
        feed.close()
