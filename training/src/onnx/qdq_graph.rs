//! Static int8 quantization of any float graph made of Conv (+ ReLU6 Clip) nodes and float glue
//! (MatMul, Add, pooling, Gemm): the fine-tuned EfficientNet-Lite0 of backbone/graph.rs, whose
//! residual adds, TF-SAME pads and in-graph enlargement the CNN quantizer (quantize.rs, one
//! straight chain of convs) does not take. Written in the QDQ form onnxruntime fuses into its
//! int8 kernels:
//!
//! `x -> QuantizeLinear -> DequantizeLinear -> Conv(DQ(int8 w), DQ(int32 b)) -> QuantizeLinear ->
//! DequantizeLinear -> ...`
//!
//! - Weights: int8, symmetric per output channel; biases int32 at input scale x weight scale
//!   (quantize.rs's `per_channel_int8`, as for the CNNs).
//! - Activations: u8 per tensor, asymmetric (zero point from the calibrated minimum), so signed
//!   tensors (projections, residual sums, the enlarged input) are covered. A ReLU6 is the output
//!   quantizer itself (zero point 0, at most 6 / 255 per step): the Clip node goes.
//! - A conv's quantized output feeds the next conv directly; a float tensor (the residual sum,
//!   the enlarged input) is quantized where a conv reads it.
//! - Every DequantizeLinear output keeps the original tensor's name, so the float nodes between
//!   (Add, GlobalAveragePool, Gemm) are untouched.

use super::quantize::{per_channel_int8, Calibration, PERCENTILE};
use crate::onnx;
use anyhow::{anyhow, bail, Context, Result};
use std::collections::{BTreeMap, HashMap, HashSet};
use tagger_core::metadata::KEY_QUANTIZATION;
use tagger_core::preprocess::{HEIGHT, IMAGE_LEN, WIDTH};
use tagger_core::tract_onnx::pb;
use tagger_core::tract_onnx::prelude::*;

/// A tensor's calibrated range.
pub type Ranges = BTreeMap<String, (f32, f32)>;

fn read(bytes: &[u8]) -> Result<pb::ModelProto> {
    tagger_core::tract_onnx::onnx()
        .proto_model_for_read(&mut std::io::Cursor::new(bytes))
        .map_err(|e| anyhow!("not an ONNX model: {e:#}"))
}

/// The Clip (ReLU6) reading conv output `c`, if that is its only reader.
fn relu6_after<'a>(nodes: &'a [pb::NodeProto], c: &str) -> Option<&'a pb::NodeProto> {
    let readers: Vec<&pb::NodeProto> = nodes
        .iter()
        .filter(|n| n.input.iter().any(|i| i == c))
        .collect();
    match readers.as_slice() {
        [n] if n.op_type == "Clip" => Some(n),
        _ => None,
    }
}

/// The tensors to calibrate: each conv's float input that no conv writes, and each conv's
/// result (after its ReLU6 when it has one).
fn taps(graph: &pb::GraphProto) -> Vec<String> {
    let nodes = &graph.node;
    let mut produced_by_conv = HashSet::new();
    let mut taps = vec![];
    for n in nodes.iter().filter(|n| n.op_type == "Conv") {
        let out = relu6_after(nodes, &n.output[0]).map_or(&n.output[0], |c| &c.output[0]);
        produced_by_conv.insert(out.clone());
    }
    for n in nodes.iter().filter(|n| n.op_type == "Conv") {
        if !produced_by_conv.contains(&n.input[0]) && !taps.contains(&n.input[0]) {
            taps.push(n.input[0].clone());
        }
        let out = relu6_after(nodes, &n.output[0]).map_or(&n.output[0], |c| &c.output[0]);
        taps.push(out.clone());
    }
    taps
}

