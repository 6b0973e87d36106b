//! EfficientNet-Lite0 (efficientnet.rs) as an ONNX graph, written with the project's protobuf
//! helpers (onnx.rs) for the same reasons as the CNN exporter: our input/output contract, folded
//! batch norm, metadata.
//!
//! The network takes `tag`'s one input, 3x80x60, and enlarges it inside the graph (bilinear,
//! half-pixel centres, as two matrix products with constant matrices) to the size the pretrained
//! features work at. So preprocessing stays the one path of `tagger_core::preprocess`, and the
//! enlargement is exact and identical in tract, onnxruntime and burn.

use super::efficientnet::{Lite, LiteConv, FEATURES};
use crate::onnx::{self, attr_int, attr_ints, node};
use tagger_core::metadata::INPUT_NAME;
use tagger_core::preprocess::{HEIGHT, WIDTH};
use tagger_core::tract_onnx::pb;

/// What the graph ends with.
pub enum Output<'a> {
    /// The pooled features `[N, 1280]`, named `features`.
    Features,
    /// ImageNet's 1000 logits, named `imagenet`.
    ImageNet,
    /// Dense heads on the pooled features: (output name, weights `[1280, n]`, bias `[n]`).
    Heads(&'a [(String, Vec<f32>, Vec<f32>)]),
}

/// Bilinear resampling weights from `input` to `output` samples (half-pixel centres, edges
/// clamped): row-major `[output, input]`.
pub fn bilinear_matrix(output: usize, input: usize) -> Vec<f32> {
    let mut m = vec![0.0f32; output * input];
    let scale = input as f32 / output as f32;
    for o in 0..output {
        let src = ((o as f32 + 0.5) * scale - 0.5).clamp(0.0, (input - 1) as f32);
        let i0 = src.floor() as usize;
        let i1 = (i0 + 1).min(input - 1);
        let f = src - i0 as f32;
        m[o * input + i0] += 1.0 - f;
        m[o * input + i1] += f;
    }
    m
}

/// Row-major `rows x cols` -> `cols x rows`.
pub(crate) fn transpose(m: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0.0; m.len()];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = m[r * cols + c];
        }
    }
    t
}

struct Builder {
    nodes: Vec<pb::NodeProto>,
    inits: Vec<pb::TensorProto>,
    next: usize,
}

impl Builder {
    fn name(&mut self, what: &str) -> String {
        self.next += 1;
        format!("{what}{}", self.next)
    }

    /// Conv (+ ReLU6) at an `h` x `w` input; returns the output name and size.
    fn conv(&mut self, c: &LiteConv, input: &str, h: usize, w: usize) -> (String, usize, usize) {
        let (pt, pb_, oh) = c.same_pad(h);
        let (pl, pr, ow) = c.same_pad(w);
        let id = self.name("conv");
        let (wn, bn) = (format!("{id}.w"), format!("{id}.b"));
        let k = c.kernel as i64;
        self.inits.push(onnx::tensor_f32(
            &wn,
            &[c.c_out as i64, (c.c_in / c.groups) as i64, k, k],
            &c.w,
        ));
        self.inits
            .push(onnx::tensor_f32(&bn, &[c.c_out as i64], &c.b));
        let out = if c.relu6 {
            format!("{id}.pre")
        } else {
            id.clone()
        };
        self.nodes.push(node(
            "Conv",
            &id,
            &[input, &wn, &bn],
            &[&out],
            vec![
                attr_ints("kernel_shape", &[k, k]),
                attr_ints("strides", &[c.stride as i64, c.stride as i64]),
                attr_ints("pads", &[pt as i64, pl as i64, pb_ as i64, pr as i64]),
                attr_int("group", c.groups as i64),
            ],
        ));
        if c.relu6 {
            self.nodes.push(node(
                "Clip",
                &format!("{id}.relu6"),
                &[&out, "relu6.min", "relu6.max"],
                &[&id],
                vec![],
            ));
        }
        (id, oh, ow)
    }
}

