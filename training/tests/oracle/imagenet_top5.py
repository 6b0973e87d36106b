#!/usr/bin/env python3
"""Test oracle: EfficientNet-Lite0's ImageNet top-5 computed in numpy, independently of the Rust
loader, ONNX writer and tract, for the fixture photos in tests/fixtures/real (already 60x80, the
network input size, so no resizing library is involved).

Network: TF-SAME padding, BN eps 1e-3, ReLU6, mean/std 0.5; the 80x60 input is enlarged to
224x168 by bilinear interpolation with half-pixel centres (graph.rs). Writes the top-5 class
indices per photo as JSON (training/tests/fixtures/imagenet_top5.json).

Needs numpy and pillow (a venv: python3 -m venv v && v/bin/pip install numpy pillow):
  v/bin/python training/tests/oracle/imagenet_top5.py runs/pretrained/efficientnet-lite0-57934424.pth
"""
import collections, json, pickle, sys
from pathlib import Path
import numpy as np
from PIL import Image

def load_state_dict(path):
    f = open(path, "rb")
    for _ in range(3):  # magic number, protocol version, system info
        pickle.load(f)
    storages = {}
    class U(pickle.Unpickler):
        def find_class(self, mod, name):
            if (mod, name) == ("torch._utils", "_rebuild_tensor_v2"):
                return lambda st, off, size, stride, *a: (st, off, tuple(size), tuple(stride))
            if (mod, name) == ("collections", "OrderedDict"):
                return collections.OrderedDict
            if mod == "torch":
                return name
            return super().find_class(mod, name)
        def persistent_load(self, pid):
            _, dtype, key, _, size = pid[:5]
            storages[key] = (dtype, size)
            return key
    sd = U(f).load()
    keys = pickle.load(f)
    data = {}
    for key in keys:
        n = int(np.frombuffer(f.read(8), "<i8")[0])
        dt = np.float32 if storages[key][0] == "FloatStorage" else np.int64
        data[key] = np.frombuffer(f.read(n * np.dtype(dt).itemsize), dt)
    out = {}
    for name, (key, off, size, stride) in sd.items():
        a = data[key]
        out[name] = np.lib.stride_tricks.as_strided(
            a[off:], size, [s * a.itemsize for s in stride]).copy() if size else a[off:off + 1]
    return out

def conv(x, w, stride, groups):
    c_out, cin_g, k, _ = w.shape
    c, h, wd = x.shape
    oh, ow = -(-h // stride), -(-wd // stride)
    ph = max((oh - 1) * stride + k - h, 0)
    pw = max((ow - 1) * stride + k - wd, 0)
    x = np.pad(x, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2)))
    out = np.zeros((c_out, oh, ow), np.float64)
    per = c_out // groups
    for g in range(groups):
        xs = x[g * cin_g:(g + 1) * cin_g]
        for i in range(k):
            for j in range(k):
                patch = xs[:, i:i + stride * oh:stride, j:j + stride * ow:stride]
                out[g * per:(g + 1) * per] += np.einsum(
                    "oc,chw->ohw", w[g * per:(g + 1) * per, :, i, j], patch)
    return out

def bn(x, sd, p):
    s = sd[p + ".weight"] / np.sqrt(sd[p + ".running_var"] + 1e-3)
    return (x - sd[p + ".running_mean"][:, None, None]) * s[:, None, None] + sd[p + ".bias"][:, None, None]

def relu6(x):
    return np.clip(x, 0, 6)

def bilinear(out, inp):
    m = np.zeros((out, inp))
    for o in range(out):
        src = min(max((o + 0.5) * inp / out - 0.5, 0), inp - 1)
        i0 = int(np.floor(src)); i1 = min(i0 + 1, inp - 1); f = src - i0
        m[o, i0] += 1 - f; m[o, i1] += f
    return m

def forward(sd, x):
    x = bilinear(224, 80) @ x @ bilinear(168, 60).T
    x = relu6(bn(conv(x, sd["_conv_stem.weight"], 2, 1), sd, "_bn0"))
    for i in range(16):
        p = f"_blocks.{i}"
        stride = 2 if i in (1, 3, 5, 11) else 1
        inp = x
        if p + "._expand_conv.weight" in sd:
            x = relu6(bn(conv(x, sd[p + "._expand_conv.weight"], 1, 1), sd, p + "._bn0"))
        x = relu6(bn(conv(x, sd[p + "._depthwise_conv.weight"], stride, x.shape[0]), sd, p + "._bn1"))
        x = bn(conv(x, sd[p + "._project_conv.weight"], 1, 1), sd, p + "._bn2")
        if stride == 1 and inp.shape == x.shape:
            x = x + inp
    x = relu6(bn(conv(x, sd["_conv_head.weight"], 1, 1), sd, "_bn1"))
    return sd["_fc.weight"] @ x.mean(axis=(1, 2)) + sd["_fc.bias"]

def main():
    sd = {k: v.astype(np.float64) for k, v in load_state_dict(sys.argv[1]).items()}
    root = Path(__file__).resolve().parents[3]
    photos = sorted((root / "tests/fixtures/real/images").glob("*.png"))
    result = {}
    for p in photos:
        img = np.asarray(Image.open(p).convert("RGB"), np.float64)
        assert img.shape == (80, 60, 3), f"{p} is not 60x80"
        x = (img.transpose(2, 0, 1) / 255 - 0.5) / 0.5
        logits = forward(sd, x)
        result[p.stem] = [int(i) for i in np.argsort(-logits)[:5]]
        print(p.name, result[p.stem], file=sys.stderr)
    out = root / "training/tests/fixtures/imagenet_top5.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")

if __name__ == "__main__":
    main()
