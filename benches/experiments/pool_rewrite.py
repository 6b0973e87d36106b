"""Graph-only rewrites of MaxPool 2x2/2, to see whether tract runs another form faster.

Experiment, not product code (the shipped graphs are written by the training crate in Rust).
Needs the `onnx` Python package.

    python3 benches/experiments/pool_rewrite.py reduce models/baseline.onnx /tmp/b-reduce.onnx
    python3 benches/experiments/pool_rewrite.py slices models/baseline.onnx /tmp/b-slices.onnx
    target/release/tag bench --model /tmp/b-slices.onnx --iterations 1000

`reduce`: [Slice to even size] + Reshape [N,C,H/2,2,W/2,2] + ReduceMax over the 2s.
`slices`: Max of the four strided slices x[:, :, dy::2, dx::2].
Both give the same logits as MaxPool (checked with `tag --format jsonl` on the examples).
"""
import sys

import numpy as np
import onnx
from onnx import helper, numpy_helper, shape_inference

form, src, dst = sys.argv[1:4]
m = onnx.load(src)
g = m.graph
inferred = shape_inference.infer_shapes(m)
shapes = {
    vi.name: [d.dim_value for d in vi.type.tensor_type.shape.dim]
    for vi in list(inferred.graph.value_info) + list(g.input)
}
nodes, inits = [], []


def const(name, values):
    inits.append(numpy_helper.from_array(np.array(values, dtype=np.int64), name))
    return name


for n in g.node:
    if n.op_type != "MaxPool":
        nodes.append(n)
        continue
    x, y = n.input[0], n.output[0]
    _, c, h, w = shapes[x]
    h2, w2 = h // 2, w // 2
    if form == "reduce":
        src_name = x
        if h % 2 or w % 2:
            src_name = n.name + "_even"
            nodes.append(helper.make_node(
                "Slice", [x, const(n.name + "_st", [0, 0]), const(n.name + "_en", [2 * h2, 2 * w2]),
                          const(n.name + "_ax", [2, 3])], [src_name], name=n.name + "_slice"))
        nodes.append(helper.make_node(
            "Reshape", [src_name, const(n.name + "_shape", [0, c, h2, 2, w2, 2])], [n.name + "_r"],
            name=n.name + "_reshape"))
        nodes.append(helper.make_node(
            "ReduceMax", [n.name + "_r"], [y], name=n.name + "_rmax", axes=[3, 5], keepdims=0))
    else:
        parts = []
        for dy in (0, 1):
            for dx in (0, 1):
                p = f"{n.name}_s{dy}{dx}"
                nodes.append(helper.make_node(
                    "Slice", [x, const(p + "_st", [dy, dx]), const(p + "_en", [dy + 2 * h2 - 1, dx + 2 * w2 - 1]),
                              const(p + "_ax", [2, 3]), const(p + "_sp", [2, 2])], [p], name=p))
                parts.append(p)
        nodes.append(helper.make_node("Max", parts, [y], name=n.name + "_max"))
del g.node[:]
g.node.extend(nodes)
g.initializer.extend(inits)
onnx.checker.check_model(m)
onnx.save(m, dst)
print("wrote", dst)
