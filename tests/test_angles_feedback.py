"""The reader's feedback on useful angles (issue #9): the example model
(engfeed.angles_feedback), the labeller's decision with verdicts and nudges, the Feed with
and without embeddings, the CLI, the article page and the API."""

from __future__ import annotations

import json
import math
import re
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import pytest
from starlette.testclient import TestClient

from conftest import run_cli
from engfeed.angles import MAX_ANGLES, AngleLabeler, Calibration, Evidence, load_angles
from engfeed.angles_feedback import (
    NEIGHBOUR_FULL,
    NEIGHBOUR_LOGIT,
    NEIGHBOUR_SIM,
    NEIGHBOUR_WEIGHT,
    VERDICTS,
    FeedbackModel,
    neighbours,
)
from engfeed.errors import EngfeedError
from engfeed.feed import Feed
from engfeed.models import AngleMatch, Article
from pgserver import NewStore, store_location
from test_web import client_for
from test_web_reading import token_of

pytestmark = pytest.mark.usefixtures("cli_env")
run = run_cli

ANGLES = load_angles(None)
NAMES = [a.name for a in ANGLES]
PERF, RELIABLE, ARCH, GRAPHICS, OPTIM, IMPL, BENCH = range(7)
CAL = Calibration()
EXPLAIN_KEYS = {
    "angle",
    "rule",
    "chosen",
    "reason",
    "score",
    "threshold",
    "meaning",
    "evidence",
    "feedback_nudge",
    "verdict",
    "terms",
    "passage",
}
ARTICLE_KEYS = {"id", "url", "title", "source", "published", "angles", "saved", "read", "note"}

# Our own text. Without embeddings an angle needs a cue in the title and plenty in the text.
P99 = (
    "Cutting p99 latency in our API gateway",
    "We cut p99 latency and tail latency by profiling the hot path; throughput rose and latency fell.",
)
OUTAGE = (
    "Postmortem: the outage of our payments API",
    "The outage lasted three hours. The root cause was a failover bug; this incident review covers it.",
)
HIRING = ("Hiring for our platform team", "We are growing the team and looking for engineers.")


def rss(
    items: Sequence[tuple[str, str]], *, title: str = "Acme Eng", site: str = "https://acme.example"
) -> bytes:
    """An RSS feed of (title, body) items, one day apart; item i links to ``{site}/p{i}``."""
    out = []
    for i, (head, body) in enumerate(items):
        out.append(
            f"<item><title>{escape(head)}</title><link>{site}/p{i}</link><guid>{site}/p{i}</guid>"
            f"<pubDate>Thu, {i + 1:02d} Oct 2026 12:00:00 +0000</pubDate>"
            f"<description>{escape(body)}</description></item>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel>'
        f"<title>{escape(title)}</title><link>{site}/</link><description>d</description>"
        + "".join(out)
        + "</channel></rss>"
    ).encode()


def by_title(feed: Feed) -> dict[str, Article]:
    return {a.title: a for a in feed.articles(limit=100).articles}


def names(art: Article | None) -> list[str]:
    assert art is not None
    return [m.name for m in art.angles]


# =========================================================================== 1. FeedbackModel


def at(cos: float, scale: float = 1.0) -> np.ndarray:
    """A 3-d vector at cosine ``cos`` from (1, 0, 0), of length ``scale``."""
    return np.array([cos, math.sqrt(max(0.0, 1 - cos * cos)), 0.0], dtype=np.float32) * scale


E1 = np.array([1.0, 0.0, 0.0], dtype=np.float32)
E3 = np.array([0.0, 0.0, 1.0], dtype=np.float32)


def strength_at(cos: float) -> float:
    return NEIGHBOUR_WEIGHT * min(1.0, max(0.0, (cos - NEIGHBOUR_SIM) / (NEIGHBOUR_FULL - NEIGHBOUR_SIM)))


def test_constants_are_ordered() -> None:
    assert 0 < NEIGHBOUR_SIM < NEIGHBOUR_FULL <= 1 and 0 < NEIGHBOUR_WEIGHT < CAL.threshold
    assert VERDICTS == {"yes": 1, "no": -1, "clear": None}


def test_build_keeps_known_angles_case_insensitively_and_ignores_the_rest() -> None:
    rows = [(1, "A", 1), (2, "gone", -1), (3, "b", -1), (4, "c", 5), (4, "a", -7)]
    vectors = {1: E1 * 2, 2: E1, 3: E3, 9: E1}
    model = FeedbackModel.build(["a", "B", "c"], rows, vectors)
    assert model.angle_names == ["a", "B", "c"]
    assert model.verdicts == {1: {0: 1}, 3: {1: -1}, 4: {2: 1, 0: -1}}  # ±1 whatever the magnitude
    assert model.verdicts_of(1) == {0: 1} and model.verdicts_of(2) == {} and model.verdicts_of(None) == {}
    assert model  # it has verdicts
    # only articles with a vector become examples; the unknown angle's article is no example
    assert set(model.positives) == {0} and set(model.negatives) == {1}
    assert np.allclose(model.positives[0], [[1, 0, 0]])  # stored as a unit vector
    assert np.allclose(model.negatives[1], [[0, 0, 1]])
    examples = model.example_vectors()
    assert examples is not None and examples.shape == (2, 3)


def test_an_empty_model_or_one_without_vectors_moves_nothing() -> None:
    empty = FeedbackModel.build(["a", "b"], [])
    assert not empty and empty.verdicts_of(1) == {} and empty.example_vectors() is None
    assert empty.bias(np.ones((3, 4), np.float32)).tolist() == [[0.0, 0.0]] * 3
    no_vectors = FeedbackModel.build(["a", "b"], [(1, "a", 1), (2, "b", -1)])  # embeddings off
    assert no_vectors and no_vectors.example_vectors() is None
    assert not no_vectors.bias(np.stack([E1, E3])).any()
    only_unknown = FeedbackModel.build(["a"], [(1, "zzz", 1)], {1: E1})
    assert not only_unknown and only_unknown.example_vectors() is None
    out = FeedbackModel.build(["a"], [(1, "a", 1)], {1: E1}).bias(np.zeros((0, 3), np.float32))
    assert out.shape == (0, 1)


def test_bias_is_full_weight_for_an_identical_vector_with_the_verdicts_sign() -> None:
    model = FeedbackModel.build(["pos", "neg", "other"], [(1, "pos", 1), (2, "neg", -1)], {1: E1, 2: E1})
    bias = model.bias(np.stack([E1, E1 * 7.5]))  # the length of a vector does not matter
    assert bias.shape == (2, 3) and bias.dtype == np.float32
    assert bias[:, 0] == pytest.approx([NEIGHBOUR_WEIGHT] * 2)
    assert bias[:, 1] == pytest.approx([-NEIGHBOUR_WEIGHT] * 2)
    assert bias[:, 2].tolist() == [0.0, 0.0]


@pytest.mark.parametrize("cos", [-1.0, 0.0, 0.3, 0.6, NEIGHBOUR_SIM - 0.01])
def test_bias_is_zero_below_the_neighbour_similarity(cos: float) -> None:
    model = FeedbackModel.build(["pos", "neg"], [(1, "pos", 1), (2, "neg", -1)], {1: E1, 2: E1})
    assert model.bias(at(cos, 3.0).reshape(1, -1)).tolist() == [[0.0, 0.0]]


