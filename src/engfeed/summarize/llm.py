"""Optional abstractive tier: a local OpenAI-compatible model server, every bullet grounded.

Off unless the user sets ``ENGFEED_LLM_URL`` (Ollama, llama.cpp's server and vLLM all expose
``/v1/chat/completions``) and ``ENGFEED_LLM_MODEL``; nothing is sent anywhere otherwise.

The model is asked for the summary's JSON shape. Its answer is then **grounded**: each
overview sentence, section point and takeaway must pass three checks against the article
(:func:`supported`), or it is dropped:

1. its best-matching article sentence (MiniLM cosine) scores at least :data:`GROUND_THRESHOLD`;
2. every name in it (CamelCase, acronyms, capitalised words but the first) occurs in the
   article as a whole word ("Java" is not supported by "JavaScript"), and every number in
   the three article sentences nearest to it ("4%" is not supported by "40%", nor "128 hosts"
   by a 128 elsewhere in the article): a changed figure or system is the commonest invention;
3. at least :data:`GROUND_COVERAGE` of its content words occur in the three article
   sentences nearest to it (an invented mechanism brings words the article never uses);
4. a negation in it ("not", "never", "without", ...) is in one of those three sentences too
   ("we did not shard the keyspace" shares every word with "we sharded the keyspace", and
   says the opposite).

Calibrated on the dev half of the judged set (bench/summaries), whose distractors are
exactly such plausible-but-false claims: the checks keep 41% of the hand-written,
deliberately reworded key points and 8% of the distractors (held-out half: 56% and 17%;
measured 2026-12-04).
Strict on purpose: what is dropped costs a bullet, what is kept is shown as the article's.
When fewer than :data:`MIN_TAKEAWAYS` takeaways or no
overview survive, or the server is slow, down or answers nonsense, :func:`ask` returns None
and the caller uses the extractive summary (the reason is logged, never shown as an error).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

import httpx
import numpy as np

from engfeed.embed import Embedder, Matrix
from engfeed.summarize.lexical import tokens
from engfeed.summarize.sentences import split_sentences

log = logging.getLogger("engfeed.summarize")

GROUND_THRESHOLD = 0.55
GROUND_COVERAGE = 0.6
MIN_TAKEAWAYS = 3
MAX_INPUT_CHARS = 24_000  # of article text sent to the model (~6k tokens)
MAX_ANSWER_BYTES = 256 * 1024
TIMEOUT = 120.0  # seconds for the whole answer: a local model on a CPU is slow

PROMPT = """You summarise engineering blog posts for a busy senior engineer.
Answer with one JSON object and nothing else, with exactly these keys:
{"overview": "2-3 sentences on what the article is about and what it found",
 "sections": [{"heading": "<a heading of the article>", "points": ["1-3 points"]}],
 "takeaways": ["3-6 of the most central, specific statements: numbers, named systems, causes, decisions"]}