/// The graph from an `input` (h, w) image, enlarged to `resize` (h, w) when given.
pub fn graph(
    lite: &Lite,
    input: (usize, usize),
    resize: Option<(usize, usize)>,
    output: &Output,
) -> pb::GraphProto {
    let mut b = Builder {
        nodes: vec![],
        inits: vec![
            onnx::tensor_f32("relu6.min", &[], &[0.0]),
            onnx::tensor_f32("relu6.max", &[], &[6.0]),
        ],
        next: 0,
    };
    let (mut x, mut h, mut w) = (INPUT_NAME.to_string(), input.0, input.1);
    if let Some((rh, rw)) = resize {
        let rows = bilinear_matrix(rh, h);
        let cols_t = transpose(&bilinear_matrix(rw, w), rw, w);
        b.inits.push(onnx::tensor_f32(
            "resize.rows",
            &[rh as i64, h as i64],
            &rows,
        ));
        b.inits.push(onnx::tensor_f32(
            "resize.cols",
            &[w as i64, rw as i64],
            &cols_t,
        ));
        b.nodes.push(node(
            "MatMul",
            "resize_h",
            &["resize.rows", &x],
            &["resized_h"],
            vec![],
        ));
        b.nodes.push(node(
            "MatMul",
            "resize_w",
            &["resized_h", "resize.cols"],
            &["resized"],
            vec![],
        ));
        (x, h, w) = ("resized".into(), rh, rw);
    }
    (x, h, w) = b.conv(&lite.stem, &x, h, w);
    for block in &lite.blocks {
        let block_in = x.clone();
        for c in block.convs() {
            (x, h, w) = b.conv(c, &x, h, w);
        }
        if block.skip {
            let sum = b.name("add");
            b.nodes
                .push(node("Add", &sum, &[&block_in, &x], &[&sum], vec![]));
            x = sum;
        }
    }
    (x, _, _) = b.conv(&lite.head, &x, h, w);
    b.nodes
        .push(node("GlobalAveragePool", "gap", &[&x], &["pooled"], vec![]));
    b.nodes.push(node(
        "Flatten",
        "flatten",
        &["pooled"],
        &["features"],
        vec![attr_int("axis", 1)],
    ));
    let mut outputs = vec![];
    match output {
        Output::Features => outputs.push(onnx::batched_value("features", &[FEATURES as i64])),
        Output::ImageNet => {
            b.inits.push(onnx::tensor_f32(
                "imagenet.w",
                &[1000, FEATURES as i64],
                &lite.imagenet_w,
            ));
            b.inits
                .push(onnx::tensor_f32("imagenet.b", &[1000], &lite.imagenet_b));
            b.nodes.push(node(
                "Gemm",
                "imagenet",
                &["features", "imagenet.w", "imagenet.b"],
                &["imagenet"],
                vec![attr_int("transB", 1)],
            ));
            outputs.push(onnx::batched_value("imagenet", &[1000]));
        }
        Output::Heads(heads) => {
            for (name, hw, hb) in heads.iter() {
                let n = hb.len() as i64;
                let (wn, bn) = (format!("{name}.w"), format!("{name}.b"));
                b.inits
                    .push(onnx::tensor_f32(&wn, &[FEATURES as i64, n], hw));
                b.inits.push(onnx::tensor_f32(&bn, &[n], hb));
                b.nodes
                    .push(node("Gemm", name, &["features", &wn, &bn], &[name], vec![]));
                outputs.push(onnx::batched_value(name, &[n]));
            }
        }
    }
    pb::GraphProto {
        name: "efficientnet-lite0".into(),
        node: b.nodes,
        initializer: b.inits,
        input: vec![onnx::batched_value(
            INPUT_NAME,
            &[3, input.0 as i64, input.1 as i64],
        )],
        output: outputs,
        ..Default::default()
    }
}

/// A classifier on the backbone as a self-contained ONNX file: `tag`'s 80x60 input (enlarged to
/// `resize` inside the graph when given), one `logits` head `[1280, n]` + bias, the tagger's
/// metadata (version 1, default normalisation).
pub fn classifier_bytes(
    lite: &Lite,
    resize: Option<(usize, usize)>,
    head: (&[f32], &[f32]),
    name: &str,
    labels: &[String],
    label_column: &str,
) -> Vec<u8> {
    let info = tagger_core::metadata::ModelInfo {
        labels: labels.to_vec(),
        label_column: label_column.into(),
        name: name.into(),
        version: "1".into(),
        normalization: Default::default(),
        quantization: None,
        heads: vec![],
    };
    let heads = [("logits".to_string(), head.0.to_vec(), head.1.to_vec())];
    let g = graph(
        lite,
        (HEIGHT as usize, WIDTH as usize),
        resize,
        &Output::Heads(&heads),
    );
    onnx::encode(&onnx::model(g, &info))
}

/// The export check: the written model, run by tract on `frames` (network inputs), must give
/// `want` (the trainer's logits, frame after frame) within 1e-2; returns the largest difference.
pub fn check_export(bytes: &[u8], frames: &[Vec<u8>], want: &[f32]) -> anyhow::Result<f32> {
    let m = tagger_core::model::Model::from_bytes(
        bytes,
        "exported model".into(),
        tagger_core::backend::BackendKind::Tract,
        1,
    )?;
    let got = crate::eval::runner::logits(&m, frames)?;
    anyhow::ensure!(
        got.len() == want.len(),
        "the exported model has other outputs"
    );
    let worst = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    eprintln!("export check: largest logit difference tract vs trainer {worst:.2e}");
    anyhow::ensure!(
        worst <= 1e-2,
        "the exported model disagrees with the trained network ({worst})"
    );
    Ok(worst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bilinear_rows_sum_to_one_and_keep_a_ramp() {
        let (o, i) = (224, 80);
        let m = bilinear_matrix(o, i);
        for r in 0..o {
            let s: f32 = m[r * i..(r + 1) * i].iter().sum();
            assert!((s - 1.0).abs() < 1e-5);
        }
        // A linear ramp stays linear away from the clamped edges.
        let ramp: Vec<f32> = (0..i).map(|v| v as f32).collect();
        let out: Vec<f32> = (0..o)
            .map(|r| (0..i).map(|c| m[r * i + c] * ramp[c]).sum())
            .collect();
        let scale = i as f32 / o as f32;
        for (r, v) in out.iter().enumerate().take(o - 3).skip(3) {
            assert!((v - ((r as f32 + 0.5) * scale - 0.5)).abs() < 1e-4);
        }
        assert_eq!(bilinear_matrix(4, 4), {
            let mut id = vec![0.0; 16];
            (0..4).for_each(|k| id[k * 5] = 1.0);
            id
        });
    }
}