def test_bias_grows_linearly_between_the_two_similarities_and_saturates() -> None:
    model = FeedbackModel.build(["pos", "neg"], [(1, "pos", 1), (2, "neg", -1)], {1: E1, 2: E1})
    cosines = [0.66, 0.70, (NEIGHBOUR_SIM + NEIGHBOUR_FULL) / 2, 0.80, 0.89, NEIGHBOUR_FULL + 0.02, 0.99]
    bias = model.bias(np.stack([at(c) for c in cosines]))
    expected = [strength_at(c) for c in cosines]
    assert bias[:, 0] == pytest.approx(expected, abs=1e-5)
    assert bias[:, 1] == pytest.approx([-e for e in expected], abs=1e-5)
    assert bias[2, 0] == pytest.approx(NEIGHBOUR_WEIGHT / 2, abs=1e-5)  # half way: half the weight
    assert bias[-1, 0] == pytest.approx(NEIGHBOUR_WEIGHT) and bias[-2, 0] == pytest.approx(NEIGHBOUR_WEIGHT)
    steps = np.diff(bias[:5, 0]) / np.diff(cosines[:5])  # one slope across the ramp
    slope = NEIGHBOUR_WEIGHT / (NEIGHBOUR_FULL - NEIGHBOUR_SIM)
    assert steps == pytest.approx([slope] * 4, rel=1e-3)


def test_bias_uses_the_nearest_example_and_sums_opposite_verdicts() -> None:
    rows = [(1, "a", 1), (2, "a", 1), (3, "a", -1), (4, "b", 1)]
    vectors = {1: E1, 2: E1, 3: at(0.8), 4: E3}
    model = FeedbackModel.build(["a", "b"], rows, vectors)
    assert model.positives[0].shape == (2, 3) and model.negatives[0].shape == (1, 3)
    bias = model.bias(np.stack([E1, E3, np.zeros(3, np.float32)]))
    # two identical positive examples count once (the nearest), minus the negative one at 0.8
    assert bias[0, 0] == pytest.approx(NEIGHBOUR_WEIGHT - strength_at(0.8), abs=1e-5)
    assert bias[0, 1] == 0.0
    assert bias[1].tolist() == pytest.approx([0.0, NEIGHBOUR_WEIGHT])
    assert bias[2].tolist() == [0.0, 0.0] and np.isfinite(bias).all()  # a zero vector: no NaN


def test_neighbours_are_the_ids_at_or_above_the_similarity() -> None:
    ids = [10, 20, 30, 40, 50]
    matrix = np.stack([E1 * 3, at(NEIGHBOUR_SIM + 0.01), at(NEIGHBOUR_SIM - 0.01), at(0.99, 0.5), E3])
    assert neighbours(E1, ids, matrix) == [10, 20, 40]
    assert neighbours(E1.tolist(), ids, matrix) == [10, 20, 40]  # any array-like
    assert neighbours(E3, ids, matrix) == [50]
    assert neighbours(E1, [], np.zeros((0, 3), np.float32)) == []
    assert all(isinstance(i, int) for i in neighbours(E1, np.array(ids), matrix))


# =========================================================================== 2. the decision


@pytest.fixture(scope="module")
def plain_labeler() -> AngleLabeler:
    return AngleLabeler(ANGLES, None)


def ev(*terms: str, title: Sequence[str] = (), count: int = 1) -> Evidence:
    e = Evidence()
    for t in terms:
        e.counts[t] = count
        e.surface[t] = Counter({t: count})
    e.in_title = set(title)
    return e


def evidences(found: dict[int, Evidence]) -> list[Evidence]:
    return [found.get(a, Evidence()) for a in range(len(ANGLES))]


def spec(term: str) -> float:
    """engfeed.angles._specificity by hand: phrases and jargon 1.0, long words 0.85, words 0.7."""
    if " " in term or not term.isalpha():
        return 1.0
    return 0.85 if len(term) >= 10 else 0.7


def hand_strength(terms: Sequence[str], title: Sequence[str] = (), count: int = 1) -> float:
    return sum(spec(t) * (1 + math.log(count)) * (1.5 if t in title else 1.0) for t in terms)


def hand_score(sem: float, strength: float, in_title: bool) -> float:
    return sem + CAL.evidence_weight * math.log1p(strength) + (CAL.title_bonus if in_title else 0.0)


# Per angle: meaning and evidence. PERF passes clearly, ARCH passes within the second margin,
# OPTIM has evidence but scores under the threshold, GRAPHICS has no evidence, IMPL is under
# the semantic floor.
SEM = [0.40, 0.10, 0.50, 0.60, 0.38, 0.22, 0.10]
FOUND = {
    PERF: ev("latency", "p99", title=["latency"], count=2),
    ARCH: ev("architecture"),
    OPTIM: ev("caching"),
    IMPL: ev("implementation", "algorithm", title=["algorithm"], count=3),
}
S_PERF = hand_score(SEM[PERF], hand_strength(["latency", "p99"], ["latency"], 2), True)
S_ARCH = hand_score(SEM[ARCH], hand_strength(["architecture"]), False)
S_OPTIM = hand_score(SEM[OPTIM], hand_strength(["caching"]), False)


def test_hand_computed_expectations_hold() -> None:
    assert Calibration(threshold=0.43, semantic_floor=0.25, second_margin=0.05) == CAL
    assert CAL.threshold < S_PERF and CAL.second_margin > S_PERF - S_ARCH and CAL.threshold < S_ARCH
    assert CAL.threshold > S_OPTIM
    e = FOUND[PERF]
    assert e.strength({"latency": 0.7, "p99": 1.0}) == pytest.approx(
        hand_strength(["latency", "p99"], ["latency"], 2)
    )


def test_without_verdicts_or_bias_the_decision_is_the_calibrated_rule(plain_labeler: AngleLabeler) -> None:
    found = evidences(FOUND)
    got = plain_labeler.decide(found, SEM)
    assert [m.name for m in got] == [NAMES[PERF], NAMES[ARCH]]
    assert [m.score for m in got] == [round(S_PERF, 4), round(S_ARCH, 4)]
    assert got[0].terms == ("latency", "p99") and got[1].terms == ("architecture",)
    # empty verdicts and a zero bias change nothing
    assert plain_labeler.decide(found, SEM, verdicts={}, bias=[0.0] * 7) == got
    assert plain_labeler.decide(found, SEM, verdicts=None, bias=None) == got
    # without meaning scores: the title cue with enough strength is what counts
    strong = evidences({PERF: ev("latency", "p99", "tail latency", title=["latency", "p99"], count=3)})
    only = plain_labeler.decide(strong, None)
    s = hand_strength(["latency", "p99", "tail latency"], ["latency", "p99"], 3)
    assert s >= CAL.no_vector_evidence
    assert only == (AngleMatch(NAMES[PERF], only[0].terms, round(s / (s + CAL.no_vector_evidence), 4)),)
    assert plain_labeler.decide(evidences({PERF: ev("latency", count=3)}), None) == ()  # not in the title


