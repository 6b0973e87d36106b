"""Latency of candidate architectures on tract vs onnxruntime, before training any of them.

Experiment, not product code (the shipped graphs are written by the training crate in Rust).
Writes each candidate with random He-initialised weights (speed does not depend on the values)
and the metadata of models/fast.onnx, then times it with `tag bench` on both backends.
Needs the `onnx` Python package and `tag` built with `--features ort`, ORT_DYLIB_PATH set.

    python3 benches/experiments/arch_latency.py 'c16,p,c32,p,c64,p,c128' 'c16/2,c32,c64/2,c128/2'

Layer codes, comma separated: `cN` conv3x3 -> ReLU with N outputs (`cN:k/s`: kernel k,
stride s; a trailing `v`: no padding), `p` 2x2 max pool, `dw` / `dw/2` depthwise 3x3 -> ReLU, `pwN` 1x1 conv -> ReLU.
Global average pool and a dense layer to 13 classes always end the network.
"""
import json
import subprocess
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

H, W, CLASSES = 80, 60, 13
rng = np.random.default_rng(0)


def build(spec):
    src = onnx.load("models/fast.onnx")
    nodes, inits = [], []
    x, c, h, w, flops = "image", 3, H, W, 0

    def weight(name, shape, fan_in):
        a = rng.normal(0, np.sqrt(2 / fan_in), shape).astype(np.float32)
        inits.append(numpy_helper.from_array(a, name))
        return name

    for i, layer in enumerate(spec.split(",")):
        out = f"l{i}"
        if layer == "p":
            nodes.append(helper.make_node("MaxPool", [x], [out], kernel_shape=[2, 2], strides=[2, 2]))
            h, w = h // 2, w // 2
            x = out
            continue
        valid = layer.endswith("v")
        layer = layer.removesuffix("v")
        stride = 1
        if "/" in layer:
            layer, stride = layer.split("/")
            stride = int(stride)
        k = 3
        if ":" in layer:
            layer, k = layer.split(":")
            k = int(k)
        if layer == "dw":
            co, group, k = c, c, 3
        elif layer.startswith("pw"):
            co, group, k = int(layer[2:]), 1, 1
        else:
            co, group = int(layer[1:]), 1
        pad = 0 if valid else k // 2
        ci_g = c // group
        wn = weight(f"w{i}", [co, ci_g, k, k], ci_g * k * k)
        bn = weight(f"b{i}", [co], 1e6)
        nodes.append(helper.make_node(
            "Conv", [x, wn, bn], [out + "c"], kernel_shape=[k, k], pads=[pad] * 4,
            strides=[stride, stride], group=group))
        nodes.append(helper.make_node("Relu", [out + "c"], [out]))
        h = (h + 2 * pad - k) // stride + 1
        w = (w + 2 * pad - k) // stride + 1
        flops += 2 * ci_g * k * k * co * h * w
        c, x = co, out
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["gap"]))
    nodes.append(helper.make_node("Flatten", ["gap"], ["features"], axis=1))
    nodes.append(helper.make_node(
        "Gemm", ["features", weight("hw", [c, CLASSES], c), weight("hb", [CLASSES], 1e6)], ["logits"]))
    flops += 2 * c * CLASSES
    graph = helper.make_graph(
        nodes, "candidate",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, H, W])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", CLASSES])], inits)
    m = helper.make_model(graph, opset_imports=src.opset_import)
    m.ir_version = src.ir_version
    m.metadata_props.extend(src.metadata_props)
    onnx.checker.check_model(m)
    return m, flops


def bench(path, backend, iterations=1000):
    out = subprocess.run(
        ["target/release/tag", "bench", "--model", path, "--backend", backend,
         "--iterations", str(iterations), "--format", "json"],
        check=True, capture_output=True, text=True).stdout
    return json.loads(out)["p50_ms"]


print("| layers | MFLOP | tract ms | onnxruntime ms | tract / onnxruntime |")
print("|---|---|---|---|---|")
for n, spec in enumerate(sys.argv[1:]):
    model, flops = build(spec)
    path = f"/tmp/arch-{n}.onnx"
    onnx.save(model, path)
    t = min(bench(path, "tract") for _ in range(3))
    o = min(bench(path, "ort") for _ in range(3))
    print(f"| `{spec}` | {flops / 1e6:.1f} | {t:.3f} | {o:.3f} | {t / o:.2f}x |", flush=True)
