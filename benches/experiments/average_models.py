"""Averaged models: the class logits (first output) of several exported classifiers (seeds of
one recipe, say), each optionally also on the mirrored input (flip averaging), averaged in one
ONNX graph that keeps the first model's metadata, so `training station` scores it like any model.

Experiment, not product code: it measures whether averaging is worth its cost (two or four
forward passes per frame) before any of it is built into `training export`. Needs the `onnx`
Python package. The station-model numbers (validation only) came from:

    D=../shared/data/fashion-product-images-small
    training evaluate --data $D --run runs/robust-d
    training export --data $D --run runs/robust-d --out /tmp/robust-d.onnx
    training calibrate --data $D --model /tmp/robust-d.onnx
    python3 benches/experiments/average_models.py /tmp/b-flip.onnx flip models/robust.onnx
    python3 benches/experiments/average_models.py /tmp/bd.onnx plain models/robust.onnx /tmp/robust-d.onnx
    python3 benches/experiments/average_models.py /tmp/bd-flip.onnx flip models/robust.onnx /tmp/robust-d.onnx
    training station --data $D --model /tmp/b-flip.onnx     # prints val and test; no card, nothing saved

The flip is a Gather with reversed indices on the width axis (tract and onnxruntime both run it).
"""
import sys

import numpy as np
import onnx
from onnx import helper, numpy_helper


def prefixed(model, prefix, input_name):
    """The model's nodes and weights renamed with `prefix`, reading `input_name`."""
    g = model.graph
    names = {g.input[0].name: input_name}
    for t in g.initializer:
        names[t.name] = prefix + t.name
    for n in g.node:
        for o in n.output:
            names.setdefault(o, prefix + o)
    nodes = []
    for n in g.node:
        node = helper.make_node(n.op_type, [names.get(x, x) for x in n.input],
                                [names[o] for o in n.output], name=prefix + n.name)
        node.attribute.extend(n.attribute)
        nodes.append(node)
    weights = []
    for t in g.initializer:
        w = onnx.TensorProto()
        w.CopyFrom(t)
        w.name = prefix + t.name
        weights.append(w)
    return nodes, weights, names[g.output[0].name]


def main():
    if len(sys.argv) < 4 or sys.argv[2] not in ("flip", "plain"):
        sys.exit("usage: average_models.py OUT.onnx flip|plain MODEL.onnx [MODEL.onnx ...]")
    out, flip, paths = sys.argv[1], sys.argv[2] == "flip", sys.argv[3:]
    models = [onnx.load(p) for p in paths]
    first = models[0]
    image = first.graph.input[0]
    nodes, weights, outputs = [], [], []
    inputs = [image.name]
    if flip:
        width = image.type.tensor_type.shape.dim[3].dim_value
        weights.append(numpy_helper.from_array(np.arange(width - 1, -1, -1, dtype=np.int64), "flip_idx"))
        nodes.append(helper.make_node("Gather", [image.name, "flip_idx"], ["flipped"], axis=3))
        inputs.append("flipped")
    for m in models:
        for x in inputs:
            n, w, o = prefixed(m, f"m{len(outputs)}_", x)
            nodes += n
            weights += w
            outputs.append(o)
    nodes.append(helper.make_node("Sum", outputs, ["sum"]))
    weights.append(numpy_helper.from_array(np.array(1.0 / len(outputs), dtype=np.float32), "scale"))
    nodes.append(helper.make_node("Mul", ["sum", "scale"], [first.graph.output[0].name]))
    graph = helper.make_graph(nodes, "averaged", [image], [first.graph.output[0]], weights)
    averaged = helper.make_model(graph, opset_imports=first.opset_import)
    averaged.ir_version = first.ir_version
    averaged.metadata_props.extend(first.metadata_props)
    onnx.checker.check_model(averaged)
    onnx.save(averaged, out)
    print(f"{out}: the mean of {len(outputs)} forward passes")


if __name__ == "__main__":
    main()