def test_no_removes_an_angle_that_would_pass(plain_labeler: AngleLabeler) -> None:
    found = evidences(FOUND)
    got = plain_labeler.decide(found, SEM, verdicts={PERF: -1})
    assert [m.name for m in got] == [NAMES[ARCH]]
    both = plain_labeler.decide(found, SEM, verdicts={PERF: -1, ARCH: -1})
    assert both == ()  # OPTIM is still under the threshold: no third angle takes over
    strong = evidences({PERF: ev("latency", "p99", "tail latency", title=["latency", "p99"], count=3)})
    assert plain_labeler.decide(strong, None, verdicts={PERF: -1}) == ()
    # a "no" wins over any nudge
    assert plain_labeler.decide(found, SEM, verdicts={PERF: -1}, bias=[1.0] * 7)[0].name == NAMES[ARCH]


def test_yes_adds_an_angle_without_evidence_and_below_the_threshold(plain_labeler: AngleLabeler) -> None:
    found = evidences(FOUND)
    added = plain_labeler.decide(found, SEM, verdicts={GRAPHICS: 1})  # no cue term at all
    assert added[0] == AngleMatch(NAMES[GRAPHICS], (), CAL.threshold)
    assert len(added) == MAX_ANGLES and added[1].name == NAMES[PERF]
    below = plain_labeler.decide(found, SEM, verdicts={OPTIM: 1})  # evidence, score under threshold
    assert below[0] == AngleMatch(NAMES[OPTIM], ("caching",), CAL.threshold)
    floor = plain_labeler.decide(found, SEM, verdicts={IMPL: 1})  # meaning under the floor
    assert floor[0].name == NAMES[IMPL] and floor[0].score >= CAL.threshold
    two = plain_labeler.decide(found, SEM, verdicts={GRAPHICS: 1, OPTIM: 1})
    assert {m.name for m in two} == {NAMES[GRAPHICS], NAMES[OPTIM]}  # the reader's own fill the slots
    # the reader's verdicts count without embeddings too, even with nothing in the title
    assert plain_labeler.decide(evidences({}), None, verdicts={BENCH: 1}) == (
        AngleMatch(NAMES[BENCH], (), CAL.threshold),
    )
    weak = plain_labeler.decide(evidences({OPTIM: ev("caching")}), None, verdicts={OPTIM: 1})
    assert weak == (AngleMatch(NAMES[OPTIM], ("caching",), CAL.threshold),)


def test_a_negative_nudge_pushes_a_passing_angle_under_and_a_positive_one_over(
    plain_labeler: AngleLabeler,
) -> None:
    found = evidences(FOUND)
    bias = [0.0] * 7
    bias[PERF] = -NEIGHBOUR_WEIGHT
    got = plain_labeler.decide(found, SEM, bias=bias)
    assert CAL.threshold > S_PERF - NEIGHBOUR_WEIGHT
    assert [m.name for m in got] == [NAMES[ARCH]]
    # alone, OPTIM is under the threshold; a nudge from similar accepted articles lifts it
    alone = evidences({OPTIM: ev("caching")})
    assert plain_labeler.decide(alone, SEM) == ()
    bias = [0.0] * 7
    bias[OPTIM] = 0.05
    lifted = plain_labeler.decide(alone, SEM, bias=bias)
    assert lifted == (AngleMatch(NAMES[OPTIM], ("caching",), round(S_OPTIM + 0.05, 4)),)
    # a nudge on an angle without evidence never adds it: no evidence, no angle
    bias[GRAPHICS] = NEIGHBOUR_WEIGHT
    assert NAMES[GRAPHICS] not in {m.name for m in plain_labeler.decide(found, SEM, bias=bias)}
    # the nudge also counts against the semantic floor
    bias = [0.0] * 7
    bias[ARCH] = -(SEM[ARCH] - CAL.semantic_floor) - 0.01
    judged = plain_labeler._judge(ARCH, found[ARCH], SEM, None, bias)
    assert not judged.accepted and "below the floor" in judged.reason
    assert judged.nudge == pytest.approx(bias[ARCH]) and judged.meaning == pytest.approx(
        SEM[ARCH] + bias[ARCH]
    )


def test_judgements_carry_the_reason_and_the_figures(plain_labeler: AngleLabeler) -> None:
    found = evidences(FOUND)
    judge = plain_labeler._judge
    no = judge(PERF, found[PERF], SEM, {PERF: -1}, None)
    assert (no.accepted, no.score, no.reason, no.verdict) == (
        False,
        None,
        "you said it is not this angle",
        -1,
    )
    yes = judge(GRAPHICS, found[GRAPHICS], SEM, {GRAPHICS: 1}, None)
    assert (yes.accepted, yes.reason, yes.verdict) == (True, "you added this angle", 1)
    none = judge(GRAPHICS, found[GRAPHICS], SEM, None, None)
    assert (none.accepted, none.reason) == (False, "none of its cue terms is in the text")
    ok = judge(PERF, found[PERF], SEM, None, [0.0] * 7)
    assert ok.accepted and ok.score == pytest.approx(S_PERF) and ok.reason.startswith("score 0.5")
    under = judge(OPTIM, found[OPTIM], SEM, None, None)
    assert not under.accepted and under.reason == f"score {S_OPTIM:.2f} below the threshold 0.43"
    floor = judge(IMPL, found[IMPL], SEM, None, None)
    assert not floor.accepted and floor.reason == "meaning 0.22 below the floor 0.25"
    no_title = judge(OPTIM, found[OPTIM], None, None, None)
    assert no_title.reason == "no cue term in the title (needed without embeddings)"


def test_label_and_label_many_apply_the_verdicts_of_the_given_ids() -> None:
    labeler = AngleLabeler(ANGLES, None)
    text = (P99[0], "", P99[1])
    assert names_of(labeler.label(*text, article_id=7)) == [NAMES[PERF]]
    labeler.feedback = FeedbackModel.build(NAMES, [(7, NAMES[PERF], -1), (8, NAMES[PERF], 1)])
    assert labeler.label(*text, article_id=7) == ()
    assert names_of(labeler.label(*text)) == [NAMES[PERF]]  # no id: no verdict applies
    hiring = (HIRING[0], "", HIRING[1])  # not one cue term of any angle
    assert labeler.label(*hiring) == ()
    assert labeler.label(*hiring, article_id=8) == (AngleMatch(NAMES[PERF], (), CAL.threshold),)
    got = labeler.label_many([text, hiring, text], ids=[8, 7, 9])
    assert [names_of(g) for g in got] == [[NAMES[PERF]], [], [NAMES[PERF]]]
    # a "yes" on any angle, whatever its position in the file
    for a in range(len(ANGLES)):
        labeler.feedback = FeedbackModel.build(NAMES, [(8, NAMES[a], 1)])
        assert names_of(labeler.label(*hiring, article_id=8)) == [NAMES[a]], NAMES[a]


def names_of(matches: Sequence[AngleMatch]) -> list[str]:
    return [m.name for m in matches]


# =========================================================================== 3. the Feed, no embeddings


