//! Trained burn model -> ONNX. Batch norm is folded into the convolutions first (a folded
//! network is also what the int8 quantizer starts from), so the runtime graph is just
//! Conv+ReLU(+MaxPool) x layers -> GlobalAveragePool -> Flatten -> Gemm.

use crate::model::{Arch, Cnn};
use crate::onnx;
use burn::prelude::*;
use serde::{Deserialize, Serialize};
use tagger_core::metadata::{ModelInfo, INPUT_NAME, OUTPUT_NAME};
use tagger_core::preprocess::{HEIGHT, WIDTH};
use tagger_core::tract_onnx::pb;

/// A convolution with batch norm folded in: `w` is `[c_out, c_in, kernel, kernel]`.
#[derive(Debug, Clone)]
pub struct FoldedConv {
    pub c_in: usize,
    pub c_out: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
    pub w: Vec<f32>,
    pub b: Vec<f32>,
    pub pool: bool,
}

impl FoldedConv {
    /// ONNX `Conv` / `QLinearConv` attributes.
    pub fn attrs(&self) -> Vec<pb::AttributeProto> {
        let (k, s, p) = (self.kernel as i64, self.stride as i64, self.padding as i64);
        vec![
            onnx::attr_ints("kernel_shape", &[k, k]),
            onnx::attr_ints("pads", &[p, p, p, p]),
            onnx::attr_ints("strides", &[s, s]),
        ]
    }

    pub fn weight_dims(&self) -> [i64; 4] {
        let k = self.kernel as i64;
        [self.c_out as i64, self.c_in as i64, k, k]
    }
}

/// The inference network as plain numbers: what every exporter (float, int8) writes.
#[derive(Debug, Clone)]
pub struct FoldedNet {
    pub convs: Vec<FoldedConv>,
    /// Dense weights `[features, classes]` (burn's layout, ONNX Gemm with transB = 0).
    pub head_w: Vec<f32>,
    pub head_b: Vec<f32>,
    pub features: usize,
    pub classes: usize,
    /// Extra heads (heads.rs), each a Gemm on the same features with its own named output.
    pub aux: Vec<FoldedHead>,
}

/// One extra head's dense layer: weights `[features, outputs]` and bias.
#[derive(Debug, Clone)]
pub struct FoldedHead {
    pub name: String,
    pub w: Vec<f32>,
    pub b: Vec<f32>,
    pub outputs: usize,
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .expect("f32 tensor")
}

/// Folds each batch norm into the preceding convolution:
/// `w' = w * gamma / sqrt(var + eps)`, `b' = beta - mean * gamma / sqrt(var + eps)`.
/// `names`: the extra heads' names, in [`Arch::heads`] order.
pub fn fold(model: &Cnn, arch: &Arch, names: &[String]) -> FoldedNet {
    let convs = model
        .blocks
        .iter()
        .zip(arch.convs())
        .map(|(b, spec)| {
            let c_out = spec.c_out;
            let w = values(b.conv.weight.val());
            let gamma = values(b.bn.gamma.val());
            let beta = values(b.bn.beta.val());
            let mean = values(b.bn.running_mean.value());
            let var = values(b.bn.running_var.value());
            let per_out = w.len() / c_out;
            let mut wf = w.clone();
            let mut bf = vec![0f32; c_out];
            for o in 0..c_out {
                let s = gamma[o] / (var[o] + b.bn.epsilon as f32).sqrt();
                for v in &mut wf[o * per_out..(o + 1) * per_out] {
                    *v *= s;
                }
                let conv_bias = b
                    .conv
                    .bias
                    .as_ref()
                    .map(|bias| values(bias.val())[o])
                    .unwrap_or(0.0);
                bf[o] = beta[o] + (conv_bias - mean[o]) * s;
            }
            FoldedConv {
                c_in: spec.c_in,
                c_out,
                kernel: spec.kernel,
                stride: spec.stride,
                padding: spec.padding,
                w: wf,
                b: bf,
                pool: spec.pool,
            }
        })
        .collect();
    FoldedNet {
        convs,
        head_w: values(model.head.weight.val()),
        head_b: model
            .head
            .bias
            .as_ref()
            .map(|b| values(b.val()))
            .unwrap_or_else(|| vec![0.0; arch.classes]),
        features: arch.features(),
        classes: arch.classes,
        aux: model
            .aux
            .iter()
            .zip(&arch.heads)
            .zip(names)
            .map(|((h, &outputs), name)| FoldedHead {
                name: name.clone(),
                w: values(h.weight.val()),
                b: h.bias
                    .as_ref()
                    .map(|b| values(b.val()))
                    .unwrap_or_else(|| vec![0.0; outputs]),
                outputs,
            })
            .collect(),
    }
}