/// Ranges of the tapped tensors over normalised `images` (`n` of them), 16 at a time: min-max,
/// or the 99.99th percentile of each side per chunk, the widest over chunks (an exact
/// percentile over every chunk would hold all activations at once).
pub fn calibrate(float: &[u8], images: &[f32], n: usize, method: Calibration) -> Result<Ranges> {
    if n == 0 {
        bail!("the calibration set is empty: pass --calibration-images N with N > 0");
    }
    let mut proto = read(float)?;
    let graph = proto.graph.as_mut().context("the model has no graph")?;
    let names = taps(graph);
    let outputs = graph.output.len();
    for t in &names {
        graph.output.push(pb::ValueInfoProto {
            name: t.clone(),
            ..Default::default()
        });
    }
    let bytes = onnx::encode(&proto);
    const CHUNK: usize = 16;
    let mut ranges: Ranges = BTreeMap::new();
    // One optimised plan per batch size (the full chunks, and the last one when shorter).
    let mut plans = HashMap::new();
    for (ci, chunk) in images.chunks(CHUNK * IMAGE_LEN).enumerate() {
        let b = chunk.len() / IMAGE_LEN;
        let plan = match plans.entry(b) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(
                tagger_core::tract_onnx::onnx()
                    .model_for_read(&mut std::io::Cursor::new(&bytes))?
                    .with_input_fact(0, f32::fact([b, 3, HEIGHT as usize, WIDTH as usize]).into())?
                    .into_optimized()?
                    .into_runnable()?,
            ),
        };
        let input = Tensor::from_shape(&[b, 3, HEIGHT as usize, WIDTH as usize], chunk)?;
        let out = plan
            .run(tvec!(input.into_tvalue()))
            .map_err(|e| anyhow!("calibration run failed: {e:#}"))?;
        for (name, t) in names.iter().zip(out.iter().skip(outputs)) {
            let mut v: Vec<f32> = t.to_plain_array_view::<f32>()?.iter().copied().collect();
            let (lo, hi) = match method {
                Calibration::MinMax => v
                    .iter()
                    .fold((0f32, 0f32), |(l, h), &x| (l.min(x), h.max(x))),
                Calibration::Percentile => {
                    let k = (((PERCENTILE / 100.0) * v.len() as f64) as usize).min(v.len() - 1);
                    let hi = *v.select_nth_unstable_by(k, f32::total_cmp).1;
                    let low = v.len() - 1 - k;
                    let lo = *v.select_nth_unstable_by(low, f32::total_cmp).1;
                    (lo.min(0.0), hi.max(0.0))
                }
            };
            let e = ranges.entry(name.clone()).or_insert((0.0, 0.0));
            *e = (e.0.min(lo), e.1.max(hi));
        }
        eprintln!("  calibrated on {} of {n} images", (ci * CHUNK + b).min(n));
    }
    Ok(ranges)
}

/// u8 scale and zero point covering `[lo, hi]` (which contains 0).
fn u8_params((lo, hi): (f32, f32)) -> (f32, u8) {
    let scale = ((hi - lo) / 255.0).max(1e-8);
    (scale, (-lo / scale).round().clamp(0.0, 255.0) as u8)
}

/// Activation `input` quantized to u8 over `range`: its scale and zero point initializers
/// (`{id}.{side}_scale`, `{id}.{side}_zp`) and the QuantizeLinear node writing `{id}.{side}_q`.
/// Returns (quantized name, scale name, zero point name, scale).
fn quantize_u8(
    id: &str,
    side: &str,
    input: &str,
    range: (f32, f32),
    inits: &mut Vec<pb::TensorProto>,
    nodes: &mut Vec<pb::NodeProto>,
) -> (String, String, String, f32) {
    let (s, zp) = u8_params(range);
    let (sn, zn, qn) = (
        format!("{id}.{side}_scale"),
        format!("{id}.{side}_zp"),
        format!("{id}.{side}_q"),
    );
    inits.push(onnx::tensor_f32(&sn, &[], &[s]));
    inits.push(onnx::tensor_u8(&zn, &[], &[zp]));
    let ins = [input, sn.as_str(), zn.as_str()];
    nodes.push(onnx::node(
        "QuantizeLinear",
        &format!("{id}.q{side}"),
        &ins,
        &[qn.as_str()],
        vec![],
    ));
    (qn, sn, zn, s)
}

