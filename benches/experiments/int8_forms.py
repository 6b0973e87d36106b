"""Rewrites of a QLinearConv model's weight quantization, to see which int8 form tract runs fastest.

Experiment, not product code (the shipped int8 graphs are written by `training quantize`).
Needs the `onnx` Python package.

    python3 benches/experiments/int8_forms.py scalar-zp models/fast.int8.onnx /tmp/fast-zp.onnx
    python3 benches/experiments/int8_forms.py per-tensor models/fast.int8.onnx /tmp/fast-pt.onnx
    target/release/tag bench --model /tmp/fast-pt.onnx --iterations 500
    target/release/examples/profile /tmp/fast-pt.onnx 300

`scalar-zp`: each weight zero point (a vector of zeros, one per output channel) becomes the
scalar 0. Same arithmetic; tract then drops its zero-point sums and subtractions.
`per-tensor`: also one weight scale per conv (the largest channel scale), so tract can fuse the
requantisation into its matmul. The weights are not requantised, so the logits are wrong:
timing only (a real per-tensor model would also lose precision in small-range channels).
"""
import sys

import numpy as np
import onnx
from onnx import numpy_helper

form, src, dst = sys.argv[1:4]
m = onnx.load(src)
for t in m.graph.initializer:
    if t.name.endswith("weight_zero_point"):
        t.CopyFrom(numpy_helper.from_array(np.array(0, dtype=np.int8), t.name))
    if form == "per-tensor" and t.name.endswith("weight_scale"):
        a = numpy_helper.to_array(t)
        t.CopyFrom(numpy_helper.from_array(np.array(a.max(), dtype=np.float32), t.name))
onnx.checker.check_model(m)
onnx.save(m, dst)
print("wrote", dst)
