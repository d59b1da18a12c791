"""An article as a summariser sees it: sections (a heading and its sentences) in order.

Built from the article's sanitised HTML (the page's, else the feed's). Headings open
sections; paragraphs, list items and quotes give sentences; code blocks, tables, figure
captions, scripts and styles give none (they are not prose a summary can quote); nor do
footnote marks (``<sup>1</sup>``; a power such as ``2<sup>8</sup>`` reads "2^8") and
Medium's "was originally published in ... on Medium" trailer. Sections that are not the
article's argument (headed acknowledgements, references, footnotes, "we're hiring", ...)
are dropped. Text with no HTML becomes one untitled section.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

from engfeed.summarize.sentences import split_sentences
from engfeed.text import strip_html_trailer

_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_BLOCKS = frozenset(
    [
        "p",
        "div",
        "li",
        "blockquote",
        "dd",
        "dt",
        "section",
        "article",
        "main",
        "header",
        "footer",
        "ul",
        "ol",
        "dl",
        "hr",
        "figure",
        "aside",
    ]
)
_SKIPPED = frozenset(
    [
        "pre",
        "script",
        "style",
        "table",
        "figcaption",
        "svg",
        "math",
        "noscript",
        "template",
        "button",
        "nav",
        "form",
    ]
)
# The whole heading ("Notes on sharding", "Resources and quotas", "Career growth" are the
# argument); a few may go on ("Acknowledgements and thanks", "Appendix A: commands").
_NOT_ARGUMENT = re.compile(
    r"^(?:(?:acknowledg(?:e)?ments?|special thanks|further reading|about the authors?|"
    r"we['’]re hiring|appendix)\b.*|(?:thanks|references|footnotes|notes|related"
    r"(?: posts| articles| reading| links)?|join (?:us|our team)|careers?|resources|learn more|"
    r"share(?: this(?: post| article)?)?)\W*)$",
    re.I | re.S,
)


@dataclass(slots=True)
class Section:
    heading: str  # "" for text before the first heading
    level: int  # 0 for the untitled opening
    sentences: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Document:
    title: str
    sections: tuple[Section, ...]

    @property
    def sentences(self) -> list[str]:
        return [s for sec in self.sections for s in sec.sentences]

    @property
    def words(self) -> int:
        return sum(len(s.split()) for s in self.sentences)

    def chapters(self) -> list[tuple[str, list[int]]]:
        """The article's real sections: (heading, indexes of the sections it spans) for each
        heading at the highest level that has at least two headings with text under them;
        empty when the article has fewer than two."""
        titled = [s for s in self.sections if s.heading and s.sentences]
        level = next(
            (lv for lv in sorted({s.level for s in titled}) if sum(s.level == lv for s in titled) >= 2), None
        )
        if level is None:
            return []
        spans: list[tuple[str, list[int]]] = []
        for i, sec in enumerate(self.sections):
            if sec.heading and sec.level == level:
                spans.append((sec.heading, [i]))
            elif spans and sec.level > level:
                spans[-1][1].append(i)
        return [(h, m) for h, m in spans if any(self.sections[i].sentences for i in m)]


_FOOTNOTE = re.compile(r"\[?(?:\d{1,3}|[a-z]|[*†‡§])\]?")
# A power: a small number or a lone letter raised to a number or a letter ("2^8", "10^-6",
# "O(n^2)"); not a word's footnote ("pairs<sup>1</sup>"), a year's ("2019<sup>3</sup>"), or "1st".
_BASE = re.compile(r"(?:(?<![\d.,])\d{1,2}|(?<![^\W\d_])[^\W\d_])$")
_EXPONENT = re.compile(r"[-−+]?(?:\d{1,3}|[A-Za-z])")
# Medium's byline glued to the first sentence: "Jane Doe7 min read·Aug 12, 2026 Our system ..."
_BYLINE = re.compile(
    r"^.{0,300}?(?<!\d)\d{1,3} min read\s*·\s*(?:[A-Z][a-z]{2} \d{1,2}, \d{4}|\d+ \w+ ago)\s*"
)


_NUMBER_END = re.compile(r"(?<![\d.,])(\d+)$")


def _is_power_base(before: str) -> bool:
    """A number of 3+ digits right before a ``<sup>`` is raised to it ("1000<sup>2</sup>"
    reads "1000^2": deleting the mark would change the figure), unless it is a year, whose
    superscript is a footnote ("in 2019<sup>3</sup>")."""
    found = _NUMBER_END.search(before)
    return found is not None and not (len(found.group(1)) == 4 and 1800 <= int(found.group(1)) <= 2100)


def from_html(html: str, title: str = "") -> Document:
    parser = _Parser()
    parser.feed(strip_html_trailer(html))  # "<title> was originally published in <pub> on Medium"
    parser.close()
    parser.flush()
    sections = [s for s in parser.sections if s.sentences or s.heading]
    kept: list[Section] = []
    skip_level: int | None = None
    for sec in sections:
        if skip_level is not None and sec.heading and sec.level <= skip_level:
            skip_level = None
        if skip_level is not None:
            continue
        if sec.heading and _NOT_ARGUMENT.match(sec.heading.strip()):
            skip_level = sec.level
            continue
        kept.append(sec)
    for sec in kept[:2]:
        if sec.sentences:
            sec.sentences[0] = _BYLINE.sub("", sec.sentences[0]) or sec.sentences[0]
            break
    return Document(title, tuple(kept))


def from_text(text: str, title: str = "") -> Document:
    return Document(title, (Section("", 0, split_sentences(text)),))


class _Parser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.sections: list[Section] = [Section("", 0)]
        self._buf: list[str] = []
        self._skip = 0
        self._heading: int | None = None
        self._sup: int | None = None  # where a <sup> began in the buffer
        self._br: int | None = None  # where the buffer stood after the last <br>

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED:
            self.flush()
            self._skip += 1
        elif tag == "sup":
            self._sup = len(self._buf)
        elif tag == "br":  # a line break inside a sentence; two in a row end a paragraph
            if self._br is not None and not "".join(self._buf[self._br :]).strip():
                self.flush()
                self._br = 0
            else:
                self._buf.append(" ")
                self._br = len(self._buf)
        elif tag in _HEADINGS:
            self.flush()
            self._heading = _HEADINGS[tag]
        elif tag in _BLOCKS:
            self.flush()

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED:
            self._skip = max(0, self._skip - 1)
        elif tag == "sup" and self._sup is not None:
            marker = "".join(self._buf[self._sup :]).strip()
            before = "".join(self._buf[: self._sup])
            if _EXPONENT.fullmatch(marker) and (
                _BASE.search(before) or (marker != "1" and _is_power_base(before))
            ):
                self._buf.insert(self._sup, "^")
            elif _FOOTNOTE.fullmatch(marker):  # "1", "[2]", "*": a footnote mark, not prose
                del self._buf[self._sup :]
            self._sup = None
        elif tag in _HEADINGS and self._heading is not None:
            text = " ".join("".join(self._buf).split())
            self._buf = []
            if text:
                self.sections.append(Section(text[:200], self._heading))
            self._heading = None
        elif tag in _BLOCKS:
            self.flush()

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self._buf.append(data)

    def parse_marked_section(self, i: int, report: bool = True) -> int:
        """``<![CDATA[...]]>`` and ``<![if ...]>`` as usual; a stray "<![" is skipped (Python
        before 3.13 raises AssertionError on it)."""
        try:
            return super().parse_marked_section(i, report)
        except AssertionError:
            return i + 3

    def flush(self) -> None:
        if self._heading is not None:
            return  # a block inside a heading: keep collecting the heading's text
        text = "".join(self._buf)
        self._buf = []
        self._br = None
        if text.strip():
            self.sections[-1].sentences.extend(split_sentences(text))
