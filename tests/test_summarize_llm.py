"""The optional LLM tier (engfeed.summarize.llm) against a fake OpenAI-compatible server on
127.0.0.1: what is sent, which bullets survive grounding, and that every failure (bad
answers, errors, slow or dripping servers, no server) falls back to the extractive summary
without an exception. Nothing is sent anywhere unless ENGFEED_LLM_URL is set.

Answers are built from a real article of ``../shared`` (read in place): its own facts lightly
reworded (kept), and the same facts with a changed figure or an invented system (dropped).
Grounding runs on the lexical embedder here, as in a store without embeddings; one test uses
MiniLM with the judged set's hand-written key points and distractors (bench/summaries).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

import engfeed.summarize.llm as llm
from engfeed import config
from engfeed.embed import Embedder, Matrix
from engfeed.feed import Feed
from engfeed.models import Article
from engfeed.store import Store
from engfeed.summarize import LexicalEmbedder, Summary, document_of, summarize
from engfeed.summarize.sentences import split_sentences
from httpserver import LocalHTTPServer, RequestHandler, Response, unused_port
from test_summarize import JUDGED, real_article

MODEL = "tiny-test-model"
PATH = "/v1/chat/completions"
ARTICLE = "a12"  # Meta's storage for AI: headed sections, many figures


@pytest.fixture(autouse=True)
def no_llm_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ENGFEED_LLM_URL", raising=False)
    monkeypatch.delenv("ENGFEED_LLM_MODEL", raising=False)


# -- the fake server -------------------------------------------------------------------------------
def completion(content: str) -> bytes:
    """An OpenAI chat completion whose message is ``content``."""
    return json.dumps(
        {
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "model": MODEL,
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
            ],
        }
    ).encode()


class ChatServer:
    """POST /v1/chat/completions on the local test server: records each request body and
    answers with :attr:`reply`."""

    def __init__(self, server: LocalHTTPServer, path: str = PATH) -> None:
        self.server = server
        self.bodies: list[dict[str, object]] = []
        self.reply = completion("{}")
        self.status = 200
        self.content_type = "application/json"
        server.route(path, self._handle)

    def answer(self, summary: dict[str, object] | str) -> None:
        self.reply = completion(summary if isinstance(summary, str) else json.dumps(summary))

    def _handle(self, handler: RequestHandler) -> None:
        assert handler.command == "POST"
        body = handler.rfile.read(int(handler.headers.get("Content-Length", "0")))
        self.bodies.append(json.loads(body))
        handler.send_response(self.status)
        handler.send_header("Content-Type", self.content_type)
        handler.send_header("Content-Length", str(len(self.reply)))
        handler.end_headers()
        handler.wfile.write(self.reply)


@pytest.fixture
def chat(http_server: LocalHTTPServer) -> ChatServer:
    return ChatServer(http_server)


# -- answers built from the article ----------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    """An article as the summariser sees it, with reworded facts and invented ones."""

    article: Article
    sentences: list[str]
    text: str
    embedder: LexicalEmbedder
    vecs: Matrix
    good: list[str]  # the article's facts, reworded
    bad: list[str]  # the same facts with a wrong figure or an invented system, and a made-up claim
    heading: str  # a heading of the article, with a reworded point of its own
    heading_point: str


_LOWER = frozenset(
    ["a", "an", "the", "we", "our", "this", "these", "it", "its", "in", "on", "at", "during", "over", "while",
     "with", "one", "however", "so"]
)  # fmt: skip


def reword(sentence: str) -> str:
    """The sentence's fact in other words: "In short, the team ..." for "In short, we ..."."""
    first, rest = sentence.split(" ", 1)
    first = first.lower() if first.lower() in _LOWER else first  # "Meta" stays, "The" goes lower
    text = f"In short, {first} {rest}"
    for old, new in ((" we ", " the team "), (" our ", " its "), (" We ", " The team "), (" Our ", " Its ")):
        text = text.replace(old, new)
    return text


def numbers_of(text: str) -> set[str]:
    return set(re.findall(r"\d+(?:[.,]\d+)*", text.replace(",", "")))


