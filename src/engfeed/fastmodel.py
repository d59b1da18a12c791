"""Derive the fast build of the packaged MiniLM model (see ``engfeed.embed``).

The pinned package ships a *weight-only* int8 file: onnxruntime folds its weights back into
fp32 at load time, so every MatMul streams fp32 weights. :func:`build_query_model` derives,
once per machine, a build that is faster on CPU at the same quality:

1. ORT's basic optimisations fold the weights' DequantizeLinear nodes into fp32 constants.
2. :func:`fuse_attention` replaces each layer's self-attention, as the exporter wrote it
   (three projections, then ~25 reshape/transpose/mask/softmax nodes), with one
   ``com.microsoft.Attention`` node holding the three projections as one weight matrix.
3. ``quantize_dynamic`` stores every MatMul weight, and each Attention's, as per-channel
   int8 read as such at run time (``DynamicQuantizeMatMul``, ``QAttention``); activations
   are quantised per call.

Measured on this repository's 2-core machine, one thread, onnxruntime 1.32 (with
``SkipLayerNormFusion`` off, see ``engfeed.embed``): a 42-token passage 2.8 ms unfused
against 2.5 ms fused, 128 tokens 10.5 against 8.2 ms; the shared corpus's import (documents
and passages) 47.5 against 40.2 s. Vectors agree with the unfused build's to cosine 0.9995
(mean) and sit at cosine 0.994 with the reference model, as the unfused build's do.

The fusion checks the graph it is given, node by node; when it does not look like the
packaged model (another export), nothing is changed and the build is the unfused one.
Nothing here is imported by ``engfeed.embed`` until a build is needed: ``onnx`` and the
quantiser load in milliseconds but are not needed by a process that finds the build cached.
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

#: MiniLM-L6-v2: 12 heads of 32 over a 384-wide hidden state.
NUM_HEADS = 12
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
        if fuse:
            model = onnx.load(str(folded))
            if fuse_attention(model):
                onnx.save(model, str(folded))
            else:
                log.info("self-attention not fused: the graph is not the packaged model's")
        root.addFilter(quiet)
        try:
            quantize_dynamic(
                folded,
                out,
                weight_type=QuantType.QInt8,
                per_channel=True,
                op_types_to_quantize=["MatMul", "Attention"],
                extra_options={"MatMulConstBOnly": True},
            )
        finally:
            root.removeFilter(quiet)
        os.replace(out, dst)


def fuse_attention(model: onnx.ModelProto) -> int:
    """Replace every self-attention block of a BERT-style fp32 graph by one
    ``com.microsoft.Attention`` node, in place; returns how many were fused.

    Each block must be exactly: three ``MatMul`` + bias ``Add`` projections (query, key,
    value, named ``...layer.N.attention.self.{query,key,value}.bias``) of the same input
    with constant weights, and from the value projection the chain in ``_VALUE_TO_OUTPUT``
    to the block's output. The attention mask is the graph's ``attention_mask`` input (1 =
    attend), as the exporter's own masking nodes read it. The scale is Attention's default,
    1/sqrt(head size), which is what the exporter's two multiplications by its square root
    apply. If any block does not match, the graph is left as it was and 0 is returned.
    Nodes only the replaced blocks used are removed.
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

    mask = "engfeed_attention_mask_int32"
    blocks: list[tuple[onnx.NodeProto, list[onnx.TensorProto]]] = []
    for name in sorted(inits):
        match = _QUERY_BIAS.match(name)
        if match is None:
            continue
        layer, prefix = int(match["layer"]), match["prefix"]
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
        node = last_add
        for op in _VALUE_TO_OUTPUT:
            nxt = single(node.output[0], op)
            if nxt is None:
                return 0
            node = nxt
        hidden = weights[0].shape[0]
        if any(w.shape != (hidden, hidden) for w in weights) or hidden % NUM_HEADS:
            return 0
        w_name, b_name = f"engfeed_qkv_weight_{layer}", f"engfeed_qkv_bias_{layer}"
        tensors = [
            numpy_helper.from_array(np.concatenate(weights, axis=1).astype(np.float32), w_name),
            numpy_helper.from_array(np.concatenate(biases).astype(np.float32), b_name),
        ]
        attention = helper.make_node(
            "Attention",
            [source, w_name, b_name, mask],
            [node.output[0]],
            name=f"engfeed_attention_{layer}",
            domain="com.microsoft",
            num_heads=NUM_HEADS,
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
    model.CopyFrom(work)
    return len(blocks)


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