/// The QDQ int8 model of the float model `float` with calibrated `ranges`, its metadata saying
/// how (`settings`, JSON). Returns the bytes and the number of convolutions quantized.
pub fn qdq_bytes(float: &[u8], ranges: &Ranges, settings: &str) -> Result<(Vec<u8>, usize)> {
    let mut proto = read(float)?;
    let graph = proto.graph.as_mut().context("the model has no graph")?;
    let inits: HashMap<String, pb::TensorProto> = graph
        .initializer
        .drain(..)
        .map(|t| (t.name.clone(), t))
        .collect();
    let old = std::mem::take(&mut graph.node);
    let (mut nodes, mut new_inits, mut used) = (vec![], vec![], HashSet::new());
    // Tensor name -> (quantized name, scale name, zero point name, scale).
    let mut quantized: HashMap<String, (String, String, String, f32)> = HashMap::new();
    let mut skip = HashSet::new();
    let mut convs = 0;
    let node = |op: &str, name: String, ins: &[&str], out: &str, axis: bool| {
        let attrs = if axis {
            vec![onnx::attr_int("axis", 0)]
        } else {
            vec![]
        };
        onnx::node(op, &name, ins, &[out], attrs)
    };
    for n in &old {
        if skip.contains(&n.name) {
            continue;
        }
        if n.op_type != "Conv" {
            nodes.push(n.clone());
            continue;
        }
        let id = format!("q{convs}");
        convs += 1;
        let x = n.input[0].clone();
        if !quantized.contains_key(&x) {
            let range = *ranges
                .get(&x)
                .with_context(|| format!("no calibrated range for {x}"))?;
            let q = quantize_u8(&id, "x", &x, range, &mut new_inits, &mut nodes);
            quantized.insert(x.clone(), q);
        }
        let (xq, xs, xz, x_scale) = quantized[&x].clone();
        let xdq = format!("{id}.x_dq");
        nodes.push(node(
            "DequantizeLinear",
            format!("{id}.dqx"),
            &[&xq, &xs, &xz],
            &xdq,
            false,
        ));
        // Weights per output channel, symmetric; bias at x_scale * w_scale.
        let wt = inits
            .get(&n.input[1])
            .context("a Conv weight is not an initializer")?;
        let w = onnx::f32_initializer(wt)?;
        let c_out = wt.dims[0] as usize;
        let b = match n.input.get(2) {
            Some(bn) => {
                onnx::f32_initializer(inits.get(bn).context("a Conv bias is not an initializer")?)?
            }
            None => vec![0.0; c_out],
        };
        let (wq, ws, bq) = per_channel_int8(&w, &b, x_scale);
        let bs: Vec<f32> = ws.iter().map(|s| s * x_scale).collect();
        let c = [c_out as i64];
        new_inits.push(onnx::tensor_i8(&format!("{id}.w_q"), &wt.dims, &wq));
        new_inits.push(onnx::tensor_f32(&format!("{id}.w_scale"), &c, &ws));
        new_inits.push(onnx::tensor_i8(&format!("{id}.w_zp"), &c, &vec![0; c_out]));
        new_inits.push(onnx::tensor_i32(&format!("{id}.b_q"), &c, &bq));
        new_inits.push(onnx::tensor_f32(&format!("{id}.b_scale"), &c, &bs));
        new_inits.push(onnx::tensor_i32(&format!("{id}.b_zp"), &c, &vec![0; c_out]));
        for (what, ins) in [
            (
                "w",
                [
                    format!("{id}.w_q"),
                    format!("{id}.w_scale"),
                    format!("{id}.w_zp"),
                ],
            ),
            (
                "b",
                [
                    format!("{id}.b_q"),
                    format!("{id}.b_scale"),
                    format!("{id}.b_zp"),
                ],
            ),
        ] {
            let ins: Vec<&str> = ins.iter().map(String::as_str).collect();
            nodes.push(node(
                "DequantizeLinear",
                format!("{id}.dq{what}"),
                &ins,
                &format!("{id}.{what}_dq"),
                true,
            ));
        }
        used.insert(n.input[1].clone());
        used.extend(n.input.get(2).cloned());
        let y = format!("{id}.y");
        let mut conv = n.clone();
        conv.input = vec![xdq, format!("{id}.w_dq"), format!("{id}.b_dq")];
        conv.output = vec![y.clone()];
        nodes.push(conv);
        // The result: after the ReLU6 when there is one (the quantizer clamps to [0, 6]).
        let (out, range) = match relu6_after(&old, &n.output[0]) {
            Some(clip) => {
                skip.insert(clip.name.clone());
                used.extend(clip.input.iter().skip(1).cloned());
                let out = clip.output[0].clone();
                let hi = ranges.get(&out).map_or(6.0, |r| r.1.min(6.0));
                (out, (0.0, hi))
            }
            None => {
                let out = n.output[0].clone();
                let r = *ranges
                    .get(&out)
                    .with_context(|| format!("no calibrated range for {out}"))?;
                (out, r)
            }
        };
        let q = quantize_u8(&id, "y", &y, range, &mut new_inits, &mut nodes);
        nodes.push(node(
            "DequantizeLinear",
            format!("{id}.dqy"),
            &[&q.0, &q.1, &q.2],
            &out,
            false,
        ));
        quantized.insert(out, q);
    }
    if convs == 0 {
        bail!("the model has no convolution to quantize");
    }
    // Initializers still read by a float node stay (relu6 bounds only if a Clip is left).
    let still: HashSet<&String> = nodes.iter().flat_map(|n| n.input.iter()).collect();
    graph.initializer = inits
        .into_values()
        .filter(|t| !used.contains(&t.name) || still.contains(&t.name))
        .chain(new_inits)
        .collect();
    graph.initializer.sort_by(|a, b| a.name.cmp(&b.name));
    graph.node = nodes;
    proto.metadata_props.retain(|p| p.key != KEY_QUANTIZATION);
    proto.metadata_props.push(pb::StringStringEntryProto {
        key: KEY_QUANTIZATION.into(),
        value: settings.into(),
    });
    Ok((onnx::encode(&proto), convs))
}
