"""Tests for engfeed.angles: the angle file, evidence matching, labelling and suggestions.

Labelling tests run the real (offline) MiniLM embedder: the thresholds are calibrated for
it. Store and speed tests use a tiny deterministic fake embedder.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engfeed.angles import (
    THEME_CATALOG,
    Angle,
    AngleLabeler,
    angles_signature,
    candidate_phrases,
    dump_angles,
    load_angles,
    parse_angles,
    suggest_angles,
)
from engfeed.embed import Embedder, get_embedder, to_blob
from engfeed.errors import EngfeedError
from engfeed.models import AngleMatch, Article
from engfeed.store import Store

SEVEN = [
    "systems performance",
    "real-time and reliable systems",
    "architecture depth",
    "computational geometry and graphics",
    "optimization techniques",
    "implementation detail",
    "benchmarking data",
]

P99 = (
    "How we cut p99 latency in half on our API gateway",
    "Our gateway serves two million requests per second, and its tail latency had crept up.",
    "Our API gateway serves two million requests per second, and over the last year its p99 latency "
    "had crept from 40 ms to 95 ms. Profiling with flame graphs showed that most of the time went to "
    "lock contention in the connection pool and to garbage collection pauses. We replaced the global "
    "lock with per-core pools, reduced allocations on the hot path and tuned the collector. The "
    "result: p99 latency dropped to 38 ms, median latency fell by 20%, and throughput per host rose "
    "by 35%, so we now run the same traffic on fewer machines. This post walks through the "
    "measurements, the bottlenecks we found and the changes that fixed them.",
)
RL = (
    "Diagnosing instability in reinforcement learning training",
    "Why our agent's reward collapsed and how we fixed it.",
    "Reinforcement learning runs for our agents would train well for days and then suddenly "
    "collapse: the reward dropped and the loss spiked. We studied the geometry of the loss surface "
    "near sharp minima, where large policy updates overshoot. Clipping the policy ratio, lowering "
    "the learning rate after warm-up and normalising advantages made training stable. We also added "
    "monitoring of gradient norms and KL divergence so that instability is caught early in "
    "long-running post-training jobs.",
)
HIRING = (
    "We're hiring: join our platform team in Berlin",
    "Come build the future with us.",
    "Our engineering culture values curiosity, kindness and ownership. We are hiring senior "
    "engineers for the platform team in Berlin and remotely across Europe. You will work with a "
    "friendly team, enjoy flexible hours, a learning budget and a generous parental leave policy. "
    "Apply on our careers page; we read every application and reply within two weeks.",
)
POSTMORTEM = (
    "Postmortem: the 3-hour outage of our payments API",
    "A failed database failover took payments down for three hours.",
    "On March 3 our payments API was unavailable for three hours. A network partition isolated "
    "the primary database; the automatic failover promoted a replica that was minutes behind, and "
    "replication then stalled. This incident report covers the timeline, the root cause, why our "
    "health checks did not catch it, and the changes we made: fencing the old primary, gating "
    "failover on replication lag, and a runbook that the on-call engineer can follow. Our "
    "availability target is 99.99% and this outage consumed a year of error budget.",
)
ARTICLES = [P99, RL, HIRING, POSTMORTEM]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def minilm() -> Embedder:
    return get_embedder()


@pytest.fixture(scope="module")
def labeler(minilm: Embedder) -> AngleLabeler:
    return AngleLabeler(load_angles(), minilm)


class FakeEmbedder:
    """Deterministic hash-seeded unit vectors; counts the texts it embeds."""

    name = "fake-embedder/v1"
    dim = 16

    def __init__(self) -> None:
        self.embedded: list[str] = []

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.embedded.extend(texts)
        rows = []
        for text in texts:
            seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
            v = np.random.default_rng(seed).normal(size=self.dim)
            rows.append(v / np.linalg.norm(v))
        return np.array(rows, dtype=np.float32).reshape(len(texts), self.dim)

    def embed_query(self, text: str) -> np.ndarray:
        out: np.ndarray = self.embed([text])[0]
        return out


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "angles.toml"
    path.write_text(text, encoding="utf-8")
    return path


def make_store(tmp_path: Path, items: Sequence[tuple[str, str, str]]) -> tuple[Store, list[int]]:
    store = Store(tmp_path / "engfeed.db")
    now = datetime(2026, 1, 1, tzinfo=UTC)
    arts = [
        Article(uid=f"u{i}", url=f"https://example.com/{i}", title=t, published=now, excerpt=e, text=b)
        for i, (t, e, b) in enumerate(items)
    ]
    with store.transaction() as tx:
        result = store.upsert_articles(arts, source_id=None, conn=tx)
    return store, result.new


def text_of(item: tuple[str, str, str]) -> str:
    return " ".join(item).lower()


# --------------------------------------------------------------------------- the file


def test_bundled_file_has_the_seven_angles_of_the_seed_page() -> None:
    angles = load_angles()
    assert [a.name for a in angles] == SEVEN
    for angle in angles:
        assert len(angle.description.split()) >= 12
        assert 10 <= len(angle.terms) <= 30, angle.name
        assert all(t == t.lower().strip() and t for t in angle.terms)
        assert len(set(angle.terms)) == len(angle.terms)
    graphics = angles[3]
    assert {"reinforcement learning", "attack surface", "surface area"} <= set(graphics.exclude)
    assert "tail latency" in angles[0].terms and "p99" in angles[0].terms


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[angle]\nname = 'x'", "not valid TOML"),
        ("title = 'no angles here'\n", "no angles found"),
        ("angle = 'oops'\n", "array of tables"),
        ("[[angle]]\ndescription = 'd'\nterms = ['t']\n", "missing 'name'"),
        ("[[angle]]\nname = 'a'\nterms = ['t']\n", "missing 'description'"),
        ("[[angle]]\nname = 'a'\ndescription = 'd'\n", "missing 'terms'"),
        ("[[angle]]\nname = 'a'\ndescription = 'd'\nterms = []\n", "'terms' is empty"),
        ("[[angle]]\nname = 'a'\ndescription = 'd'\nterms = 'latency'\n", "'terms' must be a list"),
        ("[[angle]]\nname = 'a'\ndescription = 'd'\nterms = ['t']\nexclude = [1]\n", "'exclude' must"),
        ("[[angle]]\nname = 'a'\ndescription = 'd'\nterms = ['t']\nterm = ['x']\n", "unknown key(s) 'term'"),
        ("[[angle]]\nname = 'a'\ndescription = 'd'\nterms = ['t']\nguideline = ['x']\n", "'guideline' must"),
        ("[[angle]]\nname = 'a'\ndescription = 'd'\nterms = ['-']\n", "has no letter or digit"),
        (
            "[[angle]]\nname = 'a'\ndescription = 'd'\nterms = ['t']\nexclude = [' - ']\n",
            "has no letter or digit",
        ),
        ('[[angle]]\nname = "bell\\u0007 ctl"\ndescription = "d"\nterms = ["t"]\n', "control or direction"),
        ("[[angle]]\nname = '\u202elatency'\ndescription = 'd'\nterms = ['t']\n", "control or direction"),
        ("[[angle]]\nname = 'latency " + "x" * 80 + "'\ndescription = 'd'\nterms = ['t']\n", "at most 80"),
        (
            "[[angle]]\nname = 'Speed'\ndescription = 'd'\nterms = ['t']\n"
            "[[angle]]\nname = 'speed'\ndescription = 'e'\nterms = ['u']\n",
            "duplicate name 'speed' (also angle #1)",
        ),
    ],
)
def test_bad_files_raise_a_clear_error(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(EngfeedError) as info:
        load_angles(path)
    assert str(path) in str(info.value)
    assert message in str(info.value)


def test_bundled_angles_carry_guidelines_that_round_trip() -> None:
    angles = load_angles(None)
    assert all(len(a.guideline) > 100 for a in angles)  # what counts, what does not, borderlines
    perf = next(a for a in angles if a.name == "systems performance")
    assert "price/performance" in perf.guideline  # a borderline case, written down
    assert parse_angles(dump_angles(angles)) == angles
    assert "guideline" not in dump_angles([replace(angles[0], guideline="")])


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EngfeedError, match="angle file not found"):
        load_angles(tmp_path / "nope.toml")


def test_terms_are_normalised_and_errors_name_the_angle(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "[[angle]]\nname = '  Speed   things '\ndescription = 'Fast code.'\n"
        "terms = ['Tail  Latency', 'tail latency', ' P99 ']\n"
        "[[angle]]\nname = 'second'\ndescription = ''\nterms = ['x']\n",
    )
    with pytest.raises(EngfeedError, match=r"angle #2 \('second'\): missing 'description'"):
        load_angles(path)
    path = write(
        tmp_path,
        "[[angle]]\nname = 'Speed  things'\ndescription = 'Fast.'\n"
        "terms = ['Tail  Latency', 'tail latency', ' P99 ']\n",
    )
    (angle,) = load_angles(path)
    assert angle == Angle("Speed things", "Fast.", ("tail latency", "p99"), ())


def test_signature_is_stable_and_changes_with_the_file_or_model(tmp_path: Path) -> None:
    angles = load_angles()
    sig = angles_signature(angles, "model-a")
    assert sig == angles_signature(load_angles(), "model-a")
    assert re.fullmatch(r"angles-v\d+-[0-9a-f]{16}", sig)
    assert angles_signature(angles, "model-b") != sig
    edited = [replace(angles[0], terms=(*angles[0].terms, "jitter")), *angles[1:]]
    assert angles_signature(edited, "model-a") != sig
    reworded = [replace(angles[0], description=angles[0].description + " Really."), *angles[1:]]
    assert angles_signature(reworded, "model-a") != sig
    # The same content written differently (a file round trip) keeps the signature.
    path = write(tmp_path, dump_angles(angles))
    assert angles_signature(load_angles(path), "model-a") == sig


def test_dump_round_trips_through_load(tmp_path: Path) -> None:
    angles = [
        *load_angles(),
        Angle('quotes "and" \\ slashes', "Ünïcode — fine.", ("a/b test", "c++"), ("x y",)),
    ]
    text = dump_angles(angles)
    assert text.splitlines().count("[[angle]]") == len(angles)
    assert parse_angles(text) == angles
    assert load_angles(write(tmp_path, text)) == angles


# --------------------------------------------------------------------------- evidence


def evidence_for(angle: Angle, title: str, text: str) -> dict[str, int]:
    labeler = AngleLabeler([angle], None)
    return dict(labeler.evidence(title, text)[0].counts)


def test_the_passage_shown_is_where_the_cue_counted_not_an_excluded_mention() -> None:
    angle = Angle("graphics", "d", ("rendering", "webgl"), ("server-side rendering",))
    title = "Maps in the browser"
    text = (
        "Last year we dropped server-side rendering for the map pages. "
        "Today the browser does the rendering of every tile with WebGL shaders."
    )
    labeler = AngleLabeler([angle], None)
    [explained] = labeler.explain(title, "", text, None)
    assert explained.passage.startswith("Today the browser does the rendering"), explained.passage


def test_cues_match_whole_words_plurals_case_and_hyphen_variants() -> None:
    angle = Angle("a", "d", ("latency", "benchmark", "real-time", "tail latency", "p99", "cache"))
    found = evidence_for(
        angle,
        "Benchmarks of Realtime systems",
        "Latencies fell; tail  latency and P99 too. Real time matters. Caches warmed. "
        "Not: cached, caching, benchmarked, p999, latencyx.",
    )
    assert found == {
        "benchmark": 1,
        "real-time": 2,
        "latency": 1,
        "tail latency": 1,
        "p99": 1,
        "cache": 1,
    }


def test_exclude_contexts_void_nearby_cues_only() -> None:
    angle = Angle(
        "graphics", "d", ("surface", "geometry"), ("attack surface", "loss surface", "reinforcement learning")
    )
    text = (
        "We reduced the attack surface of the API. "
        "The geometry of the loss surface explains it. "
        "Our reinforcement learning agent trains on a simulated surface. "
        "Separately, the renderer computes surface normals from mesh geometry."
    )
    assert evidence_for(angle, "", text) == {"surface": 1, "geometry": 1}


def test_title_hits_are_marked_and_terms_shown_as_written() -> None:
    angle = Angle("a", "d", ("latency", "real-time"))
    labeler = AngleLabeler([angle], None)
    (ev,) = labeler.evidence("Latency at scale", "Real time latency. More latencies here.")
    assert ev.in_title == {"latency"}
    assert ev.counts["latency"] == 3
    assert ev.surface["real-time"].most_common(1)[0][0] == "real time"


@settings(max_examples=60, deadline=None)
@given(
    words=st.lists(
        st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=2, max_size=8), min_size=1, max_size=3
    ),
    before=st.sampled_from(["", "Look: ", "(", "we saw "]),
    after=st.sampled_from(["", ".", ") and more", " today"]),
)
def test_any_cue_is_found_in_plain_context(words: list[str], before: str, after: str) -> None:
    term = " ".join(words)
    angle = Angle("a", "d", (term,))
    assert evidence_for(angle, "", f"{before}{term.upper()}{after}") == {term: 1}
    assert evidence_for(angle, "", f"x{term}x") == {}


# --------------------------------------------------------------------------- labelling


def test_latency_article_gets_systems_performance_via_latency(labeler: AngleLabeler) -> None:
    matches = labeler.label(*P99)
    assert matches, "a p99-latency article must get an angle"
    assert matches[0].name == "systems performance"
    assert "latency" in matches[0].terms
    assert matches[0].score > 0


def test_rl_instability_with_loss_surface_is_not_graphics(labeler: AngleLabeler) -> None:
    names = [m.name for m in labeler.label(*RL)]
    assert "computational geometry and graphics" not in names
    # "geometry" sits beside "loss surface": the exclude context voids it as evidence.
    graphics = labeler.evidence(RL[0], RL[2])[SEVEN.index("computational geometry and graphics")]
    assert not graphics.counts


def test_hiring_post_gets_no_angle(labeler: AngleLabeler) -> None:
    assert labeler.label(*HIRING) == ()


def test_postmortem_gets_reliability(labeler: AngleLabeler) -> None:
    names = [m.name for m in labeler.label(*POSTMORTEM)]
    assert names and names[0] == "real-time and reliable systems"


def test_label_invariants(labeler: AngleLabeler) -> None:
    results = labeler.label_many(ARTICLES)
    assert results == [labeler.label(*a) for a in ARTICLES]
    assert sum(1 for r in results if r) >= 2
    for item, matches in zip(ARTICLES, results, strict=True):
        assert len(matches) <= 2
        assert len({m.name for m in matches}) == len(matches)
        for m in matches:
            assert isinstance(m, AngleMatch) and m.name in SEVEN
            assert 1 <= len(m.terms) <= 3
            for term in m.terms:
                assert term == term.lower()
                assert term in text_of(item), term
        assert [m.score for m in matches] == sorted((m.score for m in matches), reverse=True)


def test_stored_vector_gives_the_same_labels(labeler: AngleLabeler, minilm: Embedder) -> None:
    from engfeed.angles import embedding_text

    vec = minilm.embed([embedding_text(*P99)])[0]
    assert labeler.label(*P99, vector=vec) == labeler.label(*P99)


def test_without_embedder_only_strong_title_evidence_counts() -> None:
    labeler = AngleLabeler(load_angles(), None)
    assert labeler.signature != AngleLabeler(load_angles(), FakeEmbedder()).signature
    matches = labeler.label(*P99)
    assert [m.name for m in matches][:1] == ["systems performance"]
    assert labeler.label(*HIRING) == ()
    assert labeler.label(*RL) == ()


# --------------------------------------------------------------------------- the store


def test_label_ids_persists_labels_in_the_store(tmp_path: Path, minilm: Embedder) -> None:
    store, ids = make_store(tmp_path, [P99, HIRING, POSTMORTEM])
    labeler = AngleLabeler(load_angles(), minilm)
    assert sorted(store.angles.needing(labeler.signature)) == sorted(ids)
    assert labeler.label_ids(store, ids, None) == 3
    assert store.angles.needing(labeler.signature) == []
    stored = store.articles_by_ids(ids)
    p99, hiring, postmortem = (stored[i] for i in ids)
    assert p99.angles and p99.angles[0].name == "systems performance"
    assert "latency" in p99.angles[0].terms
    assert hiring.angles == ()
    assert postmortem.angles and postmortem.angles[0].name == "real-time and reliable systems"
    counts = dict(store.angles.counts())
    assert counts["systems performance"] >= 1 and counts["real-time and reliable systems"] >= 1
    # A changed angle file means a new signature: everything is pending again.
    edited = AngleLabeler([*load_angles()[:6]], minilm)
    assert sorted(store.angles.needing(edited.signature)) == sorted(ids)


def test_label_pending_uses_stored_vectors_and_is_idempotent(tmp_path: Path) -> None:
    store, ids = make_store(tmp_path, ARTICLES)
    fake = FakeEmbedder()
    vectors = fake.embed([f"stored {i}" for i in ids])
    store.vectors.save(fake.name, [(i, to_blob(v)) for i, v in zip(ids, vectors, strict=True)])
    labeler = AngleLabeler(load_angles(), fake)
    fake.embedded.clear()
    progress: list[tuple[int, int]] = []
    assert labeler.label_pending(store, lambda done, total: progress.append((done, total))) == 4
    # Only the angle prototypes were embedded: every article had a stored vector.
    article_texts = {a[0] for a in ARTICLES}
    assert not any(t.split("\n")[0] in article_texts for t in fake.embedded)
    assert progress[-1] == (4, 4)
    assert labeler.label_pending(store) == 0


def test_label_ids_embeds_only_cued_articles_without_vectors(tmp_path: Path) -> None:
    store, ids = make_store(tmp_path, [P99, HIRING])
    fake = FakeEmbedder()
    labeler = AngleLabeler(load_angles(), fake)
    labeler.prototypes  # noqa: B018 - embed the prototypes first
    fake.embedded.clear()
    assert labeler.label_ids(store, ids, fake.name) == 2
    # The hiring post has no cue term, so it can get no angle and is not embedded.
    assert len(fake.embedded) == 1 and fake.embedded[0].startswith(P99[0])


def test_labelling_thousands_of_articles_with_vectors_is_fast() -> None:
    fake = FakeEmbedder()
    labeler = AngleLabeler(load_angles(), fake)
    labeler.prototypes  # noqa: B018
    rng = np.random.default_rng(1)
    items = [ARTICLES[i % 4] for i in range(3000)]
    vectors = rng.normal(size=(len(items), fake.dim)).astype(np.float32)
    start = time.perf_counter()
    results = labeler.label_many(items, vectors)
    elapsed = time.perf_counter() - start
    assert len(results) == 3000
    assert elapsed < 30, f"{elapsed:.1f} s for 3000 articles"


# --------------------------------------------------------------------------- suggestions

PROFILE = """Senior software engineer, ML platform (2022 - now)
Built the model serving platform that runs ML inference for ranking models on a fleet of GPUs.
Cut inference latency by 30% with dynamic batching and moved models to a new GPU scheduler.
Reliability owner for the serving fleet: led incident response and postmortems, cut outages by half.
Software engineer, maps (2018 - 2022)
Wrote the polygon triangulation and geometry code behind our vector map tiles, rendered with WebGL shaders.
"""


def test_candidate_phrases_skip_boilerplate() -> None:
    phrases = candidate_phrases(PROFILE)
    assert phrases["model serving platform"] >= 1
    assert phrases["polygon triangulation"] >= 1
    assert "led" not in phrases and "senior software engineer" not in phrases


def test_suggest_angles_from_a_profile(minilm: Embedder) -> None:
    out = suggest_angles(PROFILE, minilm)
    names = [a.name for a in out]
    assert 2 <= len(out) <= 7
    assert len(set(names)) == len(names)
    assert "ml inference serving" in names
    assert "computational geometry and graphics" in names
    assert "real-time and reliable systems" in names
    assert "mobile engineering" not in names and "security and privacy engineering" not in names
    serving = out[names.index("ml inference serving")]
    catalog = next(t for t in THEME_CATALOG if t.name == "ml inference serving")
    assert serving.description == catalog.description
    assert set(catalog.terms) <= set(serving.terms)
    for angle in out:
        assert angle.terms and all(t == t.lower() for t in angle.terms)
        assert any(t in PROFILE.lower() for t in angle.terms), angle.name
    assert parse_angles(dump_angles(out)) == out


def test_suggest_respects_limit_existing_and_works_without_embedder(minilm: Embedder) -> None:
    assert len(suggest_angles(PROFILE, minilm, limit=2)) == 2
    assert suggest_angles("", minilm) == []
    mine = [Angle("maps", "Map rendering and geospatial data.", ("map tiles", "webgl", "geometry"))]
    out = suggest_angles(PROFILE, minilm, existing=mine)
    names = [a.name for a in out]
    assert "maps" in names
    assert "computational geometry and graphics" not in names  # only the reader's own angles map
    plain = suggest_angles(PROFILE, None)
    assert plain and all(isinstance(a, Angle) for a in plain)
    bundled = {a.name: a.guideline for a in load_angles()}
    for angle in out:  # a suggestion built on a bundled angle keeps its written guideline
        assert angle.guideline == bundled.get(angle.name, angle.guideline), angle.name
    assert "ml inference serving" in [a.name for a in plain]