Use only facts stated in the article. Use the article's own headings for sections (none if it has
fewer than two). Every point is one sentence."""


@dataclass(frozen=True, slots=True)
class Grounded:
    overview: list[str]
    sections: list[tuple[str, list[str]]]
    takeaways: list[str]


def endpoint(url: str) -> str:
    """``/v1/chat/completions`` under the URL the user gave (base, ``/v1`` or the full path)."""
    url = url.rstrip("/")
    if url.endswith("/chat/completions"):
        return url
    if url.endswith("/v1"):
        return url + "/chat/completions"
    return url + "/v1/chat/completions"


def ask(
    url: str,
    model: str,
    *,
    title: str,
    text: str,
    sentences: list[str],
    sentence_vecs: Matrix,
    embedder: Embedder,
    timeout: float | None = None,
    transport: httpx.BaseTransport | None = None,
    headings: Sequence[str] | None = None,
) -> Grounded | None:
    """The model's summary with every unsupported bullet dropped, or None (use extractive).
    ``timeout`` (default :data:`TIMEOUT`, read when called) bounds the whole answer: a server
    that stalls, or drips its answer byte by byte, is given up on within twice that at most.
    ``headings``: the article's section headings; when given, a section under any other
    heading is dropped (a heading is shown as the article's), and the article's spelling kept."""
    timeout = TIMEOUT if timeout is None else timeout
    try:
        answer = _call(url, model, title, text, timeout, transport)
    except (httpx.HTTPError, ValueError, RecursionError) as exc:
        log.warning("LLM summary unavailable (%s): %s; using the extractive summary", endpoint(url), exc)
        return None
    parsed = _parse(answer)
    if parsed is None:
        log.warning("LLM answer was not the summary JSON; using the extractive summary")
        return None
    overview_raw, sections_raw, takeaways_raw = parsed
    units = [*overview_raw, *(p for _, pts in sections_raw for p in pts), *takeaways_raw]
    if not units or not sentences:
        return None
    flags = supported(units, sentences, sentence_vecs, embedder, article_text=text)
    keep = {u for u, ok in zip(units, flags, strict=True) if ok}
    overview = [u for u in overview_raw if u in keep]
    takeaways = list(dict.fromkeys(u for u in takeaways_raw if u in keep))[:6]  # repeats once
    sections = [(h, [p for p in pts if p in keep][:3]) for h, pts in sections_raw]
    sections = [(h, pts) for h, pts in sections if pts]
    if headings is not None:
        own = {_heading_key(h): h for h in headings}
        sections = [(own[_heading_key(h)], pts) for h, pts in sections if _heading_key(h) in own]
    dropped = len(units) - sum(1 for u in units if u in keep)
    if dropped:
        log.info("LLM summary: %d of %d bullets not supported by the article, dropped", dropped, len(units))
    if not overview or len(takeaways) < MIN_TAKEAWAYS:
        log.warning("LLM summary: too little survived grounding; using the extractive summary")
        return None
    return Grounded(overview, sections, takeaways)


def _call(
    url: str, model: str, title: str, text: str, timeout: float, transport: httpx.BaseTransport | None
) -> str:
    body = {
        "model": model,
        "temperature": 0.1,
        "response_format": {"type": "json_object"},
        "messages": [
            {"role": "system", "content": PROMPT},
            {"role": "user", "content": f"Title: {title}\n\n{text[:MAX_INPUT_CHARS]}"},
        ],
    }
    # httpx's timeouts are per read: a deadline bounds an answer that arrives byte by byte.
    deadline = time.monotonic() + timeout
    with (
        httpx.Client(
            timeout=httpx.Timeout(timeout, connect=min(5.0, timeout)), transport=transport, trust_env=False
        ) as client,
        client.stream("POST", endpoint(url), json=body) as resp,
    ):
        resp.raise_for_status()
        raw = b""
        for chunk in resp.iter_bytes():
            raw += chunk
            if len(raw) > MAX_ANSWER_BYTES:
                raise ValueError("answer too large")
            if time.monotonic() > deadline:
                raise ValueError(f"no complete answer within {timeout:g} s")
    data = json.loads(raw)
    try:
        content = data["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError) as exc:  # valid JSON, but not a chat completion
        raise ValueError(f"not a chat completion: {exc!r}") from None
    if not isinstance(content, str):
        raise ValueError("no message content")
    return content


_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$", re.S)


def _parse(answer: str) -> tuple[list[str], list[tuple[str, list[str]]], list[str]] | None:
    """The summary parts from the model's answer, or None when it is not that shape."""
    answer = _FENCE.sub("", answer.strip())
    start, end = answer.find("{"), answer.rfind("}")
    if start < 0 or end <= start:
        return None
    try:
        data = json.loads(answer[start : end + 1])
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    overview = data.get("overview")
    takeaways = data.get("takeaways")
    sections = data.get("sections") or []
    if not isinstance(overview, str) or not isinstance(takeaways, list) or not isinstance(sections, list):
        return None
    parsed_sections: list[tuple[str, list[str]]] = []
    for sec in sections:
        if (
            isinstance(sec, dict)
            and isinstance(sec.get("heading"), str)
            and isinstance(sec.get("points"), list)
        ):
            points = [_clean(p) for p in sec["points"] if isinstance(p, str) and _clean(p)]
            parsed_sections.append((_clean(sec["heading"])[:200], points))
    return (
        [s for s in split_sentences(_clean(overview))][:3],
        parsed_sections,
        [_clean(t) for t in takeaways if isinstance(t, str) and _clean(t)],
    )


def _heading_key(heading: str) -> str:
    return " ".join(heading.casefold().split()).strip(" .:!?#*")


def _clean(text: str) -> str:
    return " ".join(str(text).split())[:600]


_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_NAME = re.compile(r"\b(?:[A-Z][a-z]*[A-Z]\w*|[A-Z]{2,}\w*|(?<!^)[A-Z][a-z]{2,})\b")


def supported(
    units: list[str], sentences: list[str], sentence_vecs: Matrix, embedder: Embedder, *, article_text: str
) -> list[bool]:
    """For each unit: does the article support it (see the module docstring)?"""
    if not units:
        return []
    if not sentences:
        return [False] * len(units)
    lowered = article_text.lower()
    vecs = embedder.embed(units)
    sims = vecs @ sentence_vecs.T
    flags: list[bool] = []
    for row, unit in enumerate(units):
        if float(sims[row].max()) < GROUND_THRESHOLD:
            flags.append(False)
            continue
        nearest = np.argsort(-sims[row])[:3]
        near_numbers = set(  # whole numbers: "4%" is not in "40%"
            _NUMBER.findall(" ".join(sentences[int(i)] for i in nearest).lower().replace(",", ""))
        )
        numbers_ok = all(n.replace(",", "") in near_numbers for n in _NUMBER.findall(unit))
        names_ok = all(_mentions(lowered, m) for m in _NAME.findall(unit))
        pool = {w[:5] for i in nearest for w in tokens(sentences[int(i)])}
        words = [w[:5] for w in tokens(unit)]
        coverage = sum(w in pool for w in words) / max(1, len(words))
        negation_ok = not _NEGATION.search(unit) or any(_NEGATION.search(sentences[int(i)]) for i in nearest)
        flags.append(numbers_ok and names_ok and coverage >= GROUND_COVERAGE and negation_ok)
    return flags


_NEGATION = re.compile(r"\b(?:not|no|never|none|neither|nor|without|cannot)\b|n['’]t\b", re.I)


def _mentions(lowered: str, name: str) -> bool:
    """Does the (lower-cased) article use this name as a word of its own, or with a plural or
    possessive ending ("Lambdas", "Kafka's")? "Java" is not in "JavaScript", "Redis" not in
    "redistribute"."""
    pattern = r"(?<![a-z0-9])" + re.escape(name.lower()) + r"(?:e?s)?(?![a-z0-9])"
    return re.search(pattern, lowered) is not None