@pytest.fixture
def plain(tmp_path: Path, request: pytest.FixtureRequest, backend: str) -> Iterator[Feed]:
    """Three articles on each backend, embeddings off."""
    (tmp_path / "acme.xml").write_bytes(rss([P99, OUTAGE, HIRING]))
    feed = Feed.open(store_location(request, backend, "plain"), embed=False)
    feed.import_paths([tmp_path / "acme.xml"])
    yield feed
    feed.close()


def test_the_generated_articles_are_labelled_by_title_evidence(plain: Feed) -> None:
    arts = by_title(plain)
    assert names(arts[P99[0]]) == [NAMES[PERF]]
    assert names(arts[OUTAGE[0]]) == [NAMES[RELIABLE]]
    assert names(arts[HIRING[0]]) == []


def test_no_removes_the_angle_at_once_and_for_good(plain: Feed, tmp_path: Path) -> None:
    art = by_title(plain)[P99[0]]
    result = plain.angle_feedback(art.uid, "  Systems   PERFORMANCE ", "no")  # case and spaces don't matter
    assert result.article is not None and result.article.uid == art.uid
    assert names(result.article) == [] and names(plain.article(art.uid)) == []
    assert (result.relabelled, result.changed) == (0, 0)  # without vectors there are no neighbours
    assert plain.store.feedback.for_article(art.id or 0) == {NAMES[PERF]: -1}
    assert names(plain.article(by_title(plain)[OUTAGE[0]].uid)) == [NAMES[RELIABLE]]  # others untouched
    plain.index_pending()
    assert names(plain.article(art.uid)) == []
    plain.close()

    again = Feed.open(plain.store.location, embed=False)  # a new process, say
    try:
        again.index_pending()
        assert names(again.article(art.uid)) == []
        assert again.store.feedback.count() == 1
        # the feed changes the article's text: it is labelled again, the verdict still holds
        changed = (
            P99[0],
            P99[1] + " We benchmarked it: a load test measured the median and the 95th percentile,"
            " and every benchmark since confirms the measurement.",
        )
        (tmp_path / "acme.xml").write_bytes(rss([changed, OUTAGE, HIRING]))
        report = again.import_paths([tmp_path / "acme.xml"])
        assert report.total("updated") == 1
        now = again.article(art.uid)
        assert now is not None and "load test" in now.text
        assert names(now) == [NAMES[BENCH]]  # re-labelled on update, without the rejected angle
        assert names(again.article(by_title(again)[OUTAGE[0]].uid)) == [NAMES[RELIABLE]]
    finally:
        again.close()


def test_a_verdict_from_another_process_holds_in_this_one(plain: Feed, tmp_path: Path) -> None:
    """A second web worker, the CLI next to ``serve``, a queue worker: each holds its own
    feedback model, and a stale one must not undo a verdict recorded elsewhere."""
    art = by_title(plain)[P99[0]]
    assert [e.angle for e in plain.explain_angles(art.uid) if e.chosen] == [NAMES[PERF]]  # model built
    other = Feed.open(plain.store.location, embed=False)
    try:
        other.angle_feedback(art.uid, NAMES[PERF], "no")
    finally:
        other.close()
    explained = plain.explain_angles(art.uid)
    assert not [e for e in explained if e.chosen] and names(plain.article(art.uid)) == []
    changed = (P99[0], P99[1] + " The p99 latency and throughput both improved again this quarter.")
    (tmp_path / "acme.xml").write_bytes(rss([changed, OUTAGE, HIRING]))
    assert plain.import_paths([tmp_path / "acme.xml"]).total("updated") == 1
    assert names(plain.article(art.uid)) == []  # re-labelled here, and still not this angle


def test_every_verdict_write_moves_the_serial(plain: Feed) -> None:
    """Within one second too: clear then yes on another angle kept count, time and sums."""
    art = by_title(plain)[HIRING[0]]
    seen = [plain.store.feedback.version()]
    for angle, verdict in ((NAMES[BENCH], "yes"), (NAMES[BENCH], "clear"), (NAMES[ARCH], "yes")):
        plain.angle_feedback(art.uid, angle, verdict)
        seen.append(plain.store.feedback.version())
    assert seen == sorted(set(seen)) and len(seen) == 4