def wrong_figure(sentence: str, article_numbers: set[str]) -> str | None:
    """The sentence with one of its numbers cut to a prefix the article never states ("40%" -> "4%")."""
    for m in re.finditer(r"\d{2,}(?=%| ?(?:ms|x|times|percent|million|billion)\b)", sentence):
        cut = m.group()[:-1]
        if cut not in article_numbers:
            return reword(sentence[: m.start()] + cut + sentence[m.end() :])
    return None


@pytest.fixture(scope="module")
def case(shared_dir: Path) -> Case:
    art = real_article(shared_dir, ARTICLE)
    doc = document_of(art)
    sentences = doc.sentences
    text = "\n\n".join(" ".join(s.sentences) for s in doc.sections)
    embedder = LexicalEmbedder.for_document(doc)
    vecs = embedder.embed(sentences)
    article_numbers = numbers_of(text)

    def fits(s: str) -> bool:
        return 12 <= len(s.split()) <= 40 and not s.endswith("?")

    candidates = [s for s in sentences if fits(s)]
    with_figures = [s for s in candidates if wrong_figure(s, article_numbers)]
    good = [reword(s) for s in candidates[:: max(1, len(candidates) // 6)][:6]]
    invented = reword(candidates[1]).rstrip(".") + " on the Zephyrix scheduler."
    made_up = "The team rewrote the billing pipeline in Haskell and cut cloud costs by 73% in one quarter."
    bad = [x for x in (wrong_figure(with_figures[0], article_numbers), invented, made_up) if x]
    heading, members = doc.chapters()[0]
    point = next(s for i in members for s in doc.sections[i].sentences if fits(s))
    assert len(good) == 6 and len(bad) == 3
    flags = llm.supported([*good, reword(point), *bad], sentences, vecs, embedder, article_text=text)
    assert flags == [True] * 7 + [False] * 3, "the reworded facts must be supported, the invented not"
    return Case(art, sentences, text, embedder, vecs, good, bad, heading, reword(point))


def ask(
    case: Case, url: str, *, timeout: float | None = None, headings: list[str] | None = None
) -> llm.Grounded | None:
    return llm.ask(
        url,
        MODEL,
        title=case.article.title,
        text=case.text,
        sentences=case.sentences,
        sentence_vecs=case.vecs,
        embedder=case.embedder,
        timeout=timeout,
        headings=headings,
    )


def good_answer(case: Case) -> dict[str, object]:
    return {
        "overview": " ".join(case.good[:2]),
        "sections": [{"heading": case.heading, "points": [case.heading_point]}],
        "takeaways": case.good[2:6],
    }


# -- a good answer is used, grounded -----------------------------------------------------------------
def test_a_grounded_answer_is_used(case: Case, chat: ChatServer) -> None:
    chat.answer(good_answer(case))
    grounded = ask(case, chat.server.base)
    assert grounded is not None
    assert grounded.overview == case.good[:2]
    assert grounded.takeaways == case.good[2:6]
    assert grounded.sections == [(case.heading, [case.heading_point])]


def test_sections_under_headings_the_article_lacks_are_dropped(case: Case, chat: ChatServer) -> None:
    answer = good_answer(case)
    answer["sections"] = [
        {"heading": f"  {case.heading.upper()}: ", "points": [case.heading_point]},
        {"heading": "A heading the article does not have", "points": [case.good[5]]},
    ]
    chat.answer(answer)
    grounded = ask(case, chat.server.base, headings=[case.heading, "Another heading"])
    assert grounded is not None
    assert grounded.sections == [(case.heading, [case.heading_point])]  # the article's own spelling
    unchecked = ask(case, chat.server.base)  # without headings, as summarize() calls it today
    assert unchecked is not None and len(unchecked.sections) == 2


def test_the_request_carries_model_messages_and_the_article(case: Case, chat: ChatServer) -> None:
    chat.answer(good_answer(case))
    ask(case, chat.server.base)
    [body] = chat.bodies
    assert body["model"] == MODEL
    messages = body["messages"]
    assert isinstance(messages, list) and [m["role"] for m in messages] == ["system", "user"]
    assert messages[0]["content"] == llm.PROMPT
    user = messages[1]["content"]
    assert user.startswith(f"Title: {case.article.title}\n\n")
    assert case.sentences[0] in user and case.sentences[-1] in user
    assert body["response_format"] == {"type": "json_object"}
    [request] = chat.server.requests
    assert request.method == "POST" and request.path == PATH
    assert request.headers["content-type"] == "application/json"


def test_long_articles_are_cut_before_sending(case: Case, chat: ChatServer) -> None:
    chat.answer(good_answer(case))
    long_text = (case.text + "\n\n") * (llm.MAX_INPUT_CHARS // len(case.text) + 2)
    llm.ask(
        chat.server.base, MODEL, title="T", text=long_text, sentences=case.sentences,
        sentence_vecs=case.vecs, embedder=case.embedder,
    )  # fmt: skip
    user = chat.bodies[0]["messages"][1]["content"]  # type: ignore[index]
    assert len(user) == len("Title: T\n\n") + llm.MAX_INPUT_CHARS


def test_feed_summary_uses_the_model_and_stores_it(
    case: Case, chat: ChatServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chat.answer(good_answer(case))
    monkeypatch.setenv("ENGFEED_LLM_URL", chat.server.base)
    monkeypatch.setenv("ENGFEED_LLM_MODEL", MODEL)
    with stored(tmp_path, case.article) as (feed, art):
        result = feed.summary(art)
        assert result.summary is not None
        summary = result.summary
        assert summary.method == f"llm:{MODEL}"
        assert summary.overview == " ".join(case.good[:2])
        assert list(summary.takeaways) == case.good[2:6]
        assert [(s.heading, list(s.points)) for s in summary.sections] == [
            (case.heading, [case.heading_point])
        ]
        assert summary.to_json()["method"] == f"llm:{MODEL}"
        again = feed.summary(art)
        assert again.to_json() == result.to_json() and len(chat.bodies) == 1  # stored, not asked again
        assert chat.bodies[0]["model"] == MODEL


@pytest.fixture
def model_answers(case: Case, chat: ChatServer, monkeypatch: pytest.MonkeyPatch) -> ChatServer:
    monkeypatch.setenv("ENGFEED_LLM_URL", chat.server.base)
    monkeypatch.setenv("ENGFEED_LLM_MODEL", MODEL)
    return chat


def summary_with_llm(case: Case) -> Summary:
    result = summarize(case.article, llm_settings=config.llm_settings())
    assert result.summary is not None
    return result.summary


def assert_extractive(summary: Summary, case: Case) -> None:
    assert summary.method == "extractive"
    assert set(summary.units()) <= set(case.sentences)


# -- (b) invented bullets are dropped, (c) mostly invented: extractive ----------------------------
def test_invented_bullets_are_dropped(case: Case, model_answers: ChatServer) -> None:
    wrong, invented, made_up = case.bad
    model_answers.answer(
        {
            "overview": f"{case.good[0]} {made_up}",
            "sections": [
                {"heading": case.heading, "points": [invented, case.heading_point]},
                {"heading": "Invented section", "points": [wrong]},
            ],
            "takeaways": [case.good[2], wrong, case.good[3], invented, case.good[4], made_up, case.good[5]],
        }
    )
    summary = summary_with_llm(case)
    assert summary.method == f"llm:{MODEL}"
    assert summary.overview == case.good[0]
    assert list(summary.takeaways) == case.good[2:6]
    assert [(s.heading, list(s.points)) for s in summary.sections] == [(case.heading, [case.heading_point])]
    assert not set(case.bad) & set(summary.units())


def test_mostly_invented_answer_falls_back_to_extractive(case: Case, model_answers: ChatServer) -> None:
    model_answers.answer(
        {"overview": case.good[0], "sections": [], "takeaways": [*case.bad, *case.good[2:4]]}
    )
    assert_extractive(summary_with_llm(case), case)


def test_invented_overview_falls_back_to_extractive(case: Case, model_answers: ChatServer) -> None:
    model_answers.answer({"overview": case.bad[2], "sections": [], "takeaways": case.good[2:6]})
    assert_extractive(summary_with_llm(case), case)


def test_repeated_takeaways_count_once(case: Case, model_answers: ChatServer) -> None:
    model_answers.answer({"overview": case.good[0], "takeaways": [case.good[2]] * 3 + [case.good[3]] * 2})
    assert_extractive(summary_with_llm(case), case)  # two distinct takeaways are too few
    model_answers.answer({"overview": case.good[0], "takeaways": [*case.good[2:5], case.good[2]]})
    assert list(summary_with_llm(case).takeaways) == case.good[2:5]


def test_grounding_checks_whole_numbers_and_names() -> None:
    article = [
        "Caching cut p99 latency by 40% for the checkout service last year.",
        "The team wrote the checkout service in JavaScript on Node.",
        "Redistribution of shards happens nightly across every region.",
    ]
    model = LexicalEmbedder.from_texts(article)
    units = [
        "Caching cut p99 latency by 40% for the checkout service.",  # the article's own claim
        "Caching cut p99 latency by 4% for the checkout service.",  # "4" is only part of "40"
        "The team wrote the checkout service in Java on Node.",  # "Java" is only part of "JavaScript"
        "Nightly, Redis handles redistribution of shards across every region.",  # "redis-tribution"
        "GraphQL caching cut p99 latency by 40% for the checkout service.",  # an invented first word
        "Shards, per region, see redistribution nightly across every region.",  # plural and case are fine
    ]
    flags = llm.supported(units, article, model.embed(article), model, article_text="\n".join(article))
    assert flags == [True, False, False, False, False, True]


def test_grounding_wants_a_claims_numbers_next_to_it() -> None:
    """A figure from another part of the article does not support this claim."""
    article = [
        "We moved the sessions to 6 Redis processes in the spring.",
        "The sessions moved in the spring without downtime.",
        "Redis processes restart in seconds.",
        "We moved the sessions once before.",
        "The old fleet had 128 Memcached hosts.",
    ]
    model = LexicalEmbedder.from_texts(article)
    units = [
        "We moved the sessions to 6 Redis processes in the spring.",
        "We moved the sessions to 128 Redis processes in the spring.",
    ]
    flags = llm.supported(units, article, model.embed(article), model, article_text="\n".join(article))
    assert flags == [True, False]


def test_grounding_refuses_a_claim_that_negates_the_article() -> None:
    article = [
        "We split the keyspace into 64 shards so that each cache host holds a slice.",
        "The cache hosts run in three zones.",
        "Clients find a shard with a consistent hash of the key.",
        "Latency stayed flat during the migration.",
        "Each shard has two replicas in other zones, and none of them is ever promoted by hand.",
    ]
    model = LexicalEmbedder.from_texts(article)
    units = [
        "We split the keyspace into 64 shards so each cache host holds a slice.",
        "We did not split the keyspace into 64 shards so each cache host holds a slice.",
        "None of the replicas is ever promoted by hand.",  # the article says "none" too
    ]
    flags = llm.supported(units, article, model.embed(article), model, article_text="\n".join(article))
    assert flags == [True, False, True]


# -- (d) answers that are not a summary ---------------------------------------------------------------
NOT_A_SUMMARY = {
    "prose": completion("Sure! Here is a summary of the article: it is about the pandemic."),
    "wrong types": completion(json.dumps({"overview": 3, "sections": {}, "takeaways": "none"})),
    "missing keys": completion(json.dumps({"summary": "A summary.", "bullets": ["One.", "Two."]})),
    "a list": completion(json.dumps(["One.", "Two.", "Three."])),
    "broken json": completion('{"overview": "One.", "takeaways": ["Two.", '),
    "empty": completion(""),
    "deep nesting": completion('{"a":' * 30_000 + "1" + "}" * 30_000),
    "not a completion": json.dumps({"error": {"message": "model 'tiny' not found"}}).encode(),
    "no choices": json.dumps({"choices": []}).encode(),
    "null content": json.dumps({"choices": [{"message": {"content": None}}]}).encode(),
    "json list": b"[]",
    "html page": b"<!doctype html><html><body><h1>502 Bad Gateway</h1></body></html>",
    "too large": completion("x" * (llm.MAX_ANSWER_BYTES + 10)),
}


@pytest.mark.parametrize("reply", NOT_A_SUMMARY.values(), ids=NOT_A_SUMMARY.keys())
def test_answers_that_are_not_a_summary_give_none(case: Case, chat: ChatServer, reply: bytes) -> None:
    chat.reply = reply
    assert ask(case, chat.server.base) is None
    assert len(chat.bodies) == 1


@pytest.mark.parametrize("status", [400, 404, 429, 500, 503])
def test_error_statuses_give_none(case: Case, chat: ChatServer, status: int) -> None:
    chat.answer(good_answer(case))
    chat.status = status
    chat.content_type = "text/html"
    assert ask(case, chat.server.base) is None


def test_a_fenced_answer_is_read(case: Case, chat: ChatServer) -> None:
    chat.answer("```json\n" + json.dumps(good_answer(case)) + "\n```")
    grounded = ask(case, chat.server.base)
    assert grounded is not None and grounded.takeaways == case.good[2:6]


def test_no_server_gives_none_quickly(case: Case) -> None:
    started = time.monotonic()
    assert ask(case, f"http://127.0.0.1:{unused_port()}", timeout=5.0) is None
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    "reply", [NOT_A_SUMMARY["not a completion"], NOT_A_SUMMARY["html page"]], ids=["not a completion", "html"]
)
def test_feed_summary_falls_back_on_nonsense(
    case: Case, model_answers: ChatServer, tmp_path: Path, reply: bytes
) -> None:
    model_answers.reply = reply
    with stored(tmp_path, case.article) as (feed, art):
        result = feed.summary(art)
        assert result.summary is not None
        assert_extractive(result.summary, case)
    assert len(model_answers.bodies) == 1


def test_feed_summary_falls_back_on_a_server_error(
    case: Case, model_answers: ChatServer, tmp_path: Path
) -> None:
    model_answers.status = 500
    with stored(tmp_path, case.article) as (feed, art):
        result = feed.summary(art)
        assert result.summary is not None
        assert_extractive(result.summary, case)


# -- (e) slow servers ---------------------------------------------------------------------------------
def test_a_server_slower_than_the_timeout_gives_none_in_time(
    case: Case, http_server: LocalHTTPServer
) -> None:
    http_server.route(PATH, Response(body=completion(json.dumps(good_answer(case))), delay=10.0))
    started = time.monotonic()
    assert ask(case, http_server.base, timeout=0.5) is None
    assert time.monotonic() - started < 3


def test_a_dripping_server_gives_none_in_time(case: Case, http_server: LocalHTTPServer) -> None:
    """A server that sends a byte now and then never trips a per-read timeout; the answer as
    a whole has a deadline."""
    http_server.route(PATH, Response(body=completion(json.dumps(good_answer(case))), drip=0.05))
    started = time.monotonic()
    assert ask(case, http_server.base, timeout=0.5) is None
    assert time.monotonic() - started < 3


def test_feed_summary_with_a_slow_server_is_extractive_in_time(
    case: Case, http_server: LocalHTTPServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    http_server.route(PATH, Response(body=completion(json.dumps(good_answer(case))), delay=10.0))
    monkeypatch.setenv("ENGFEED_LLM_URL", http_server.base)
    monkeypatch.setattr(llm, "TIMEOUT", 0.5)  # read when ask() is called
    with stored(tmp_path, case.article) as (feed, art):
        started = time.monotonic()
        result = feed.summary(art)
        assert time.monotonic() - started < 5
        assert result.summary is not None
        assert_extractive(result.summary, case)
    assert len(http_server.requests) == 1


# -- (f) nothing is sent unless asked -------------------------------------------------------------------
def test_nothing_is_sent_without_a_url(
    case: Case, chat: ChatServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chat.answer(good_answer(case))
    monkeypatch.setenv("ENGFEED_LLM_MODEL", MODEL)  # a model alone does not turn the tier on
    assert config.llm_settings() is None
    monkeypatch.setenv("ENGFEED_LLM_URL", "   ")
    assert config.llm_settings() is None
    with stored(tmp_path, case.article) as (feed, art):
        assert "llm" not in feed.summary_method()
        result = feed.summary(art)
        assert result.summary is not None
        assert_extractive(result.summary, case)
    summary = summarize(case.article).summary
    assert summary is not None and summary.method == "extractive"
    assert chat.server.requests == [] and chat.bodies == []


def test_llm_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENGFEED_LLM_URL", " http://127.0.0.1:11434 ")
    assert config.llm_settings() == ("http://127.0.0.1:11434", "default")
    monkeypatch.setenv("ENGFEED_LLM_MODEL", "llama3.2")
    assert config.llm_settings() == ("http://127.0.0.1:11434", "llama3.2")


# -- (g) the endpoint --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:11434", "http://127.0.0.1:11434/v1/chat/completions"),
        ("http://127.0.0.1:11434/", "http://127.0.0.1:11434/v1/chat/completions"),
        ("http://127.0.0.1:11434/v1", "http://127.0.0.1:11434/v1/chat/completions"),
        ("http://127.0.0.1:11434/v1/", "http://127.0.0.1:11434/v1/chat/completions"),
        ("http://127.0.0.1:8080/v1/chat/completions", "http://127.0.0.1:8080/v1/chat/completions"),
        ("http://127.0.0.1:8080/v1/chat/completions/", "http://127.0.0.1:8080/v1/chat/completions"),
        ("http://127.0.0.1:8080/llm", "http://127.0.0.1:8080/llm/v1/chat/completions"),
        ("http://127.0.0.1:8080/llm/v1", "http://127.0.0.1:8080/llm/v1/chat/completions"),
    ],
)
def test_endpoint(url: str, expected: str) -> None:
    assert llm.endpoint(url) == expected


@pytest.mark.parametrize("form", ["{base}", "{base}/", "{base}/v1", "{base}/v1/chat/completions"])
def test_every_url_form_reaches_the_server(case: Case, chat: ChatServer, form: str) -> None:
    chat.answer(good_answer(case))
    assert ask(case, form.format(base=chat.server.base)) is not None
    assert [r.path for r in chat.server.requests] == [PATH]


# -- grounding with the real model -------------------------------------------------------------------
def test_real_model_keeps_key_points_and_drops_distractors(shared_dir: Path, chat: ChatServer) -> None:
    """The judged set's hand-written key points (reworded facts of the article) and its
    plausible-but-unsupported distractors, graded by MiniLM as a store with embeddings does."""
    from engfeed.embed import get_embedder

    [item] = [a for a in JUDGED["articles"] if a["id"] == "a21"]
    points = [str(p["point"]) for p in item["points"]]
    distractors = [str(d) for d in item["distractors"]]
    art = real_article(shared_dir, "a21")
    doc = document_of(art)
    model: Embedder = get_embedder()
    chat.answer({"overview": points[0], "sections": [], "takeaways": [*points[1:], *distractors]})
    text = "\n\n".join(" ".join(s.sentences) for s in doc.sections)
    grounded = llm.ask(
        chat.server.base, MODEL, title=art.title, text=text, sentences=doc.sentences,
        sentence_vecs=model.embed(doc.sentences), embedder=model,
    )  # fmt: skip
    assert grounded is not None
    assert grounded.overview == split_sentences(points[0])
    assert 3 <= len(grounded.takeaways) <= 6
    assert set(grounded.takeaways) <= set(points)
    assert not set(distractors) & {*grounded.takeaways, *grounded.overview}


# -- helpers ------------------------------------------------------------------------------------------
@contextmanager
def stored(folder: Path, article: Article) -> Iterator[tuple[Feed, Article]]:
    """A Feed (no embeddings: lexical grounding) over a fresh store holding ``article``."""
    store = Store(folder / "llm.db")
    with store.transaction() as tx:
        store.upsert_articles([article], source_id=None, conn=tx)
    feed = Feed(store, embedder=None)
    try:
        found = feed.article(article.uid)
        assert found is not None
        yield feed, found
    finally:
        feed.close()
