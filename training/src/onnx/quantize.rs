//! Static post-training int8 quantization of an exported float model.
//!
//! Output graph (runs as true int8 in tract and in onnxruntime):
//! `image` f32 -> QuantizeLinear (u8) -> [QLinearConv (+ReLU folded into the u8 output clamp)
//! -> MaxPool on u8] x stages -> DequantizeLinear -> GlobalAveragePool -> Flatten -> Gemm (f32)
//! -> `logits`.
//!
//! - Weights: per output channel, symmetric int8 (`scale = max|w| / 127`, zero point 0).
//! - Activations: every conv output is post-ReLU, so u8 with zero point 0 covers `[0, range]`;
//!   `range` comes from calibration images of the training split (min-max or a percentile).
//! - Biases: int32 at `input_scale * weight_scale` per channel, as QLinearConv requires.
//! - The 128x13 dense head stays f32: it is 0.02% of the FLOPs, and standard ONNX has no
//!   quantized global average pool (ORT's QLinearGlobalAveragePool is a com.microsoft op that
//!   tract does not run).
//!
//! Why this is our own code rather than quantize-rs or onnxruntime's tools, and how each form
//! runs on each backend: docs/quantization.md.

use crate::onnx;
use crate::onnx::export::{FoldedConv, FoldedNet};
use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use tagger_core::metadata::{ModelInfo, INPUT_NAME, OUTPUT_NAME};
use tagger_core::preprocess::{HEIGHT, WIDTH};
use tagger_core::tract_onnx::pb;
use tagger_core::tract_onnx::prelude::*;

/// How activation ranges are chosen from calibration data.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, clap::ValueEnum)]
pub enum Calibration {
    /// Largest value seen: no clipping, coarser steps when outliers exist.
    MinMax,
    /// The 99.99th percentile: clips rare outliers for finer steps on the bulk.
    Percentile,
}

/// Percentile used by [`Calibration::Percentile`].
pub const PERCENTILE: f64 = 99.99;

/// How the int8 graph is written. Same numbers (weights, scales, zero points), two spellings:
/// tract runs QLinearConv as integer kernels but executes QDQ convolutions in f32; onnxruntime
/// fuses QDQ patterns into its own int8 kernels. `tag bench` / benches/ measure which is faster
/// where (docs/BENCHMARKS.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Int8Form {
    /// QLinearConv operators (`<model>.int8.onnx`).
    #[default]
    Qlinear,
    /// QuantizeLinear/DequantizeLinear around float Conv (`<model>.qdq.onnx`).
    Qdq,
}

/// Quantization settings, stored in the int8 model's `quantization` metadata.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QuantSettings {
    #[serde(default)]
    pub form: Int8Form,
    pub method: Calibration,
    pub calibration_images: usize,
    pub calibration_source: String,
    pub weights: String,
    pub activations: String,
    /// Input scale and zero point, then each conv output's scale.
    pub input_scale: f32,
    pub input_zero_point: u8,
    pub activation_scales: Vec<f32>,
}

impl QuantSettings {
    /// This quantizer's scheme (int8 symmetric per-channel weights, u8 activations with zero
    /// point 0 after ReLU) for calibrated conv output `ranges`, with the input quantization
    /// that `info`'s normalisation implies.
    pub fn new(
        info: &ModelInfo,
        form: Int8Form,
        method: Calibration,
        ranges: &[f32],
        calibration_images: usize,
        calibration_source: String,
    ) -> Self {
        let (input_scale, input_zero_point) = input_quantization(info);
        Self {
            form,
            method,
            calibration_images,
            calibration_source,
            weights: "int8 symmetric per output channel".into(),
            activations: "u8 per tensor, zero point 0 after ReLU".into(),
            input_scale,
            input_zero_point,
            activation_scales: ranges.iter().map(|r| r / 255.0).collect(),
        }
    }
}

/// The int8 model as ONNX bytes, its metadata saying how it was quantized.
pub fn int8_bytes(
    net: &FoldedNet,
    info: &ModelInfo,
    ranges: &[f32],
    settings: &QuantSettings,
) -> Result<Vec<u8>> {
    let mut info = info.clone();
    info.quantization = Some(serde_json::to_string(settings)?);
    Ok(onnx::encode(&int8_model(net, &info, ranges, settings)))
}