def test_an_older_feedback_model_never_replaces_a_newer_one(
    plain: Feed, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two threads rebuilding at once: the one that read the older serial finishes last."""
    art = by_title(plain)[HIRING[0]]
    plain.angle_feedback(art.uid, NAMES[ARCH], "yes")
    labeler = plain.labeler
    newest = labeler.feedback
    serial = plain.store.feedback.version()
    monkeypatch.setattr(plain.store.feedback, "version", lambda: serial - 1)
    plain._install_feedback(labeler)
    assert labeler.feedback is newest


def test_serve_relabels_at_start_after_an_angles_file_edit(tmp_path: Path) -> None:
    """Labels made under other angles (an edited file) are redone when the server starts, so
    a card's chips, its "why" and the verdict buttons speak of the same angles."""
    (tmp_path / "acme.xml").write_bytes(rss([P99, OUTAGE, HIRING]))
    feed = Feed.open(tmp_path / "s.db", embed=False)
    feed.import_paths([tmp_path / "acme.xml"])
    uid = by_title(feed)[P99[0]].uid
    assert names(feed.article(uid)) == [NAMES[PERF]]
    feed.close()
    angles = tmp_path / "angles.toml"
    angles.write_text('[[angle]]\nname = "speed"\ndescription = "Fast code"\nterms = ["p99", "latency"]\n')
    feed = Feed.open(tmp_path / "s.db", embed=False, angles_file=angles)
    try:
        with client_for(feed):
            deadline = time.monotonic() + 30
            while names(feed.article(uid)) != ["speed"] and time.monotonic() < deadline:
                time.sleep(0.05)
            assert names(feed.article(uid)) == ["speed"]
    finally:
        feed.close()


def test_clearing_a_verdict_after_a_case_only_rename_of_the_angle(tmp_path: Path) -> None:
    """SQLite's NOCASE folds ASCII only; the labeller matches names with casefold."""
    angles = tmp_path / "angles.toml"

    def write(name: str) -> None:
        angles.write_text(
            f'[[angle]]\nname = "{name}"\ndescription = "Latency work"\nterms = ["latency", "p99"]\n'
        )

    write("Überblick latency")
    (tmp_path / "acme.xml").write_bytes(rss([P99, HIRING]))
    feed = Feed.open(tmp_path / "s.db", embed=False, angles_file=angles)
    feed.import_paths([tmp_path / "acme.xml"])
    uid = by_title(feed)[P99[0]].uid
    feed.angle_feedback(uid, "Überblick latency", "no")
    feed.close()
    write("überblick latency")
    feed = Feed.open(tmp_path / "s.db", embed=False, angles_file=angles)
    try:
        feed.angle_feedback(uid, "überblick latency", "yes")
        assert [r.verdict for r in feed.store.feedback.all()] == [1]  # replaced, not a second row
        feed.angle_feedback(uid, "überblick latency", "clear")
        assert feed.store.feedback.count() == 0
    finally:
        feed.close()


def test_yes_adds_an_angle_with_empty_terms_and_clear_forgets(plain: Feed) -> None:
    arts = by_title(plain)
    hiring, p99 = arts[HIRING[0]], arts[P99[0]]
    result = plain.angle_feedback(hiring.uid, "Architecture Depth", "yes")
    assert result.article is not None
    assert result.article.angles == (AngleMatch(NAMES[ARCH], (), CAL.threshold),)
    assert plain.article(hiring.uid).angles[0].terms == ()  # type: ignore[union-attr]
    plain.index_pending()
    assert names(plain.article(hiring.uid)) == [NAMES[ARCH]]
    # on an article with an angle of its own both are shown, the one the reader added first
    result = plain.angle_feedback(p99.uid, NAMES[RELIABLE], "yes")
    assert names(result.article) == [NAMES[RELIABLE], NAMES[PERF]]
    assert result.article is not None and result.article.angles[0] == AngleMatch(NAMES[RELIABLE], (), 0.43)
    assert plain.store.feedback.count() == 2
    # clear forgets: back to what the labeller says by itself
    assert names(plain.angle_feedback(hiring.uid, NAMES[ARCH], "clear").article) == []
    assert names(plain.angle_feedback(p99.uid, NAMES[RELIABLE], "clear").article) == [NAMES[PERF]]
    plain.angle_feedback(p99.uid, NAMES[PERF], "no")
    assert names(plain.article(p99.uid)) == []
    assert names(plain.angle_feedback(p99.uid, "systems performance", "clear").article) == [NAMES[PERF]]
    assert plain.store.feedback.count() == 0
    # clearing what was never said is harmless; a new verdict replaces the old
    plain.angle_feedback(p99.uid, NAMES[GRAPHICS], "clear")
    plain.angle_feedback(p99.uid, NAMES[PERF], "yes")
    plain.angle_feedback(p99.uid, NAMES[PERF], "no")
    assert plain.store.feedback.for_article(p99.id or 0) == {NAMES[PERF]: -1}


def test_bad_angle_article_or_verdict_is_a_one_line_error(plain: Feed) -> None:
    uid = by_title(plain)[P99[0]].uid
    with pytest.raises(EngfeedError) as err:
        plain.angle_feedback(uid, "cooking", "no")
    message = str(err.value)
    assert message.startswith("no such angle: cooking") and "\n" not in message
    assert all(name in message for name in NAMES)
    with pytest.raises(EngfeedError, match="no such article: nope"):
        plain.angle_feedback("nope", NAMES[PERF], "no")
    with pytest.raises(EngfeedError, match="use yes, no or clear") as err:
        plain.angle_feedback(uid, NAMES[PERF], "maybe")
    assert "\n" not in str(err.value)
    with pytest.raises(EngfeedError, match="no such article"):
        plain.explain_angles("nope")
    assert plain.store.feedback.count() == 0 and names(plain.article(uid)) == [NAMES[PERF]]


def test_export_and_import_carry_the_verdicts_to_another_store(plain: Feed, tmp_path: Path) -> None:
    arts = by_title(plain)
    plain.angle_feedback(arts[P99[0]].uid, NAMES[PERF], "no")
    plain.angle_feedback(arts[HIRING[0]].uid, NAMES[ARCH], "yes")
    data = json.loads(plain.export_feedback())
    assert set(data) == {"engfeed_angle_feedback", "feedback"} and data["engfeed_angle_feedback"] == 1
    rows = {(r["url"], r["angle"], r["verdict"]) for r in data["feedback"]}
    assert rows == {
        (arts[P99[0]].url, NAMES[PERF], "no"),
        (arts[HIRING[0]].url, NAMES[ARCH], "yes"),
    }
    for r in data["feedback"]:
        assert set(r) == {"url", "title", "angle", "verdict", "created"}
        assert r["title"] in (P99[0], HIRING[0]) and re.fullmatch(
            r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", r["created"]
        )

    other_dir = tmp_path / "other"
    other_dir.mkdir()
    (other_dir / "acme.xml").write_bytes(rss([P99, OUTAGE, HIRING]))
    other = Feed.open(other_dir / "other.db", embed=False)
    try:
        other.import_paths([other_dir / "acme.xml"])
        assert names(by_title(other)[P99[0]]) == [NAMES[PERF]]
        extra = [
            {"url": "https://elsewhere.example/x", "angle": NAMES[PERF], "verdict": "no"},
            {"url": arts[OUTAGE[0]].url, "angle": "cooking", "verdict": "no"},
            {"url": arts[OUTAGE[0]].url, "angle": NAMES[RELIABLE], "verdict": "maybe"},
            "not an object",
        ]
        result = other.import_feedback(json.dumps({**data, "feedback": data["feedback"] + extra}))
        assert result.recorded == 2 and len(result.skipped) == 4
        assert result.to_json() == {"recorded": 2, "skipped": result.skipped}
        skipped = " | ".join(result.skipped)
        assert "https://elsewhere.example/x (no such article)" in skipped
        assert "no such angle: cooking" in skipped and "without url, angle and yes/no" in skipped
        assert "not an object" in skipped
        now = by_title(other)
        assert names(now[P99[0]]) == [] and names(now[HIRING[0]]) == [NAMES[ARCH]]
        assert names(now[OUTAGE[0]]) == [NAMES[RELIABLE]]
        assert {
            (r["url"], r["angle"], r["verdict"]) for r in json.loads(other.export_feedback())["feedback"]
        } == rows
        # importing again changes nothing; an empty list records nothing
        assert other.import_feedback(json.dumps(data)).recorded == 2 and other.store.feedback.count() == 2
        assert other.import_feedback('{"feedback": []}').recorded == 0
        for bad, message in [
            ("{not json", "not an angle feedback file (JSON)"),
            ("[]", 'no "feedback" list'),
            ('{"feedback": {}}', 'no "feedback" list'),
        ]:
            with pytest.raises(EngfeedError, match=re.escape(message)) as err:
                other.import_feedback(bad)
            assert "\n" not in str(err.value)
        assert other.store.feedback.count() == 2
    finally:
        other.close()


def test_explain_lists_every_angle_consistently_with_the_labels(plain: Feed) -> None:
    arts = by_title(plain)
    for art in arts.values():
        found = plain.explain_angles(art.uid)
        assert sorted(e.angle for e in found) == sorted(NAMES)
        assert [e.angle for e in found if e.chosen] == names(art)  # chosen first, in label order
        for e in found:
            data = e.to_json()
            assert set(data) == EXPLAIN_KEYS and data["threshold"] == CAL.threshold
            assert data["meaning"] is None and data["feedback_nudge"] == 0.0  # no embeddings
            assert (data["score"] is None) == (not e.terms and data["verdict"] is None)
    uid = arts[P99[0]].uid
    perf = {e.angle: e for e in plain.explain_angles(uid)}[NAMES[PERF]]
    assert perf.chosen and perf.judgement.reason == "cue terms in the title and the text"
    assert "p99" in perf.terms and perf.passage == P99[0]  # the sentence holding the best term
    plain.angle_feedback(uid, NAMES[PERF], "no")
    plain.angle_feedback(uid, NAMES[IMPL], "yes")
    found = {e.angle: e.to_json() for e in plain.explain_angles(uid)}
    assert found[NAMES[PERF]]["chosen"] is False and found[NAMES[PERF]]["verdict"] == "no"
    assert found[NAMES[PERF]]["reason"] == "you said it is not this angle"
    assert found[NAMES[IMPL]]["chosen"] is True and found[NAMES[IMPL]]["verdict"] == "yes"
    assert found[NAMES[IMPL]]["reason"] == "you added this angle" and found[NAMES[IMPL]]["terms"] == []
    assert [n for n, e in found.items() if e["chosen"]] == names(plain.article(uid)) == [NAMES[IMPL]]
    hiring = {e.angle: e.to_json() for e in plain.explain_angles(arts[HIRING[0]].uid)}
    assert not any(e["chosen"] for e in hiring.values())
    assert {e["reason"] for e in hiring.values()} == {"none of its cue terms is in the text"}


# =========================================================================== 4. with embeddings

# Near-duplicates (the same story told twice, in two sources) that only just pass for
# "systems performance" (meaning about 0.42-0.44, score about 0.54-0.56).
CHECKOUT_A = (
    "How we made our checkout service faster",
    "We reduced the latency of our checkout service by caching prices and trimming database calls."
    " Pages now load in half the time for shoppers.",
)
CHECKOUT_B = (
    "Making the checkout service faster",
    "We cut the latency of the checkout service by caching prices and removing database calls."
    " Pages load in half the time for our shoppers.",
)


@pytest.fixture
def embedded(tmp_path: Path, new_store: NewStore) -> Iterator[Feed]:
    """The real model's vectors decide which articles are similar (each backend keeps them)."""
    (tmp_path / "acme.xml").write_bytes(rss([CHECKOUT_A, OUTAGE, HIRING]))
    (tmp_path / "beta.xml").write_bytes(rss([CHECKOUT_B], title="Beta Eng", site="https://beta.example"))
    feed = Feed.open(new_store("embedded"), embed=True)
    feed.import_paths([tmp_path / "acme.xml", tmp_path / "beta.xml"])
    yield feed
    feed.close()


def moved_fully(explained: dict[str, object], sign: int) -> bool:
    """Whether a neighbour's verdict moved this angle by its full weight (``sign``: ±1): the
    meaning score by NEIGHBOUR_WEIGHT (prototype rule), or a learned head's log-odds by
    NEIGHBOUR_LOGIT."""
    nudge = float(explained["feedback_nudge"])  # type: ignore[arg-type]
    if explained["rule"] != "learned":
        return nudge == pytest.approx(sign * NEIGHBOUR_WEIGHT, abs=0.01)
    after = float(explained["score"])  # type: ignore[arg-type]
    before = after - nudge
    logit = math.log(before / (1 - before))
    return after == pytest.approx(1 / (1 + math.exp(-(logit + sign * NEIGHBOUR_LOGIT))), abs=0.01)


def test_a_verdict_relabels_the_near_duplicate_in_another_source(embedded: Feed) -> None:
    assert embedded.embedder is not None
    arts = by_title(embedded)
    a, b = arts[CHECKOUT_A[0]], arts[CHECKOUT_B[0]]
    assert (a.source, b.source) == ("Acme Eng", "Beta Eng")
    assert names(a)[0] == names(b)[0] == NAMES[PERF]
    before = {e.angle: e for e in embedded.explain_angles(b.uid)}[NAMES[PERF]]
    assert before.chosen and before.judgement.nudge == 0.0 and before.judgement.score is not None
    if before.rule == "learned":  # close enough to flip
        p = before.judgement.score
        assert 1 / (1 + math.exp(-(math.log(p / (1 - p)) - NEIGHBOUR_LOGIT))) < before.threshold
    else:
        assert before.judgement.score - NEIGHBOUR_WEIGHT < CAL.threshold

    result = embedded.angle_feedback(a.uid, NAMES[PERF], "no")
    assert NAMES[PERF] not in names(result.article)
    assert result.relabelled == 1 and result.changed == 1  # b only: the others are far off
    assert NAMES[PERF] not in names(embedded.article(b.uid))
    after = {e.angle: e.to_json() for e in embedded.explain_angles(b.uid)}[NAMES[PERF]]
    assert after["chosen"] is False and after["verdict"] is None
    assert moved_fully(after, -1)  # cosine above 0.9
    if before.rule != "learned":
        assert after["meaning"] == pytest.approx(before.judgement.meaning + after["feedback_nudge"], abs=1e-3)
    assert "below the threshold" in after["reason"]
    assert names(embedded.article(arts[OUTAGE[0]].uid)) == names(arts[OUTAGE[0]])  # untouched

    embedded.close()  # the example holds in a new process too
    again = Feed.open(embedded.store.location, embed=True)
    try:
        again.index_pending()
        assert NAMES[PERF] not in names(again.article(b.uid))
        assert moved_fully({e.angle: e for e in again.explain_angles(b.uid)}[NAMES[PERF]].to_json(), -1)
        cleared = again.angle_feedback(a.uid, NAMES[PERF], "clear")
        assert cleared.relabelled == 1 and cleared.changed == 1
        assert names(cleared.article)[0] == names(again.article(b.uid))[0] == NAMES[PERF]
        # a "yes" on one is a positive example for the other
        yes = again.angle_feedback(a.uid, NAMES[OPTIM], "yes")
        assert names(yes.article)[0] == NAMES[OPTIM] and yes.relabelled == 1  # an added angle comes first
        lifted = {e.angle: e.to_json() for e in again.explain_angles(b.uid)}[NAMES[OPTIM]]
        assert moved_fully(lifted, 1)
    finally:
        again.close()


def test_retraining_on_a_thousand_verdicts_is_fast() -> None:
    rng = np.random.default_rng(9)
    dim, n_rows, n_articles = 384, 1000, 8600
    rows = [(i, NAMES[i % 7], 1 if i % 3 else -1) for i in range(n_rows)]
    vectors = {i: rng.normal(size=dim).astype(np.float32) for i in range(n_rows)}
    matrix = rng.normal(size=(n_articles, dim)).astype(np.float32)
    start = time.perf_counter()
    model = FeedbackModel.build(NAMES, rows, vectors)
    built = time.perf_counter() - start
    bias = model.bias(matrix)
    total = time.perf_counter() - start
    assert (
        sum(len(m) for m in model.positives.values()) + sum(len(m) for m in model.negatives.values()) == 1000
    )
    assert bias.shape == (n_articles, 7) and np.isfinite(bias).all()
    assert not bias.any()  # random 384-d vectors are nowhere near each other
    near = model.bias(np.stack([vectors[0], vectors[2]]))  # two of the examples themselves
    assert near[0, 0] == pytest.approx(-NEIGHBOUR_WEIGHT) and near[1, 2] == pytest.approx(NEIGHBOUR_WEIGHT)
    print(
        f"feedback model: build {built * 1000:.1f} ms, build + bias over {n_articles} {total * 1000:.1f} ms"
    )
    assert total < 5.0


# =========================================================================== 5. the CLI


@pytest.fixture
def db(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], request: pytest.FixtureRequest, backend: str
) -> str:
    """A store on each backend, made by the CLI (``--db`` takes a PostgreSQL URL too)."""
    (tmp_path / "acme.xml").write_bytes(rss([P99, OUTAGE, HIRING]))
    store = store_location(request, backend, "cli")
    assert run(capsys, "--db", store, "import", str(tmp_path / "acme.xml"))[0] == 0
    return store


