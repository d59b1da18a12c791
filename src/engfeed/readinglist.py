"""The reading list as Markdown, both ways, in the shape of a hand-kept Hugo page.

The shape (``../shared/seeds/engineering-blogs-list.md``)::

    ---
    title: "Engineering blogs list"
    date: 2024-05-26T15:10:01+03:19
    draft: false
    tags: ["engineering-blogs"]
    ---

    * [Title](https://example.com/post)
        A note, indented by four spaces, kept verbatim:
        1. **Labels**, nested lists, anything Markdown.
    * [Another title](https://example.com/other)

:func:`render` writes exactly that; :func:`parse` reads it back and is lenient about what
people write by hand: ``-`` or ``+`` bullets, no front matter, CRLF line ends, tabs for
indentation. A note is every line indented under its bullet, with the first four spaces
(or one tab) removed, so that export, import and export again give the same bytes. A ``]``
in a title is escaped; a URL with parentheses, spaces or angle brackets is written as
``<url>``, which CommonMark (and Hugo) read as one destination.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from engfeed.errors import EngfeedError
from engfeed.text import storable

#: The most a note may hold (UTF-8); a longer one is refused, never cut.
MAX_NOTE_BYTES: Final = 100 * 1024
#: The most a reading-list file may hold.
MAX_LIST_BYTES: Final = 10 * 1024 * 1024
DEFAULT_TITLE: Final = "Reading list"
DEFAULT_TAGS: Final = ("reading-list",)

_BULLET: Final = re.compile(r"^[ ]{0,3}[*+-][ \t]+\[")
_INDENT: Final = re.compile(r"^(?: {4}|\t)")
_PLAIN_BULLET: Final = re.compile(r"^[ ]{0,3}[*+-][ \t]+\S")


@dataclass(frozen=True, slots=True)
class Entry:
    """One bullet of a reading list: a link, its title, and the reader's note (or None)."""

    title: str
    url: str
    note: str | None = None


@dataclass(frozen=True, slots=True)
class ReadingList:
    title: str
    entries: list[Entry]
    date: str | None = None  # the front matter's, as written
    skipped: tuple[str, ...] = ()  # bullets that are not [title](url) links, for the report
    tags: tuple[str, ...] | None = None  # the front matter's, when it had a flow list


class NoteTooLarge(EngfeedError):
    """A note over :data:`MAX_NOTE_BYTES`: refused whole, nothing saved."""


class NoteNotText(EngfeedError):
    """A note that is not text a database can hold (an unpaired surrogate: what undecodable
    command-line bytes or a JSON ``"\\ud800"`` become): refused whole, nothing saved."""


def check_note(note: str) -> str:
    """``note`` if it fits and is storable text, else :class:`NoteTooLarge` (with the sizes)
    or :class:`NoteNotText` (with where)."""
    try:
        note.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise NoteNotText(
            f"the note is not valid text (character {exc.start + 1} is an unpaired surrogate)."
            " Nothing was saved"
        ) from None
    size = len(note.encode("utf-8"))
    if size > MAX_NOTE_BYTES:
        raise NoteTooLarge(
            f"the note is {size / 1024:.0f} KB; notes are limited to {MAX_NOTE_BYTES // 1024} KB."
            " Nothing was saved; shorten it or keep the long text elsewhere and link to it"
        )
    return note


# --------------------------------------------------------------------------- writing


