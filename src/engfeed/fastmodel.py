"""Derive the fast build of the packaged MiniLM model (see ``engfeed.embed``).

The pinned package ships a *weight-only* int8 file: onnxruntime folds its weights back into
fp32 at load time, so every MatMul streams fp32 weights. :func:`build_query_model` derives,
once per machine, a build that is faster on CPU at the same quality:

1. ORT's basic optimisations fold the weights' DequantizeLinear nodes into fp32 constants.
2. :func:`fuse_attention` replaces each layer's self-attention, as the exporter wrote it
   (three projections, then ~25 reshape/transpose/mask/softmax nodes), with one
   ``com.microsoft.Attention`` node holding the three projections as one weight matrix.
3. ``quantize_dynamic`` stores every MatMul weight, and each Attention's, as per-channel
   int8 read as such at run time (``MatMulInteger`` nodes, which ORT fuses into
   ``DynamicQuantizeMatMul`` at load time, and ``QAttention``); activations are quantised
   per call.

Measured on this repository's 2-core machine, one thread, onnxruntime 1.32 (with
``SkipLayerNormFusion`` off, see ``engfeed.embed``): a 42-token passage 2.8 ms unfused
against 2.5 ms fused, 128 tokens 10.5 against 8.2 ms; the shared corpus's import (documents
and passages) 47.5 against 40.2 s. Vectors agree with the unfused build's to cosine 0.9995
(mean) and sit at cosine 0.994 with the reference model, as the unfused build's do.

The fusion checks the graph's structure, then runs the original and the rewritten graph on
padded test inputs and keeps the rewrite only if they agree (:func:`fuse_attention`); when
they do not (another export, another head count), or anything in the fused path fails, the
build is the unfused one, never no build. ``BUILD`` names the recipe in the cached file's
name, so a machine rebuilds when it changes.

``onnx`` and the quantiser (~0.7 s to import) are imported only when a build is made, never
by a process that finds the build cached.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import onnx

log = logging.getLogger(__name__)

#: The recipe of the fast build, part of its cached file's name: change it with the recipe.
BUILD = "q8attn1"
#: Largest difference between the original and the fused graph's outputs (fp32 hidden
#: states of magnitude ~1-10) for the rewrite to be kept; the packaged model's is ~6e-6.
FUSION_TOLERANCE = 1e-3
_QUERY_BIAS = re.compile(r"^(?P<prefix>.*layer\.(?P<layer>\d+)\.attention\.self\.)query\.bias$")
#: What the exporter writes between the value projection's bias Add and the attention's
#: output, the one tensor the rest of the layer reads (the output projection's input).
_VALUE_TO_OUTPUT = ("Reshape", "Transpose", "MatMul", "Transpose", "Reshape")


class _DropRootWarnings(logging.Filter):
    """Hide the quantiser's advice logged on the root logger ("consider pre-processing")."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.pathname.replace(os.sep, "/").endswith(
            ("onnxruntime/quantization/quantize.py", "onnxruntime/quantization/quant_utils.py")
        )


def build_query_model(src: Path, dst: Path, *, fuse: bool = True) -> None:
    """Derive the fast build from the weight-only int8 file at ``src`` (see the module
    docstring); ``fuse=False`` skips step 2 (the build engfeed used before 2026-12-04, kept
    for ``bench/relevance/embedders.py``). Written atomically: concurrent builders (test
    workers, two servers) each write a temporary file and rename it."""
    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic

    dst.parent.mkdir(parents=True, exist_ok=True)
    quiet = _DropRootWarnings()
    root = logging.getLogger()
    with tempfile.TemporaryDirectory(dir=dst.parent, prefix=".build-") as tmp:
        folded, out = Path(tmp) / "folded.onnx", Path(tmp) / "query.onnx"
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        opts.optimized_model_filepath = str(folded)
        opts.log_severity_level = 3
        ort.InferenceSession(str(src), sess_options=opts, providers=["CPUExecutionProvider"])
        fused = Path(tmp) / "fused.onnx"
        if fuse:
            try:
                model = onnx.load(str(folded))
                if fuse_attention(model):
                    onnx.save(model, str(fused))
                else:
                    log.info("self-attention not fused: the graph is not the packaged model's")
            except Exception as exc:  # a fused build is an optimisation: never lose the build
                log.warning("self-attention not fused (%s); building without it", exc)
        root.addFilter(quiet)
        try:
            for graph in (fused, folded) if fused.is_file() else (folded,):
                quantize_dynamic(
                    graph,
                    out,
                    weight_type=QuantType.QInt8,
                    per_channel=True,
                    op_types_to_quantize=["MatMul", "Attention"],
                    extra_options={"MatMulConstBOnly": True},
                )
                try:  # the quantised fused graph must load; else quantise the unfused one
                    check = ort.SessionOptions()
                    check.log_severity_level = 3
                    ort.InferenceSession(str(out), sess_options=check, providers=["CPUExecutionProvider"])
                    break
                except Exception as exc:
                    if graph == folded:
                        raise
                    log.warning("the fused build does not load (%s); building without the fusion", exc)
        finally:
            root.removeFilter(quiet)
        os.replace(out, dst)