/// Reads a float model written by `training export` back into a folded network.
pub fn folded_from_onnx(proto: &pb::ModelProto) -> Result<FoldedNet> {
    let graph = proto.graph.as_ref().context("ONNX file has no graph")?;
    if proto.metadata_props.iter().any(|p| p.key == "quantization")
        || graph
            .node
            .iter()
            .any(|n| n.op_type.starts_with("QLinear") || n.op_type == "QuantizeLinear")
    {
        bail!("this model is already quantized; quantize its float model instead");
    }
    let init = |name: &str| -> Result<(&pb::TensorProto, Vec<f32>)> {
        let t = graph
            .initializer
            .iter()
            .find(|t| t.name == name)
            .with_context(|| format!("initializer {name} missing"))?;
        Ok((t, onnx::f32_initializer(t)?))
    };
    let mut convs: Vec<FoldedConv> = vec![];
    let mut head = None;
    let mut aux = vec![];
    for node in &graph.node {
        match node.op_type.as_str() {
            "Conv" => {
                let (wt, w) = init(&node.input[1])?;
                let (_, b) = init(node.input.get(2).context("conv without bias")?)?;
                if wt.dims.len() != 4 || wt.dims[2] != wt.dims[3] {
                    bail!("conv {} does not have a square kernel", node.name);
                }
                let ints = |name: &str| {
                    node.attribute
                        .iter()
                        .find(|a| a.name == name)
                        .map(|a| a.ints.clone())
                        .unwrap_or_default()
                };
                let (strides, pads) = (ints("strides"), ints("pads"));
                let uniform = |v: &[i64], default: i64| match v {
                    [] => Ok(default),
                    [first, rest @ ..] if rest.iter().all(|x| x == first) => Ok(*first),
                    _ => Err(anyhow!("conv {} has uneven strides or pads", node.name)),
                };
                convs.push(FoldedConv {
                    c_out: wt.dims[0] as usize,
                    c_in: wt.dims[1] as usize,
                    kernel: wt.dims[2] as usize,
                    stride: uniform(&strides, 1)? as usize,
                    padding: uniform(&pads, 0)? as usize,
                    w,
                    b,
                    pool: false,
                });
            }
            "MaxPool" => convs.last_mut().context("pool before any conv")?.pool = true,
            "Relu" | "GlobalAveragePool" | "Flatten" => {}
            // The class head writes `logits`; extra heads write an output named like them.
            "Gemm" if node.output.first().map(String::as_str) == Some(OUTPUT_NAME) => {
                let (wt, w) = init(&node.input[1])?;
                let (_, b) = init(&node.input[2])?;
                head = Some((wt.dims[0] as usize, wt.dims[1] as usize, w, b));
            }
            "Gemm" => {
                let (wt, w) = init(&node.input[1])?;
                let (_, b) = init(&node.input[2])?;
                aux.push(crate::onnx::export::FoldedHead {
                    name: node.output.first().context("Gemm without output")?.clone(),
                    outputs: wt.dims[1] as usize,
                    w,
                    b,
                });
            }
            other => bail!(
                "unexpected {other} node: only models exported by `training export` can be quantized"
            ),
        }
    }
    let (features, classes, head_w, head_b) = head.context("model has no dense head (Gemm)")?;
    if convs.is_empty() {
        bail!("model has no convolutions");
    }
    Ok(FoldedNet {
        convs,
        head_w,
        head_b,
        features,
        classes,
        aux,
    })
}

/// The float graph with every ReLU output also exposed, for calibration.
pub fn float_model_with_taps(net: &FoldedNet, info: &ModelInfo) -> pb::ModelProto {
    let mut m = crate::onnx::export::float_model(net, info);
    let graph = m.graph.as_mut().expect("graph");
    for i in 0..net.convs.len() {
        graph.output.push(pb::ValueInfoProto {
            name: format!("relu{i}"),
            ..Default::default()
        });
    }
    m
}

