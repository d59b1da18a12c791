"""The learned angle heads (engfeed.angle_model) and how the labeller uses them."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engfeed.angle_model import (
    STYLE,
    AngleHead,
    AngleModel,
    definition_hash,
    sigmoid,
    tokens,
)
from engfeed.angles import AngleLabeler, angles_signature, load_angles
from engfeed.angles_feedback import NEIGHBOUR_LOGIT, FeedbackModel
from engfeed.embed import get_embedder
from pgserver import NewStore
from test_angles import FakeEmbedder

ANGLES = load_angles()
NAMES = [a.name for a in ANGLES]
PERF, RELIABLE, ARCH, GRAPHICS, OPTIM, IMPL, BENCH = range(7)
DIM = FakeEmbedder.dim


def head(angle: int = PERF, **changes: object) -> AngleHead:
    """A hand-made head: "lock-free queue" and "latency" push it up, "hiring" down."""
    base = AngleHead(
        name=NAMES[angle],
        definition=definition_hash(ANGLES[angle]),
        bias=-2.0,
        threshold=0.5,
        vector=np.zeros(DIM, dtype=np.float32),
        title_words={"latency": 2.0},
        text_words={"lock-free queue": 2.5, "latency": 1.5, "hiring": -4.0, "the team": 0.05},
        length=0.0,
        strength=0.0,
        cue_in_title=0.0,
        style=(0.0,) * len(STYLE),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def model(*heads: AngleHead, name: str = FakeEmbedder.name) -> AngleModel:
    data = AngleModel(name, DIM, {h.definition: h for h in heads}, {"by": "test"}).to_json()
    return AngleModel.from_json(data)  # through JSON, as the bundled file is read


# --------------------------------------------------------------------------- features


def test_tokens_are_words_and_phrases_without_stopwords() -> None:
    tok = tokens("How we cut p99 latency", "The lock-free queue removed the lock. We measured it.")
    assert {"latency", "p99", "p99 latency", "cut p99"} <= tok.title
    assert "how" not in tok.title and "we" not in tok.title  # stopwords
    assert {"lock-free", "lock-free queue", "queue", "measured"} <= tok.text
    assert "the lock" not in tok.text  # a phrase has no stopword
    assert tok.words == 9
    assert len(tok.style) == len(STYLE)
    assert tok.style[STYLE.index("how/why title")] == 1.0
    assert tok.style[STYLE.index("title only")] == 1.0  # nine words is a teaser


def test_style_counts_code_and_numbers_with_units() -> None:
    text = "We call getUserById() and set max_conns; p99 fell from 120 ms to 80 ms, 3x better. " * 5
    tok = tokens("Tuning the pool", text)
    style = dict(zip(STYLE, tok.style, strict=True))
    assert style["code tokens"] > math.log1p(5) and style["numbers with units"] >= math.log1p(10)
    assert style["title only"] == 0.0 and style["how/why title"] == 0.0
    assert style["we per 10 words"] > 0


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=300), st.text(max_size=2000))
def test_tokens_and_logits_never_fail_on_any_text(title: str, text: str) -> None:
    tok = tokens(title, text)
    logit = head().logits(np.zeros((1, DIM), np.float32), [tok], [(0.0, False)])
    assert np.isfinite(logit).all()
    assert all(w == w.lower() for w in tok.title | tok.text)


# --------------------------------------------------------------------------- the model file


def test_model_round_trips_through_json() -> None:
    h = head(vector=np.linspace(-1, 1, DIM, dtype=np.float32), style=(0.1, 0.2, 0.3, 0.4, -0.5))
    again = model(h).heads[h.definition]
    tok = tokens("Latency", "a lock-free queue")
    vec = np.ones((1, DIM), np.float32) / 4
    assert again.logits(vec, [tok], [(1.0, True)]) == pytest.approx(
        h.logits(vec, [tok], [(1.0, True)]), abs=1e-3
    )
    assert again.threshold == h.threshold and again.fingerprint.startswith(h.definition)


def test_a_head_applies_only_to_its_own_angle_and_model() -> None:
    m = model(head(PERF), head(IMPL))
    assert [h is not None for h in m.heads_for(ANGLES, FakeEmbedder.name)] == [
        a in (PERF, IMPL) for a in range(7)
    ]
    assert m.heads_for(ANGLES, "another-model") == [None] * 7
    edited = [replace(ANGLES[PERF], terms=(*ANGLES[PERF].terms, "nanoseconds")), *ANGLES[1:]]
    assert m.heads_for(edited, FakeEmbedder.name)[PERF] is None  # edited: the prototype rule again


def test_a_bad_model_file_is_refused() -> None:
    data = AngleModel(FakeEmbedder.name, DIM, {head().definition: head()}, {}).to_json()
    data["heads"][0]["vector"] = [0.0] * (DIM + 1)
    with pytest.raises(ValueError, match="expected"):
        AngleModel.from_json(data)


def test_evidence_words_are_the_strongest_pushes_without_repeats() -> None:
    tok = tokens("Latency at scale", "Our lock-free queue cut latency. The team is hiring.")
    words = head().evidence_words(tok)
    assert words[0] == "latency"  # title and text weights add up
    assert "lock-free queue" in words
    assert "hiring" not in words and "the team" not in words  # pulls down / below MIN_EVIDENCE
    assert head().evidence_words(tokens("Hello", "nothing here")) == ()


# --------------------------------------------------------------------------- the labeller


@pytest.fixture
def learned() -> AngleLabeler:
    return AngleLabeler(ANGLES, FakeEmbedder(), learned=model(head(PERF)))


def test_a_head_labels_without_any_cue_term_and_shows_its_words(learned: AngleLabeler) -> None:
    text = "Our new lock-free queue replaces the mutex in the scheduler."
    assert not any(ev.counts for ev in learned.evidence("Scheduler notes", text)[PERF : PERF + 1])
    (match,) = [m for m in learned.label("Scheduler notes", "", text) if m.name == NAMES[PERF]]
    assert match.terms == ("lock-free queue",) and match.score == pytest.approx(
        float(sigmoid(-2.0 + 2.5)), 1e-3
    )


def test_no_evidence_no_angle_even_when_the_head_is_sure(learned: AngleLabeler) -> None:
    sure = replace(learned.heads[PERF], bias=10.0)  # type: ignore[type-var]
    labeler = AngleLabeler(ANGLES, FakeEmbedder(), learned=model(sure))
    assert labeler.label("Company news", "", "A picnic for everyone.") == ()
    explained = {e.angle: e for e in labeler.explain("Company news", "", "A picnic for everyone.")}
    perf = explained[NAMES[PERF]]
    assert perf.rule == "learned" and not perf.chosen and perf.judgement.reason.startswith("no evidence")


def test_below_its_threshold_a_head_abstains(learned: AngleLabeler) -> None:
    text = "The team is hiring engineers who care about latency."
    assert NAMES[PERF] not in [m.name for m in learned.label("Jobs", "", text)]
    perf = next(e for e in learned.explain("Jobs", "", text) if e.angle == NAMES[PERF])
    assert "below the threshold 0.50" in perf.judgement.reason and perf.threshold == 0.5


def test_verdicts_are_final_and_neighbours_move_the_probability(learned: AngleLabeler) -> None:
    title, text = "Scheduler notes", "Our new lock-free queue replaces the mutex in the scheduler."
    vec = FakeEmbedder().embed([title])[0]
    learned.feedback = FeedbackModel.build(NAMES, [(1, NAMES[PERF], -1)], {1: vec})
    said_no = learned.label(title, "", text, vec, article_id=1)
    assert NAMES[PERF] not in [m.name for m in said_no]  # the reader said no
    near = learned.explain(title, "", text, vec, article_id=2)  # same vector: full weight
    perf = next(e for e in near if e.angle == NAMES[PERF])
    before = float(sigmoid(-2.0 + 2.5))
    assert perf.judgement.nudge == pytest.approx(float(sigmoid(0.5 - NEIGHBOUR_LOGIT)) - before, abs=1e-4)
    assert not perf.chosen  # 0.62 moved to 0.01: under the threshold
    learned.feedback = FeedbackModel.build(NAMES, [(1, NAMES[PERF], 1)], {1: vec})
    added = learned.label("Anything", "", "nothing relevant", vec, article_id=1)
    assert added[0].name == NAMES[PERF]


def test_angles_without_a_head_keep_the_prototype_rule(learned: AngleLabeler) -> None:
    rules = {e.angle: e.rule for e in learned.explain("Postmortem of an outage", "", "The outage ...")}
    assert rules[NAMES[PERF]] == "learned" and rules[NAMES[RELIABLE]] == "prototype"
    plain = AngleLabeler(ANGLES, None, learned=model(head(PERF)))  # no embeddings: no heads
    assert plain.heads == [None] * 7
    assert {e.rule for e in plain.explain("Postmortem", "", "outage")} == {"evidence"}


def test_the_heads_are_part_of_the_label_signature(learned: AngleLabeler) -> None:
    plain = AngleLabeler(ANGLES, FakeEmbedder(), learned=False)
    assert plain.signature == angles_signature(ANGLES, FakeEmbedder.name)
    assert learned.signature != plain.signature
    retrained = AngleLabeler(ANGLES, FakeEmbedder(), learned=model(head(PERF, bias=-1.0)))
    assert retrained.signature not in (learned.signature, plain.signature)


# --------------------------------------------------------------------------- the bundled heads


def test_bundled_heads_cover_the_bundled_angles_for_the_shipped_embedder() -> None:
    bundled = AngleModel.bundled()
    assert bundled is not None
    heads = bundled.heads_for(ANGLES, get_embedder().name)
    assert heads[PERF] is not None and heads[IMPL] is not None
    for h in heads:
        if h is None:
            continue
        assert 0 < h.threshold < 1 and h.vector.shape == (bundled.dim,)
        assert np.isfinite(h.vector).all() and len(h.style) == len(STYLE)
    assert bundled.about["by"] == "bench/relevance/angle_model.py"


def test_bundled_heads_label_a_clear_article_and_skip_a_hiring_post() -> None:
    labeler = AngleLabeler(ANGLES, get_embedder())
    text = (
        "Our p99 latency doubled under load. Profiling showed lock contention in the connection pool: "
        "every request took a global mutex. We replaced it with a sharded pool and per-core queues. "
        "Throughput rose from 40k to 95k requests per second and p99 latency fell from 180 ms to 35 ms. "
        "CPU usage dropped by a third. Here is how we found the bottleneck with flame graphs."
    )
    names = [m.name for m in labeler.label("How we cut p99 latency by 5x in our API gateway", "", text)]
    assert NAMES[PERF] in names
    hiring = "We are hiring! Join our friendly team in Berlin. Great benefits and free lunch."
    assert labeler.label("We're hiring engineers", "", hiring) == ()


# --------------------------------------------------------------------------- ranking both rules


def test_angles_of_both_rules_rank_on_one_scale_and_explain_says_why_one_was_left_out() -> None:
    from engfeed.angles import Calibration, Evidence, Learned

    labeler = AngleLabeler(ANGLES, None, learned=False)
    cal = Calibration()
    found = [Evidence() for _ in ANGLES]
    for a, term in (
        (PERF, "latency"),
        (IMPL, "implementation"),
        (BENCH, "benchmark"),
        (ARCH, "architecture"),
    ):
        found[a].counts[term] += 1
        found[a].surface[term] = Counter({term: 1})
    semantic = [0.0] * 7
    semantic[BENCH] = cal.threshold + 0.2  # prototype rule: 0.2 over its threshold = 2.4 units
    learned: list[Learned | None] = [None] * 7
    learned[PERF] = Learned(logit=0.0, threshold=0.1, words=())  # p 0.5: 2.2 log-odds over
    learned[IMPL] = Learned(logit=3.0, threshold=0.1, words=())  # p 0.95: 5.2 over
    learned[ARCH] = Learned(logit=-3.0, threshold=0.1, words=())  # below its threshold
    got = labeler.decide(found, semantic, learned=learned)
    assert [m.name for m in got] == [NAMES[IMPL], NAMES[BENCH]]  # BENCH's margin beats PERF's
    assert got[0].score == pytest.approx(float(sigmoid(3.0)), abs=1e-4)

    matches, dropped = labeler._choose(found, semantic, None, None, learned)
    assert matches == got and set(dropped) == {PERF}
    assert dropped[PERF] == "2 angles cleared their thresholds by more"
    added = labeler.decide(found, semantic, learned=learned, verdicts={ARCH: 1})
    assert [m.name for m in added] == [NAMES[ARCH], NAMES[IMPL]]  # the reader's angle first


def test_the_store_keeps_the_labellers_order(new_store: NewStore) -> None:
    from engfeed.models import AngleMatch, Article
    from engfeed.store import Store

    store = Store(new_store("order"))
    try:
        art = Article(uid="u1", url="https://a.example/1", title="One", published=datetime.now(UTC))
        with store.transaction() as tx:
            store.upsert_articles([art], source_id=None, conn=tx)
        (aid,) = store.angles.needing("sig")
        first, second = AngleMatch(NAMES[BENCH], ("benchmark",), 0.5), AngleMatch(NAMES[PERF], (), 0.9)
        store.angles.save([(aid, (first, second))], "sig")
        assert [m.name for m in store.article("u1").angles] == [NAMES[BENCH], NAMES[PERF]]  # not by score
    finally:
        store.close()


def test_strength_puts_both_rules_on_one_scale_for_the_digest(learned: AngleLabeler) -> None:
    from engfeed.digest import select
    from engfeed.models import AngleMatch, Article

    cal = learned.calibration
    perf = AngleMatch(NAMES[PERF], ("latency",), 0.62)  # a head at threshold 0.5: +0.49 log-odds
    bench = AngleMatch(NAMES[BENCH], ("benchmark",), cal.threshold + 0.1)  # prototype: +1.2
    assert learned.strength(perf) == pytest.approx(math.log(0.62 / 0.38), abs=1e-6)
    assert learned.strength(bench) == pytest.approx(12 * 0.1, abs=1e-6)
    assert learned.strength(AngleMatch("gone", (), 0.5)) == pytest.approx(0.5 - cal.threshold)
    now = datetime.now(UTC)
    a = Article(uid="a", url="https://x.example/a", title="A", published=now, angles=(perf,))
    b = Article(uid="b", url="https://x.example/b", title="B", published=now, angles=(bench,))

    def ranked(strength: Callable[[AngleMatch], float] | None = None) -> list[str]:
        groups = select([a, b], angle_order=NAMES, limit=1, strength=strength)
        return [e.article.uid for g in groups for e in g.entries]

    assert ranked() == ["a"]  # raw scores: 0.62 > 0.53
    assert ranked(strength=learned.strength) == ["b"]  # on one scale the prototype label is stronger


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.text(max_size=80), st.text(max_size=600)), min_size=1, max_size=4))
def test_compiled_heads_score_as_the_reference_does(articles: list[tuple[str, str]]) -> None:
    from engfeed.angle_model import CompiledHeads

    bundled = AngleModel.bundled()
    assert bundled is not None
    heads = list(bundled.heads.values())
    words = "latency p99 throughput outage postmortem architecture refactor the api memory we our"
    toks = [tokens(t, f"{x} {words}" if i % 2 else x) for i, (t, x) in enumerate(articles)]
    vecs = np.random.default_rng(len(articles)).normal(size=(len(toks), bundled.dim)).astype(np.float32)
    cues = [[(float(i), bool(i % 2)) for _ in heads] for i in range(len(toks))]
    compiled = CompiledHeads.of(heads)
    got = compiled.logits(vecs, toks, cues)
    evident = compiled.has_evidence(compiled.encode(toks))
    for k, h in enumerate(heads):
        want = h.logits(vecs, toks, [c[k] for c in cues])
        assert got[:, k] == pytest.approx(want, abs=1e-6)
        assert [bool(e) for e in evident[:, k]] == [bool(h.evidence_words(t)) for t in toks]
