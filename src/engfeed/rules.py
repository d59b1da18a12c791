"""Mute rules: what the reader does not want in the feed, checked and matched safely.

Four kinds, each over what the reader sees on a card:

- ``source``: every article of one source (``Meta``);
- ``term``: a word or phrase in the title or excerpt, whole words, case-insensitive, any
  run of spaces between words (``now available`` matches "Now  Available:");
- ``regex``: a regular expression searched in the title and the excerpt (joined by a
  newline), case-insensitive unless the pattern says ``(?-i)``;
- ``angle``: every article labelled with one useful angle.

A rule hides what it matches from the feed, search and the output feeds; saved articles are
never hidden (a rule hides what you have not chosen to keep), and the reading list is not
filtered. Storage and the SQL side live in :mod:`engfeed.store.mutes`.

Regexes are untrusted input that runs on every arriving article, so a pattern must never
stall the feed. They run on the ``regex`` module, whose matcher honours a time limit, and
are checked three ways before they are saved: a size limit, a static check for the classic
catastrophic shape (a repeated group that itself repeats, ``(a+)+``), and a probe on
adversarial strings built from the pattern's own characters. Then every search has a time
limit (``REGEX_TIMEOUT``): a match that runs out of time counts as no match and is logged.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import regex

from engfeed.errors import EngfeedError
from engfeed.models import Article, iso
from engfeed.text import terminal_safe

log = logging.getLogger("engfeed")

KINDS = ("source", "term", "regex", "angle")
#: Longest term, source or angle name, and longest pattern, in characters.
MAX_VALUE = 200
MAX_PATTERN = 300
#: Time one regex may take on one article (title + excerpt, at most ~1,500 characters);
#: ordinary patterns take microseconds.
REGEX_TIMEOUT = 0.05
#: Rules one reader may keep: enough for any real list, few enough to check per article.
MAX_RULES = 200

# Repeat counts {m}, {m,}, {m,n} (their numbers), and the most one may ask for.
_REPEAT = re.compile(r"(?<!\\)\{(\d+)(?:,(\d*))?\}")
MAX_REPEAT = 1000
# A group whose body ends in an unbounded quantifier, itself repeated: (a+)+, (\w*)*, (x+){2,}.
_NESTED = re.compile(r"\((?:[^()\\]|\\.)*[+*}]\)(?:[+*]|\{\d*,\d*\})")
_WORD = re.compile(r"\w", re.UNICODE)
# Control characters (tab allowed) and lone surrogates (undecodable bytes from a command line).
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\ud800-\udfff]")
#: The most time a new rule may take to match every stored article (added or previewed).
RULE_BUDGET = 5.0
#: The most time the regex rules may take on one batch of arriving articles (one source).
ARRIVAL_BUDGET = 1.0


class RuleError(EngfeedError):
    """A rule that cannot be saved, with the reason in words."""


@dataclass(frozen=True, slots=True)
class MuteRule:
    """One mute rule. ``hidden``: how many stored articles it hides now (0 when not counted)."""

    kind: str
    value: str
    id: int | None = None
    created: datetime | None = None
    hidden: int = 0

    def describe(self) -> str:
        """The rule in a few words, as the page and the CLI show it."""
        if self.kind == "term":
            return f'term "{self.value}"'
        if self.kind == "regex":
            return f"regex /{self.value}/"
        return f"{self.kind} {self.value}"

    def to_json(self) -> dict[str, object]:
        """The public JSON shape of ``mute list --json`` and ``/api/rules``."""
        return {
            "id": self.id,
            "kind": self.kind,
            "value": self.value,
            "created": iso(self.created) if self.created else None,
            "hidden": self.hidden,
        }


@dataclass(frozen=True, slots=True)
class MutePreview:
    """What a rule hides (or would hide) among the stored articles: the count and the newest few."""

    rule: MuteRule
    hidden: int
    total: int  # stored articles in all
    examples: tuple[Article, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {
            "rule": self.rule.to_json(),
            "hidden": self.hidden,
            "total": self.total,
            "examples": [
                {"id": a.uid, "title": a.title, "source": a.source, "published": iso(a.published)}
                for a in self.examples
            ],
        }


def check_rule(kind: str, value: str) -> MuteRule:
    """The rule, normalised (spaces collapsed, a regex compiled and probed), or :class:`RuleError`.

    Source and angle names are checked against the store by the caller
    (:meth:`engfeed.feed.Feed.check_mute`); this checks what can be checked from the text alone.
    """
    if kind not in KINDS:
        raise RuleError(f"unknown rule kind {kind!r}: use one of {', '.join(KINDS)}")
    if _CONTROL.search(value):
        raise RuleError("a rule is one line of text, without control characters")
    text = value.strip() if kind == "regex" else " ".join(value.split())
    if not text:
        raise RuleError(f"the {kind} is empty")
    limit = MAX_PATTERN if kind == "regex" else MAX_VALUE
    if len(text) > limit:
        raise RuleError(f"the {kind} is longer than {limit} characters")
    if kind == "term" and not _WORD.search(text):
        raise RuleError("a term needs at least one letter or digit")
    if kind == "regex":
        check_pattern(text)
    return MuteRule(kind, text)


def check_pattern(pattern: str) -> regex.Pattern[str]:
    """Compile a user's pattern, refusing ones that could backtrack for a long time or whose
    repeat counts would make compiling itself take seconds and gigabytes (``a{10000000}``)."""
    counts = [int(n) for m in _REPEAT.finditer(pattern) for n in m.groups() if n]
    if any(n > MAX_REPEAT for n in counts) or math.prod(max(1, n) for n in counts) > MAX_REPEAT:
        raise RuleError(f"repeat counts in a pattern are limited to {MAX_REPEAT} ({{m,n}})")
    try:
        compiled = regex.compile(pattern, regex.IGNORECASE | regex.VERSION0)
    except (regex.error, ValueError, OverflowError, RecursionError) as exc:
        raise RuleError(f"not a valid regular expression: {terminal_safe(str(exc))}") from None
    if compiled.search("", timeout=REGEX_TIMEOUT) is not None:
        raise RuleError("this pattern matches every article (it matches empty text)")
    if _NESTED.search(pattern):
        raise RuleError(
            "this pattern risks catastrophic backtracking (a repeated group that itself repeats,"
            " like (a+)+): rewrite it without the nested repetition"
        )
    for probe in _probes(pattern):
        try:
            compiled.search(probe, timeout=REGEX_TIMEOUT)
        except TimeoutError:
            raise RuleError(
                "this pattern takes too long on some text (catastrophic backtracking): simplify it"
            ) from None
    return compiled


def _probes(pattern: str) -> list[str]:
    """Adversarial texts for a pattern: long runs of its own characters with a spoiler at the end."""
    chars = sorted({c for c in pattern if c.isalnum() or c in " -_.:/"})[:20] or ["a"]
    runs = [c * 1500 + "!" for c in chars]
    runs.append("".join(chars) * (1500 // len(chars)) + "!")
    return runs


def matching_text(title: str, excerpt: str) -> str:
    """What term and regex rules look at: the title and the excerpt, as a card shows them."""
    return f"{title}\n{excerpt}"


class TextMatcher:
    """The term and regex rules of a reader, compiled once, matched against many articles.

    ``strict`` (a rule being added or previewed): a match that runs out of time, or a total
    past ``budget_s``, raises :class:`RuleError` instead of counting as no match, so that a
    pattern that is slow on the reader's own articles is refused before it is saved.
    Otherwise (articles arriving) past ``budget_s`` for one batch the regex rules are skipped
    for the rest of it and counted in ``skipped``: an arriving feed never waits on them."""

    def __init__(
        self, rules: Sequence[MuteRule], *, strict: bool = False, budget_s: float = RULE_BUDGET
    ) -> None:
        self._rules: list[tuple[int, regex.Pattern[str], bool]] = []
        self.timeouts = 0
        self.strict = strict
        self.budget_s = budget_s
        self.skipped = 0  # regex matches skipped past the budget (non-strict)
        self._deadline = time.monotonic() + budget_s
        for rule in rules:
            if rule.id is None or rule.kind not in ("term", "regex"):
                continue
            if rule.kind == "term":
                words = r"[^\S\n]+".join(regex.escape(w) for w in rule.value.split())
                pattern = regex.compile(rf"(?<!\w){words}(?!\w)", regex.IGNORECASE)
            else:
                pattern = regex.compile(rule.value, regex.IGNORECASE | regex.VERSION0)
            self._rules.append((rule.id, pattern, rule.kind == "regex"))

    def __bool__(self) -> bool:
        return bool(self._rules)

    def restart(self) -> None:
        """A fresh time budget (one per batch of articles matched)."""
        self._deadline = time.monotonic() + self.budget_s

    def match(self, title: str, excerpt: str) -> list[int] | None:
        """The ids of the rules that match this article (a regex out of time does not); None
        when the batch's budget ran out before its regexes could run (match it again later)."""
        text = matching_text(title, excerpt)
        found: list[int] = []
        over = time.monotonic() > self._deadline
        if over and self.strict:
            raise RuleError(
                f"this pattern is too slow over all your articles (over {RULE_BUDGET:.0f} s): simplify it"
            )
        for rule_id, pattern, is_regex in self._rules:
            if over and is_regex:
                # Past the batch's budget regexes wait: the feed must not stall on a slow rule.
                self.skipped += 1
                return None
            try:
                if pattern.search(text, timeout=REGEX_TIMEOUT):
                    found.append(rule_id)
            except TimeoutError:
                self.timeouts += 1
                if self.strict:
                    raise RuleError(
                        f"this pattern takes over {REGEX_TIMEOUT * 1000:.0f} ms on one of your articles"
                        f" ({terminal_safe(title)[:80]!r}): simplify it"
                    ) from None
                log.warning("mute rule %s ran out of time on an article; not applied to it", rule_id)
        return found