/// Activation range of each conv output over the calibration batch.
pub fn calibrate(
    net: &FoldedNet,
    info: &ModelInfo,
    images: &[f32],
    n: usize,
    method: Calibration,
) -> Result<Vec<f32>> {
    if n == 0 {
        bail!("the calibration set is empty: pass --calibration-images N with N > 0");
    }
    let bytes = onnx::encode(&float_model_with_taps(net, info));
    let plan = tagger_core::tract_onnx::onnx()
        .model_for_read(&mut std::io::Cursor::new(bytes))?
        .with_input_fact(0, f32::fact([n, 3, HEIGHT as usize, WIDTH as usize]).into())?
        .into_optimized()?
        .into_runnable()?;
    let input = Tensor::from_shape(&[n, 3, HEIGHT as usize, WIDTH as usize], images)?;
    let outputs = plan
        .run(tvec!(input.into_tvalue()))
        .map_err(|e| anyhow!("calibration run failed: {e:#}"))?;
    let mut ranges = vec![];
    // The model's own outputs (logits, then one per extra head) come before the taps.
    for out in outputs.iter().skip(1 + net.aux.len()) {
        let mut v: Vec<f32> = out.to_plain_array_view::<f32>()?.iter().copied().collect();
        let range = match method {
            Calibration::MinMax => v.iter().copied().fold(0.0, f32::max),
            Calibration::Percentile => {
                let k = (((PERCENTILE / 100.0) * v.len() as f64) as usize).min(v.len() - 1);
                *v.select_nth_unstable_by(k, f32::total_cmp).1
            }
        };
        ranges.push(range.max(1e-6));
    }
    Ok(ranges)
}

/// Conv weights `[c_out, ...]` as symmetric int8 per output channel, their scales, and the bias
/// as int32 at `input_scale` x each channel's scale (what QLinearConv and QDQ biases take).
pub fn per_channel_int8(w: &[f32], b: &[f32], input_scale: f32) -> (Vec<i8>, Vec<f32>, Vec<i32>) {
    let c_out = b.len();
    let per = w.len() / c_out;
    let (mut wq, mut scales, mut bq) = (vec![0i8; w.len()], vec![0f32; c_out], vec![0i32; c_out]);
    for o in 0..c_out {
        let row = &w[o * per..(o + 1) * per];
        let s = row.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12) / 127.0;
        scales[o] = s;
        for (q, &v) in wq[o * per..(o + 1) * per].iter_mut().zip(row) {
            *q = (v / s).round().clamp(-127.0, 127.0) as i8;
        }
        bq[o] = (b[o] / (input_scale * s)).round() as i32;
    }
    (wq, scales, bq)
}

fn scalar_f32(name: &str, v: f32) -> pb::TensorProto {
    onnx::tensor_f32(name, &[], &[v])
}