def fuse_attention(model: onnx.ModelProto, *, verify: bool = True) -> int:
    """Replace every self-attention block of a BERT-style fp32 graph by one
    ``com.microsoft.Attention`` node, in place; returns how many were fused.

    Each block must be exactly: three ``MatMul`` + bias ``Add`` projections (query, key,
    value, named ``...layer.N.attention.self.{query,key,value}.bias``) of the same input
    with constant weights, and from the value projection the chain in ``_VALUE_TO_OUTPUT``
    to the block's output, whose first ``Reshape`` splits heads to a constant head size
    (the head count is the width over it). The attention mask is the graph's
    ``attention_mask`` input (1 = attend). The scale is Attention's default, 1/sqrt(head
    size), which the exporter applies as two multiplications by its square root.

    With ``verify`` (the default) the rewrite is kept only if the original and the rewritten
    graph give the same hidden states (within ``FUSION_TOLERANCE``) on a padded batch of
    test inputs: that, not the structural match alone, is what rules out another head
    count, scale or masking. If anything does not match, the graph is left as it was and 0
    is returned. Nodes and initializers that nothing reads any more are removed.

    One difference the check cannot see, and engfeed never feeds: a row whose mask is all
    zeros (the exporter's graph attends evenly over it; Attention masks with -10000).
    """
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    if "attention_mask" not in {i.name for i in model.graph.input}:
        return 0
    work = type(model)()
    work.CopyFrom(model)  # rewritten whole or not at all
    graph = work.graph
    inits = {i.name: i for i in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    def single(name: str, op: str) -> onnx.NodeProto | None:
        found = consumers.get(name, [])
        return found[0] if len(found) == 1 and found[0].op_type == op else None

    def head_size(shape: str) -> int | None:
        """The last dimension of a Reshape's target shape, when it is a constant (the shape
        itself, or the last piece of the Concat that builds it)."""
        node = producer.get(shape)
        if node is not None and node.op_type == "Concat" and node.input:
            shape = node.input[-1]
        if shape not in inits:
            return None
        dims = numpy_helper.to_array(inits[shape]).reshape(-1)
        return int(dims[-1]) if dims.size and dims[-1] > 0 else None

    mask = "engfeed_attention_mask_int32"
    blocks: list[tuple[onnx.NodeProto, list[onnx.TensorProto]]] = []
    for name in sorted(inits):
        match = _QUERY_BIAS.match(name)
        if match is None:
            continue
        prefix = match["prefix"]
        weights, biases, source = [], [], None
        last_add = None
        for part in ("query", "key", "value"):
            bias = inits.get(f"{prefix}{part}.bias")
            add = single(bias.name, "Add") if bias is not None else None
            if bias is None or add is None or len(add.input) != 2:
                return 0
            matmul = producer.get(add.input[0] if add.input[1] == bias.name else add.input[1])
            if matmul is None or matmul.op_type != "MatMul" or matmul.input[1] not in inits:
                return 0
            if source is None:
                source = matmul.input[0]
            elif matmul.input[0] != source:
                return 0
            weights.append(numpy_helper.to_array(inits[matmul.input[1]]))
            biases.append(numpy_helper.to_array(bias))
            last_add = add
        assert last_add is not None and source is not None
        node, split = last_add, None
        for op in _VALUE_TO_OUTPUT:
            nxt = single(node.output[0], op)
            if nxt is None:
                return 0
            node = nxt
            if split is None and op == "Reshape" and len(node.input) == 2:
                split = head_size(node.input[1])
        hidden = weights[0].shape[0]
        if split is None or hidden % split or any(w.shape != (hidden, hidden) for w in weights):
            return 0
        k = len(blocks)
        w_name, b_name = f"engfeed_qkv_weight_{k}", f"engfeed_qkv_bias_{k}"
        tensors = [
            numpy_helper.from_array(np.concatenate(weights, axis=1).astype(np.float32), w_name),
            numpy_helper.from_array(np.concatenate(biases).astype(np.float32), b_name),
        ]
        attention = helper.make_node(
            "Attention",
            [source, w_name, b_name, mask],
            [node.output[0]],
            name=f"engfeed_attention_{k}",
            domain="com.microsoft",
            num_heads=hidden // split,
        )
        blocks.append((attention, tensors))
    if not blocks:
        return 0

    replaced = {attention.output[0] for attention, _ in blocks}
    nodes = [n for n in graph.node if not replaced.intersection(n.output)]
    nodes.append(
        helper.make_node("Cast", ["attention_mask"], [mask], to=TensorProto.INT32, name="engfeed_mask_cast")
    )
    nodes += [attention for attention, _ in blocks]
    for _, tensors in blocks:
        graph.initializer.extend(tensors)
    _replace_nodes(work, nodes)
    if not any(o.domain == "com.microsoft" for o in work.opset_import):
        work.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    if verify and not _same_outputs(model, work):
        log.info("self-attention not fused: the fused graph computes something else")
        return 0
    model.CopyFrom(work)
    return len(blocks)


def _same_outputs(before: onnx.ModelProto, after: onnx.ModelProto) -> bool:
    """Whether two graphs give the same first output (within ``FUSION_TOLERANCE``) on a
    padded batch of three rows of token ids (lengths 19, 7 and 1 + [CLS]/[SEP])."""
    import numpy as np
    import onnxruntime as ort

    rng = np.random.default_rng(0)
    lengths = (21, 9, 3)
    ids = np.zeros((len(lengths), max(lengths)), dtype=np.int64)
    mask = np.zeros_like(ids)
    for row, n in enumerate(lengths):
        ids[row, :n] = [101, *rng.integers(1000, 5000, n - 2), 102]
        mask[row, :n] = 1
    feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    outputs = []
    for model in (before, after):
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        try:
            session = ort.InferenceSession(
                model.SerializeToString(), sess_options=opts, providers=["CPUExecutionProvider"]
            )
            wanted = {i.name for i in session.get_inputs()}
            outputs.append(np.asarray(session.run(None, {k: v for k, v in feeds.items() if k in wanted})[0]))
        except Exception as exc:
            log.info("comparing the fused graph failed: %s", exc)
            return False
    a, b = outputs
    if a.shape != b.shape:
        return False
    if a.shape[:2] == mask.shape:  # per token: padded positions are never read (pooling masks them)
        a, b = a[mask.astype(bool)], b[mask.astype(bool)]
    return bool(np.abs(a - b).max() <= FUSION_TOLERANCE)


def _replace_nodes(model: onnx.ModelProto, nodes: list[onnx.NodeProto]) -> None:
    """Set the graph's nodes to those of ``nodes`` that its outputs need, in topological
    order, and drop the initializers no node reads any more."""
    graph = model.graph
    producer = {out: node for node in nodes for out in node.output}
    live: dict[int, onnx.NodeProto] = {}
    stack = [o.name for o in graph.output]
    while stack:
        node = producer.get(stack.pop())
        if node is not None and id(node) not in live:
            live[id(node)] = node
            stack.extend(name for name in node.input if name)
    ready = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending = [n for n in nodes if id(n) in live]
    ordered: list[onnx.NodeProto] = []
    while pending:
        waiting = []
        for node in pending:
            if all(name in ready for name in node.input):
                ordered.append(node)
                ready.update(node.output)
            else:
                waiting.append(node)
        if len(waiting) == len(pending):
            raise ValueError("the rewritten graph has a cycle or an undefined input")
        pending = waiting
    del graph.node[:]
    graph.node.extend(ordered)
    used = {name for node in ordered for name in node.input}
    kept = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
