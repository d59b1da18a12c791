"""Deep summaries of long articles, made locally: an overview, a summary per section, and
the key takeaways, in the shape of ``../shared/seeds/deep-summary-example.txt``.

The default method is extractive (engfeed.summarize.extractive): every unit of a summary is
a sentence of the article, so it can be incomplete but never wrong about what the article
says. An optional tier asks a local model server and keeps only what the article supports
(engfeed.summarize.llm). ``summarize --json`` and the API's ``summary`` share one public
shape (:meth:`Summary.to_json`; extend, never break)::

    {"overview": str, "sections": [{"heading": str, "points": [str]}], "takeaways": [str],
     "method": "extractive" | "llm:<model>", "text_source": "feed" | "page", "words": int}

Articles under :data:`MIN_WORDS` words get none (``None`` with a reason).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

from engfeed.embed import Embedder
from engfeed.models import Article
from engfeed.summarize import extractive, llm
from engfeed.summarize.document import Document, from_html, from_text
from engfeed.summarize.lexical import LexicalEmbedder
from engfeed.summarize.sentences import split_sentences

MIN_WORDS = 150

__all__ = [
    "MIN_WORDS",
    "Document",
    "LexicalEmbedder",
    "Summary",
    "SummaryResult",
    "SummarySection",
    "document_of",
    "note_from",
    "render_text",
    "summarize",
    "text_hash",
]


@dataclass(frozen=True, slots=True)
class SummarySection:
    heading: str
    points: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Summary:
    overview: str
    sections: tuple[SummarySection, ...]
    takeaways: tuple[str, ...]
    method: str  # "extractive" or "llm:<model>"
    text_source: str  # "feed" or "page"
    words: int  # of the article text summarised
    #: The overview's sentences as chosen (not part of the JSON shape; re-split when loaded).
    overview_sentences: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {
            "overview": self.overview,
            "sections": [{"heading": s.heading, "points": list(s.points)} for s in self.sections],
            "takeaways": list(self.takeaways),
            "method": self.method,
            "text_source": self.text_source,
            "words": self.words,
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Summary:
        sections = data.get("sections")
        takeaways = data.get("takeaways")
        return cls(
            overview=str(data.get("overview") or ""),
            sections=tuple(
                SummarySection(str(s.get("heading", "")), tuple(str(p) for p in s.get("points", [])))
                for s in (sections if isinstance(sections, list) else [])
                if isinstance(s, dict)
            ),
            takeaways=tuple(str(t) for t in (takeaways if isinstance(takeaways, list) else [])),
            method=str(data.get("method") or "extractive"),
            text_source=str(data.get("text_source") or "feed"),
            words=int(str(data.get("words") or 0)),
        )

    def units(self) -> list[str]:
        """Every sentence or bullet of the summary, overview first (for evaluation)."""
        return [
            *(self.overview_sentences or split_sentences(self.overview)),
            *self.takeaways,
            *(p for s in self.sections for p in s.points),
        ]


@dataclass(frozen=True, slots=True)
class SummaryResult:
    """A summary, or why there is none."""

    summary: Summary | None
    reason: str | None = None
    seconds: float = 0.0  # time spent making it (0 when it came from the store)

    def to_json(self) -> dict[str, object] | None:
        return self.summary.to_json() if self.summary else None


def document_of(article: Article) -> Document:
    """The article's best text as a document: the page's HTML, else the feed's, else text."""
    html = article.page_html if article.text_source == "page" and article.page_html else ""
    html = html or article.content_html or article.summary_html
    if html:
        doc = from_html(html, article.title)
        if doc.words >= MIN_WORDS or doc.words >= 0.5 * len(article.text.split()):
            return doc
    return from_text(article.text, article.title)


def text_hash(article: Article, method_key: str) -> str:
    """Names the text (and method) a summary is made from: stored summaries of other text
    are made again."""
    h = hashlib.sha1(usedforsecurity=False)
    for part in (method_key, article.text_source, article.title, article.page_html, article.content_html,
                 article.summary_html, article.text):  # fmt: skip
        h.update(part.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return h.hexdigest()


def summarize(
    article: Article, embedder: Embedder | None = None, *, llm_settings: tuple[str, str] | None = None
) -> SummaryResult:
    """Summarise one article (about 1 s for 3,000 words with MiniLM on 2 cores)."""
    started = time.perf_counter()
    doc = document_of(article)
    words = len(article.text.split())
    if words < MIN_WORDS or doc.words < MIN_WORDS:
        return SummaryResult(None, f"too short to summarise ({words} words; summaries start at {MIN_WORDS})")
    model = embedder or LexicalEmbedder.for_document(doc)
    method = "extractive"
    parts = extractive.summarize(doc, model)
    overview, sections, takeaways = parts.overview, parts.sections, parts.takeaways
    if llm_settings is not None:
        sentences = doc.sentences
        grounded = llm.ask(
            llm_settings[0],
            llm_settings[1],
            title=article.title,
            text="\n\n".join(
                (f"## {s.heading}\n" if s.heading else "") + " ".join(s.sentences) for s in doc.sections
            ),
            sentences=sentences,
            sentence_vecs=model.embed(sentences),
            embedder=model,
            headings=[h for h, _ in doc.chapters()],
        )
        if grounded is not None:
            overview, sections, takeaways = grounded.overview, grounded.sections, grounded.takeaways
            method = f"llm:{llm_settings[1]}"
    if len(takeaways) < 1 or not overview:
        return SummaryResult(None, "no sentences worth quoting were found")
    summary = Summary(
        overview=" ".join(overview),
        overview_sentences=tuple(overview),
        sections=tuple(SummarySection(h, tuple(p)) for h, p in sections),
        takeaways=tuple(takeaways),
        method=method,
        text_source=article.text_source,
        words=words,
    )
    return SummaryResult(summary, seconds=time.perf_counter() - started)


def render_text(summary: Summary, title: str = "") -> str:
    """The summary as plain text for a terminal."""
    lines = [title, "=" * min(len(title), 80), ""] if title else []
    lines += [summary.overview, ""]
    if summary.sections:
        lines.append("Sections")
        for sec in summary.sections:
            lines.append(f"  {sec.heading}")
            lines += [f"    - {p}" for p in sec.points]
        lines.append("")
    lines.append("Key takeaways")
    lines += [f"  - {t}" for t in summary.takeaways]
    lines += ["", f"({summary.method}, from the {summary.text_source} text, {summary.words} words)"]
    return "\n".join(lines)


def note_from(summary: Summary) -> str:
    """A note to start from, in the reading list's style: the overview, then the takeaways
    as numbered points for the reader to edit."""
    lines = [summary.overview, ""]
    lines += [f"{i}. {t}" for i, t in enumerate(summary.takeaways, 1)]
    return "\n".join(lines) + "\n"