/// Writes the int8 model. `ranges` are the calibrated conv output ranges.
pub fn int8_model(
    net: &FoldedNet,
    info: &ModelInfo,
    ranges: &[f32],
    settings: &QuantSettings,
) -> pb::ModelProto {
    let mut nodes = vec![];
    let mut inits = vec![];
    // Input: normalised values in [-1, 1] for the default normalisation; scale from the
    // normalisation itself so every representable input maps exactly onto u8.
    inits.push(scalar_f32("image.scale", settings.input_scale));
    inits.push(onnx::tensor_u8(
        "image.zero_point",
        &[],
        &[settings.input_zero_point],
    ));
    nodes.push(onnx::node(
        "QuantizeLinear",
        "quantize_input",
        &[INPUT_NAME, "image.scale", "image.zero_point"],
        &["image.q"],
        vec![],
    ));
    let mut x = "image.q".to_string();
    let (mut x_scale, mut x_zp) = ("image.scale".to_string(), "image.zero_point".to_string());
    let mut in_scale = settings.input_scale;
    for (i, (c, &range)) in net.convs.iter().zip(ranges).enumerate() {
        let (wq, w_scales, bias_q) = per_channel_int8(&c.w, &c.b, in_scale);
        let y_scale = range / 255.0;
        let names = |s: &str| format!("conv{i}.{s}");
        inits.push(onnx::tensor_i8(&names("weight_q"), &c.weight_dims(), &wq));
        inits.push(onnx::tensor_f32(
            &names("weight_scale"),
            &[c.c_out as i64],
            &w_scales,
        ));
        // Symmetric weights: the zero point is 0 for every channel. QLinearConv takes it as one
        // scalar, which lets tract skip its zero-point sums and subtractions (same arithmetic,
        // ~30% faster there; benches/experiments/int8_forms.py); DequantizeLinear (QDQ) needs
        // one per scale.
        let zp_dims: &[i64] = match settings.form {
            Int8Form::Qlinear => &[],
            Int8Form::Qdq => &[c.c_out as i64],
        };
        inits.push(onnx::tensor_i8(
            &names("weight_zero_point"),
            zp_dims,
            &vec![0; zp_dims.iter().product::<i64>() as usize],
        ));
        inits.push(onnx::tensor_i32(
            &names("bias_q"),
            &[c.c_out as i64],
            &bias_q,
        ));
        inits.push(scalar_f32(&names("y_scale"), y_scale));
        inits.push(onnx::tensor_u8(&names("y_zero_point"), &[], &[0]));
        let y = names("q");
        let conv_attrs = || c.attrs();
        match settings.form {
            Int8Form::Qlinear => nodes.push(onnx::node(
                "QLinearConv",
                &format!("conv{i}"),
                &[
                    &x,
                    &x_scale,
                    &x_zp,
                    &names("weight_q"),
                    &names("weight_scale"),
                    &names("weight_zero_point"),
                    &names("y_scale"),
                    &names("y_zero_point"),
                    &names("bias_q"),
                ],
                &[&y],
                conv_attrs(),
            )),
            Int8Form::Qdq => {
                // DQ(x), DQ(w), DQ(bias) -> Conv -> Q(y): the pattern onnxruntime fuses. The Q
                // with zero point 0 on u8 clamps at 0, which is the ReLU.
                let bias_scales: Vec<f32> = w_scales.iter().map(|s| s * in_scale).collect();
                inits.push(onnx::tensor_f32(
                    &names("bias_scale"),
                    &[c.c_out as i64],
                    &bias_scales,
                ));
                inits.push(onnx::tensor_i32(
                    &names("bias_zero_point"),
                    &[c.c_out as i64],
                    &vec![0; c.c_out],
                ));
                let dq = |nodes: &mut Vec<pb::NodeProto>, what: &str, ins: [&str; 3], axis| {
                    let attrs = if axis {
                        vec![onnx::attr_int("axis", 0)]
                    } else {
                        vec![]
                    };
                    nodes.push(onnx::node(
                        "DequantizeLinear",
                        &names(&format!("dq_{what}")),
                        &ins,
                        &[&names(&format!("{what}_dq"))],
                        attrs,
                    ));
                };
                dq(&mut nodes, "x", [&x, &x_scale, &x_zp], false);
                dq(
                    &mut nodes,
                    "weight",
                    [
                        &names("weight_q"),
                        &names("weight_scale"),
                        &names("weight_zero_point"),
                    ],
                    true,
                );
                dq(
                    &mut nodes,
                    "bias",
                    [
                        &names("bias_q"),
                        &names("bias_scale"),
                        &names("bias_zero_point"),
                    ],
                    true,
                );
                nodes.push(onnx::node(
                    "Conv",
                    &format!("conv{i}"),
                    &[&names("x_dq"), &names("weight_dq"), &names("bias_dq")],
                    &[&names("y")],
                    conv_attrs(),
                ));
                nodes.push(onnx::node(
                    "QuantizeLinear",
                    &names("quantize"),
                    &[&names("y"), &names("y_scale"), &names("y_zero_point")],
                    &[&y],
                    vec![],
                ));
            }
        }
        x = y;
        x_scale = names("y_scale");
        x_zp = names("y_zero_point");
        in_scale = y_scale;
        if c.pool {
            let p = format!("pool{i}.q");
            nodes.push(onnx::max_pool_2x2(&format!("pool{i}"), &x, &p));
            x = p;
        }
    }
    nodes.push(onnx::node(
        "DequantizeLinear",
        "dequantize",
        &[&x, &x_scale, &x_zp],
        &["features.map"],
        vec![],
    ));
    crate::onnx::export::head(net, "features.map", &mut nodes, &mut inits);
    let graph = crate::onnx::export::graph(format!("{}-int8", info.name), nodes, inits, net);
    onnx::model(graph, info)
}

/// Input quantization that represents the normalised pixel grid: the range of `(p/255 - mean)
/// / std` over p in 0..=255, mapped onto u8.
pub fn input_quantization(info: &ModelInfo) -> (f32, u8) {
    let n = &info.normalization;
    let lo = (0..3)
        .map(|c| -n.mean[c] / n.std[c])
        .fold(f32::MAX, f32::min);
    let hi = (0..3)
        .map(|c| (1.0 - n.mean[c]) / n.std[c])
        .fold(f32::MIN, f32::max);
    let scale = (hi - lo) / 255.0;
    let zp = (-lo / scale).round().clamp(0.0, 255.0) as u8;
    (scale, zp)
}