def uids(capsys: pytest.CaptureFixture[str], db: str) -> dict[str, str]:
    return {a["title"]: a["id"] for a in json.loads(run(capsys, "--db", db, "list", "--json")[1])}


def test_cli_feedback_and_explain(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    ids = uids(capsys, db)
    p99 = ids[P99[0]]
    code, out, err = run(capsys, "--db", db, "angles", "feedback", p99, "systems performance", "--no")
    assert code == 0 and err == ""
    assert out.splitlines() == [f"{P99[0]}: angles now none", "re-labelled 0 similar articles; 0 changed"]
    code, out, _ = run(capsys, "--db", db, "angles", "feedback", p99, "Benchmarking Data", "--yes", "--json")
    data = json.loads(out)
    assert code == 0 and set(data) >= ARTICLE_KEYS | {"relabelled", "changed"}
    assert data["id"] == p99 and (data["relabelled"], data["changed"]) == (0, 0)
    assert data["angles"][0]["name"] == NAMES[BENCH] and "p99" in data["angles"][0]["terms"]

    code, out, _ = run(capsys, "--db", db, "angles", "explain", p99)
    assert code == 0 and len(out.splitlines()) >= 7
    lines = [line for line in out.splitlines() if not line.startswith(" ")]
    assert len(lines) == 7 and lines[0].startswith(f"✓ {NAMES[BENCH]}  score ")
    assert f"· {NAMES[PERF]}  score — / threshold 0.43: you said it is not this angle" in lines
    code, out, _ = run(capsys, "--db", db, "angles", "explain", p99, "--json")
    found = json.loads(out)
    assert code == 0 and [set(e) for e in found] == [EXPLAIN_KEYS] * 7
    by_angle = {e["angle"]: e for e in found}
    assert by_angle[NAMES[PERF]]["verdict"] == "no" and by_angle[NAMES[BENCH]]["verdict"] == "yes"
    assert by_angle[NAMES[BENCH]]["chosen"] is True and by_angle[NAMES[BENCH]]["passage"] == P99[0]

    shown = json.loads(run(capsys, "--db", db, "show", p99, "--json")[1])
    assert [a["name"] for a in shown["angles"]] == [NAMES[BENCH]]
    code, out, _ = run(capsys, "--db", db, "angles", "feedback", p99, NAMES[PERF], "--clear")
    assert code == 0 and out.splitlines()[0] == f"{P99[0]}: angles now {NAMES[BENCH]}, {NAMES[PERF]}"


def test_cli_export_then_import_into_another_store(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], request: pytest.FixtureRequest, backend: str
) -> None:
    ids = uids(capsys, db)
    assert run(capsys, "--db", db, "angles", "feedback", ids[P99[0]], NAMES[PERF], "--no")[0] == 0
    assert run(capsys, "--db", db, "angles", "feedback", ids[HIRING[0]], NAMES[ARCH], "--yes")[0] == 0
    out_file = tmp_path / "verdicts.json"
    code, out, _ = run(capsys, "--db", db, "angles", "feedback-export", "-o", str(out_file))
    assert code == 0 and out == ""
    exported = json.loads(out_file.read_text(encoding="utf-8"))
    assert len(exported["feedback"]) == 2
    code, out, _ = run(capsys, "--db", db, "angles", "feedback-export")
    assert code == 0 and json.loads(out) == exported

    other = store_location(request, backend, "other")
    assert run(capsys, "--db", other, "import", str(tmp_path / "acme.xml"))[0] == 0
    code, out, _ = run(capsys, "--db", other, "angles", "feedback-import", str(out_file), "--json")
    assert code == 0 and json.loads(out) == {"recorded": 2, "skipped": []}
    listing = {a["title"]: a for a in json.loads(run(capsys, "--db", other, "list", "--json")[1])}
    assert listing[P99[0]]["angles"] == []
    assert listing[HIRING[0]]["angles"] == [{"name": NAMES[ARCH], "terms": []}]
    code, out, _ = run(capsys, "--db", other, "angles", "feedback-import", str(out_file))
    assert code == 0 and out.splitlines() == ["recorded 2 verdicts; skipped 0"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["angles", "feedback", "nope", "systems performance", "--no"], "error: no such article: nope"),
        (
            ["angles", "feedback", "{p99}", "cooking", "--yes"],
            "error: no such angle: cooking (the angles are: ",
        ),
        (["angles", "explain", "nope"], "error: no such article: nope"),
        (["angles", "feedback-import", "{bad}"], "error: not an angle feedback file (JSON)"),
        (["angles", "feedback-import", "{missing}"], "error: "),
    ],
)
def test_cli_errors_are_one_line(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    (tmp_path / "bad.json").write_text("{not json", encoding="utf-8")
    fill = {
        "p99": uids(capsys, db)[P99[0]],
        "bad": str(tmp_path / "bad.json"),
        "missing": str(tmp_path / "missing.json"),
    }
    code, out, err = run(capsys, "--db", db, *[a.format(**fill) for a in argv])
    assert code == 1 and out == ""
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert message in err
    if "cooking" in message:
        assert all(name in err for name in NAMES)


# =========================================================================== 6. the web


@pytest.fixture
def web(tmp_path: Path, new_store: NewStore) -> Iterator[tuple[Feed, TestClient]]:
    (tmp_path / "acme.xml").write_bytes(rss([P99, OUTAGE, HIRING]))
    feed = Feed.open(new_store("web"), embed=False)
    feed.import_paths([tmp_path / "acme.xml"])
    with client_for(feed) as client:
        yield feed, client
    feed.close()


def card_of(html: str, uid: str) -> str:
    start = html.index(f'data-card data-uid="{uid}"')
    end = html.find("data-card data-uid=", start + 10)
    return html[start : end if end > 0 else len(html)]


def test_not_this_angle_form_on_a_card(web: tuple[Feed, TestClient]) -> None:
    feed, client = web
    uid = by_title(feed)[P99[0]].uid
    home = client.get("/").text
    card = card_of(home, uid)
    assert 'data-angle="systems performance"' in card and 'data-not-angle="systems performance"' in card
    assert f'action="/a/{uid}/angles"' in card
    hiring_card = card_of(home, by_title(feed)[HIRING[0]].uid)
    assert "data-add-angle" in hiring_card and "data-not-angle" not in hiring_card
    assert hiring_card.count("<option ") == len(NAMES)

    form = {"angle": NAMES[PERF], "verdict": "no", "next": "/?source=Acme+Eng"}
    r = client.post(f"/a/{uid}/angles", data=form, follow_redirects=False)
    assert r.status_code == 403 and "security token" in r.text
    assert names(feed.article(uid)) == [NAMES[PERF]]
    r = client.post(f"/a/{uid}/angles", data={**form, "csrf_token": token_of(home)}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/?source=Acme+Eng&done=angle-removed"
    assert names(feed.article(uid)) == []
    page = client.get(r.headers["location"]).text
    card = card_of(page, uid)
    assert "data-not-angle" not in card and 'data-angle="systems performance"' not in card
    assert "data-add-angle" in card  # now it may be given one
    # never an open redirect; unknown angles are a page that says so
    r = client.post(
        f"/a/{uid}/angles",
        data={
            "csrf_token": token_of(home),
            "angle": NAMES[PERF],
            "verdict": "clear",
            "next": "//evil.example",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == f"/a/{uid}?done=angle-cleared"
    assert names(feed.article(uid)) == [NAMES[PERF]]
    bad = client.post(
        f"/a/{uid}/angles", data={"csrf_token": token_of(home), "angle": "cooking", "verdict": "no"}
    )
    assert bad.status_code == 400 and "no such angle: cooking" in bad.text


def test_the_article_page_shows_the_verdict_forms_and_why(web: tuple[Feed, TestClient]) -> None:
    feed, client = web
    arts = by_title(feed)
    uid = arts[OUTAGE[0]].uid
    page = client.get(f"/a/{uid}").text
    assert "Not this angle" in page and f'data-not-angle="{NAMES[RELIABLE]}"' in page
    add = page.split('id="add-angle-form"', 1)[1].split("</form>", 1)[0]
    assert "Add an angle" in add and 'name="verdict" value="yes"' in add
    options = re.findall(r'<option value="([^"]+)">', add)
    assert sorted(options) == sorted(n for n in NAMES if n != NAMES[RELIABLE])
    why = page.split("data-why-angles>", 1)[1].split("</details>", 1)[0]
    assert "<summary>Why these angles</summary>" in why
    assert why.count("data-explain=") == len(NAMES)
    assert re.findall(r'data-explain="([^"]+)" data-chosen="true"', why) == [NAMES[RELIABLE]]

    r = client.post(
        f"/a/{uid}/angles",
        data={
            "csrf_token": token_of(page),
            "angle": NAMES[RELIABLE],
            "verdict": "no",
            "next": f"/a/{uid}#angles",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"].startswith(f"/a/{uid}")
    assert "done=angle-removed" in r.headers["location"]
    page = client.get(f"/a/{uid}").text
    assert "No useful angle for this article." in page and "data-not-angle" not in page
    why = page.split("data-why-angles>", 1)[1].split("</details>", 1)[0]
    assert "<summary>Why no angle</summary>" in why and why.count("data-explain=") == len(NAMES)
    assert 'data-chosen="true"' not in why
    item = why.split(f'data-explain="{NAMES[RELIABLE]}"', 1)[1].split("</li>", 1)[0]
    assert "you said it is not this angle" in item

    r = client.post(
        f"/a/{uid}/angles",
        data={"csrf_token": token_of(page), "angle": NAMES[GRAPHICS], "verdict": "yes"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == f"/a/{uid}?done=angle-added"
    page = client.get(r.headers["location"]).text
    assert "Angle added." in page and f'data-not-angle="{NAMES[GRAPHICS]}"' in page
    assert "<summary>Why these angles</summary>" in page


def test_api_explain_and_feedback(web: tuple[Feed, TestClient]) -> None:
    feed, client = web
    uid = by_title(feed)[P99[0]].uid
    r = client.get(f"/api/articles/{uid}/angles")
    assert r.status_code == 200
    data = r.json()
    assert data["id"] == uid and [set(e) for e in data["angles"]] == [EXPLAIN_KEYS] * len(NAMES)
    assert [e["angle"] for e in data["angles"] if e["chosen"]] == [NAMES[PERF]]
    assert client.get("/api/articles/nope/angles").status_code == 404
    assert client.get(f"/api/articles/{'x' * 300}/angles").status_code == 404

    url = f"/api/articles/{uid}/angles"
    r = client.post(url, json={"angle": "Systems Performance", "verdict": "no"})
    assert r.status_code == 200
    body = r.json()
    assert set(body) >= ARTICLE_KEYS | {"relabelled", "changed"}
    assert body["id"] == uid and body["angles"] == [] and (body["relabelled"], body["changed"]) == (0, 0)
    assert names(feed.article(uid)) == []
    after = client.get(url).json()["angles"]
    assert {e["angle"]: e["verdict"] for e in after}[NAMES[PERF]] == "no"
    r = client.post(
        url, json={"angle": NAMES[PERF], "verdict": "clear"}, headers={"origin": "http://testserver"}
    )
    assert r.status_code == 200 and [a["name"] for a in r.json()["angles"]] == [NAMES[PERF]]

    for payload, status, message in [
        ({"angle": "cooking", "verdict": "no"}, 400, "no such angle: cooking"),
        ({"angle": NAMES[PERF], "verdict": "maybe"}, 400, "verdict must be yes, no or clear"),
        ({"angle": "", "verdict": "no"}, 400, "angle must be"),
        ({"verdict": "no"}, 400, "angle must be"),
    ]:
        r = client.post(url, json=payload)
        assert r.status_code == status and message in r.json()["error"]["message"], payload
    r = client.post("/api/articles/nope/angles", json={"angle": NAMES[PERF], "verdict": "no"})
    assert r.status_code == 404
    r = client.post(
        url, json={"angle": NAMES[PERF], "verdict": "no"}, headers={"origin": "http://evil.example"}
    )
    assert r.status_code == 403
    r = client.post(
        url, content=b"angle=x&verdict=no", headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert r.status_code == 415
    r = client.post(url, content=b"[1, 2]", headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert names(feed.article(uid)) == [NAMES[PERF]] and feed.store.feedback.count() == 0


def test_the_article_page_form_returns_to_the_angles_with_the_message(web: tuple[Feed, TestClient]) -> None:
    feed, client = web
    uid = by_title(feed)[OUTAGE[0]].uid
    page = client.get(f"/a/{uid}").text
    assert f'name="next" value="/a/{uid}#angles"' in page  # what the page's forms send
    r = client.post(
        f"/a/{uid}/angles",
        data={
            "csrf_token": token_of(page),
            "angle": NAMES[RELIABLE],
            "verdict": "no",
            "next": f"/a/{uid}#angles",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert r.headers["location"] == f"/a/{uid}?done=angle-removed#angles"
    assert "Angle removed." in client.get(r.headers["location"]).text


def test_learned_and_prototype_angles_read_differently_on_the_page(embedded: Feed) -> None:
    arts = by_title(embedded)
    uid = arts[CHECKOUT_A[0]].uid
    rules = {e.angle: e.rule for e in embedded.explain_angles(uid)}
    assert rules[NAMES[PERF]] == "learned" and rules[NAMES[GRAPHICS]] == "prototype"  # too few labels
    with client_for(embedded) as client:
        page = client.get(f"/a/{uid}").text
    why = page.split("data-why-angles>", 1)[1].split("</details>", 1)[0]
    perf = why.split(f'data-explain="{NAMES[PERF]}"', 1)[1].split("</li>", 1)[0]
    graphics = why.split(f'data-explain="{NAMES[GRAPHICS]}"', 1)[1].split("</li>", 1)[0]
    assert re.search(r"probability 0\.\d\d \(threshold 0\.\d\d\)", perf)
    assert re.search(r"score (—|\d\.\d\d) \(threshold 0\.43\)", graphics)