def render(
    entries: Iterable[Entry],
    *,
    title: str = DEFAULT_TITLE,
    date: datetime | None = None,
    tags: Sequence[str] = DEFAULT_TAGS,
) -> str:
    """The list as Markdown with YAML front matter (see the module docstring)."""
    when = (date or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    lines = [
        "---",
        f"title: {json.dumps(title, ensure_ascii=False)}",
        f"date: {when.isoformat()}",
        "draft: false",
        f"tags: {json.dumps(list(tags), ensure_ascii=False)}",
        "---",
        "",
    ]
    for entry in entries:
        lines.append(f"* [{escape_title(entry.title)}]({link_destination(entry.url)})")
        if entry.note:
            for line in entry.note.splitlines():
                lines.append(f"    {line}" if line.strip() else "")
    return "\n".join(lines) + "\n"


def escape_title(title: str) -> str:
    """Link text that cannot end the link early: ``\\``, ``[`` and ``]`` escaped, one line."""
    flat = re.sub(r"[\r\n]+", " ", title).strip() or "(untitled)"
    return re.sub(r"([\\\[\]])", r"\\\1", flat)


def link_destination(url: str) -> str:
    """A link destination that parses: ``<url>`` when the URL holds parentheses or spaces."""
    if re.search(r"[()\s<>]", url):
        return "<" + url.replace("<", "%3C").replace(">", "%3E").replace("\n", "%0A") + ">"
    return url


# --------------------------------------------------------------------------- reading


def parse(text: str) -> ReadingList:
    """Read a list written by hand or by :func:`render`; raises :class:`EngfeedError` when
    the text has no ``[title](url)`` bullet at all."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").lstrip("\ufeff")
    title, date, tags, body = _front_matter(text)
    entries: list[Entry] = []
    skipped: list[str] = []
    current: tuple[str, str] | None = None
    note_lines: list[str] = []

    def finish() -> None:
        if current is not None:
            note = "\n".join(note_lines).strip("\n")
            entries.append(Entry(current[0], current[1], note or None))

    for line in body.split("\n"):
        if _BULLET.match(line):
            finish()
            note_lines = []
            link = _parse_link(line.lstrip()[1:].lstrip())
            if link is None:
                current = None
                skipped.append(line.strip()[:120])
            else:
                current = link
            continue
        if current is not None and (_INDENT.match(line) or not line.strip()):
            note_lines.append(_INDENT.sub("", line, count=1) if line.strip() else "")
            continue
        if line.strip():
            finish()
            current, note_lines = None, []
            if _PLAIN_BULLET.match(line):
                skipped.append(line.strip()[:120])
    finish()
    if not entries:
        raise EngfeedError("no reading-list entries found: expected lines like '* [Title](https://...)'")
    return ReadingList(
        title=title or DEFAULT_TITLE, entries=entries, date=date, skipped=tuple(skipped), tags=tags
    )


def _front_matter(text: str) -> tuple[str | None, str | None, tuple[str, ...] | None, str]:
    if not text.startswith("---\n"):
        return None, None, None, text
    end = text.find("\n---", 3)
    if end == -1:
        return None, None, None, text
    head = text[4:end]
    rest = text[end + 4 :]
    rest = rest[rest.find("\n") + 1 :] if "\n" in rest else ""
    title = date = None
    tags: tuple[str, ...] | None = None
    for line in head.split("\n"):
        key, _, value = line.partition(":")
        value = value.strip()
        if key.strip() == "title" and value:
            title = _yaml_scalar(value)
        elif key.strip() == "date" and value:
            date = _yaml_scalar(value)
        elif key.strip() == "tags" and value.startswith("[") and value.endswith("]"):
            try:
                found = json.loads(value)
            except ValueError:  # YAML's unquoted flow list: [eng, reads]
                found = [_yaml_scalar(t.strip()) for t in value[1:-1].split(",") if t.strip()]
            if isinstance(found, list):
                tags = tuple(storable(str(t)) for t in found)
    return title, date, tags, rest


def _yaml_scalar(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        try:
            return storable(str(json.loads(value)))
        except ValueError:
            return value[1:-1]
    if len(value) >= 2 and value[0] == value[-1] == "'":
        return value[1:-1].replace("''", "'")
    return value


def _parse_link(rest: str) -> tuple[str, str] | None:
    """(title, url) of ``[title](url)`` at the start of ``rest`` (escapes undone), or None."""
    if not rest.startswith("["):
        return None
    title_chars: list[str] = []
    i, depth = 1, 0
    while i < len(rest):
        ch = rest[i]
        if ch == "\\" and i + 1 < len(rest):
            title_chars.append(rest[i + 1])
            i += 2
            continue
        if ch == "[":
            depth += 1
        elif ch == "]":
            if depth == 0:
                break
            depth -= 1
        title_chars.append(ch)
        i += 1
    else:
        return None
    if rest[i + 1 : i + 2] != "(":
        return None
    dest = rest[i + 2 :]
    if dest.startswith("<"):
        close = dest.find(">")
        if close == -1:
            return None
        url = dest[1:close]
    else:
        depth, end = 0, len(dest)
        for j, ch in enumerate(dest):
            if ch == "(":
                depth += 1
            elif ch == ")":
                if depth == 0:
                    end = j
                    break
                depth -= 1
            elif ch.isspace():
                end = j
                break
        url = dest[:end]
    url = url.strip()
    if not url:
        return None
    return "".join(title_chars).strip(), url