/// The float ONNX model of a folded network.
pub fn float_model(net: &FoldedNet, info: &ModelInfo) -> pb::ModelProto {
    let mut nodes = vec![];
    let mut inits = vec![];
    let mut x = INPUT_NAME.to_string();
    for (i, c) in net.convs.iter().enumerate() {
        let (w, b) = (format!("conv{i}.weight"), format!("conv{i}.bias"));
        inits.push(onnx::tensor_f32(&w, &c.weight_dims(), &c.w));
        inits.push(onnx::tensor_f32(&b, &[c.c_out as i64], &c.b));
        let conv_out = format!("conv{i}");
        nodes.push(onnx::node(
            "Conv",
            &conv_out,
            &[&x, &w, &b],
            &[&conv_out],
            c.attrs(),
        ));
        let relu_out = format!("relu{i}");
        nodes.push(onnx::node(
            "Relu",
            &relu_out,
            &[&conv_out],
            &[&relu_out],
            vec![],
        ));
        x = relu_out;
        if c.pool {
            let pool_out = format!("pool{i}");
            nodes.push(onnx::max_pool_2x2(&pool_out, &x, &pool_out));
            x = pool_out;
        }
    }
    head(net, &x, &mut nodes, &mut inits);
    let graph = graph(info.name.clone(), nodes, inits, net);
    onnx::model(graph, info)
}

/// Global average pool -> Flatten -> Gemm from feature map `x` to `logits`: the f32 tail shared
/// by the float and int8 graphs.
pub fn head(
    net: &FoldedNet,
    x: &str,
    nodes: &mut Vec<pb::NodeProto>,
    inits: &mut Vec<pb::TensorProto>,
) {
    nodes.push(onnx::node(
        "GlobalAveragePool",
        "gap",
        &[x],
        &["gap"],
        vec![],
    ));
    nodes.push(onnx::node(
        "Flatten",
        "flatten",
        &["gap"],
        &["features"],
        vec![onnx::attr_int("axis", 1)],
    ));
    inits.push(onnx::tensor_f32(
        "head.weight",
        &[net.features as i64, net.classes as i64],
        &net.head_w,
    ));
    inits.push(onnx::tensor_f32(
        "head.bias",
        &[net.classes as i64],
        &net.head_b,
    ));
    nodes.push(onnx::node(
        "Gemm",
        "head",
        &["features", "head.weight", "head.bias"],
        &[OUTPUT_NAME],
        vec![],
    ));
    for h in &net.aux {
        let (w, b) = (format!("{}.weight", h.name), format!("{}.bias", h.name));
        inits.push(onnx::tensor_f32(
            &w,
            &[net.features as i64, h.outputs as i64],
            &h.w,
        ));
        inits.push(onnx::tensor_f32(&b, &[h.outputs as i64], &h.b));
        nodes.push(onnx::node(
            "Gemm",
            &format!("{}.gemm", h.name),
            &["features", &w, &b],
            &[&h.name],
            vec![],
        ));
    }
}

/// The graph around `nodes`: input `image` [N,3,80,60], output `logits` [N,classes], then one
/// output per extra head `[N, outputs]` named like the head.
pub fn graph(
    name: String,
    nodes: Vec<pb::NodeProto>,
    inits: Vec<pb::TensorProto>,
    net: &FoldedNet,
) -> pb::GraphProto {
    let mut output = vec![onnx::batched_value(OUTPUT_NAME, &[net.classes as i64])];
    output.extend(
        net.aux
            .iter()
            .map(|h| onnx::batched_value(&h.name, &[h.outputs as i64])),
    );
    pb::GraphProto {
        name,
        node: nodes,
        initializer: inits,
        input: vec![onnx::batched_value(
            INPUT_NAME,
            &[3, HEIGHT as i64, WIDTH as i64],
        )],
        output,
        ..Default::default()
    }
}

/// What `export` checked: the largest logit difference between burn and tract on test images.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExportCheck {
    pub images: usize,
    pub max_abs_logit_diff_tract_vs_burn: f32,
}
