//! EfficientNet-Lite0 as plain numbers: every convolution with its batch norm folded in (eps
//! 1e-3, as the TensorFlow original), ReLU6 activations, no squeeze-excite. Loaded from the
//! pretrained state dict (weights.rs); graph.rs writes it as ONNX for tract, which runs the frozen
//! backbone for training (features.rs) and the whole network in `tag`.
//!
//! Padding is TensorFlow's SAME (asymmetric for stride 2 on even sizes), computed per layer from
//! the input size, because the weights were trained with it.

use super::weights::StateDict;
use anyhow::{ensure, Result};

/// Batch-norm epsilon of the TensorFlow original.
pub const BN_EPS: f32 = 1e-3;
/// Feature width after the last 1x1 convolution (what the heads see).
pub const FEATURES: usize = 1280;
/// Blocks that start a stage with stride 2 (16 blocks in all).
const STRIDE2_BLOCKS: [usize; 4] = [1, 3, 5, 11];
const BLOCKS: usize = 16;

/// One convolution, batch norm folded: `w` is `[c_out, c_in / groups, k, k]`.
#[derive(Debug, Clone)]
pub struct LiteConv {
    pub c_in: usize,
    pub c_out: usize,
    pub kernel: usize,
    pub stride: usize,
    pub groups: usize,
    pub w: Vec<f32>,
    pub b: Vec<f32>,
    /// ReLU6 after the convolution (all but the projections).
    pub relu6: bool,
}

impl LiteConv {
    /// TF-SAME padding `(before, after)` and output size for an input side of `size`.
    pub fn same_pad(&self, size: usize) -> (usize, usize, usize) {
        let out = size.div_ceil(self.stride);
        let total = ((out - 1) * self.stride + self.kernel).saturating_sub(size);
        (total / 2, total - total / 2, out)
    }

    /// Multiply-accumulates for an `h` x `w` input.
    pub fn macs(&self, h: usize, w: usize) -> u64 {
        let (oh, ow) = (self.same_pad(h).2, self.same_pad(w).2);
        (oh * ow * self.c_out * (self.c_in / self.groups) * self.kernel * self.kernel) as u64
    }
}

/// An inverted-residual block: optional 1x1 expansion, depthwise conv, 1x1 projection, and the
/// identity added back when the shape is kept.
#[derive(Debug, Clone)]
pub struct LiteBlock {
    pub expand: Option<LiteConv>,
    pub depthwise: LiteConv,
    pub project: LiteConv,
    pub skip: bool,
}

impl LiteBlock {
    pub fn convs(&self) -> impl Iterator<Item = &LiteConv> {
        self.expand.iter().chain([&self.depthwise, &self.project])
    }
}

/// The whole backbone, and ImageNet's classifier (used to check the weights loaded right).
#[derive(Debug, Clone)]
pub struct Lite {
    pub stem: LiteConv,
    pub blocks: Vec<LiteBlock>,
    pub head: LiteConv,
    /// ImageNet classifier `[1000, 1280]` (PyTorch's layout) and bias.
    pub imagenet_w: Vec<f32>,
    pub imagenet_b: Vec<f32>,
}

fn conv(
    sd: &StateDict,
    conv: &str,
    bn: &str,
    stride: usize,
    depthwise: bool,
    relu6: bool,
) -> Result<LiteConv> {
    let name = format!("{conv}.weight");
    let shape = sd
        .shape(&name)
        .ok_or_else(|| anyhow::anyhow!("pretrained weights lack {name}"))?
        .to_vec();
    ensure!(
        shape.len() == 4,
        "{name}: expected a 4-d convolution weight"
    );
    let (c_out, c_in_g, k) = (shape[0], shape[1], shape[2]);
    let w = sd.get(&name, &shape)?;
    let gamma = sd.get(&format!("{bn}.weight"), &[c_out])?;
    let beta = sd.get(&format!("{bn}.bias"), &[c_out])?;
    let mean = sd.get(&format!("{bn}.running_mean"), &[c_out])?;
    let var = sd.get(&format!("{bn}.running_var"), &[c_out])?;
    let per_out = w.len() / c_out;
    let mut wf = w.to_vec();
    let mut b = vec![0.0; c_out];
    for o in 0..c_out {
        let scale = gamma[o] / (var[o] + BN_EPS).sqrt();
        wf[o * per_out..(o + 1) * per_out]
            .iter_mut()
            .for_each(|v| *v *= scale);
        b[o] = beta[o] - mean[o] * scale;
    }
    let groups = if depthwise { c_out } else { 1 };
    Ok(LiteConv {
        c_in: c_in_g * groups,
        c_out,
        kernel: k,
        stride,
        groups,
        w: wf,
        b,
        relu6,
    })
}

impl Lite {
    /// Builds the folded network from the EfficientNet-Lite0 state dict.
    pub fn from_state_dict(sd: &StateDict) -> Result<Self> {
        let stem = conv(sd, "_conv_stem", "_bn0", 2, false, true)?;
        let mut blocks = Vec::with_capacity(BLOCKS);
        for i in 0..BLOCKS {
            let p = format!("_blocks.{i}");
            let stride = if STRIDE2_BLOCKS.contains(&i) { 2 } else { 1 };
            let expand = if sd.shape(&format!("{p}._expand_conv.weight")).is_some() {
                Some(conv(
                    sd,
                    &format!("{p}._expand_conv"),
                    &format!("{p}._bn0"),
                    1,
                    false,
                    true,
                )?)
            } else {
                None
            };
            let depthwise = conv(
                sd,
                &format!("{p}._depthwise_conv"),
                &format!("{p}._bn1"),
                stride,
                true,
                true,
            )?;
            let project = conv(
                sd,
                &format!("{p}._project_conv"),
                &format!("{p}._bn2"),
                1,
                false,
                false,
            )?;
            let c_in = expand.as_ref().map_or(depthwise.c_in, |e| e.c_in);
            let skip = stride == 1 && c_in == project.c_out;
            blocks.push(LiteBlock {
                expand,
                depthwise,
                project,
                skip,
            });
        }
        ensure!(
            sd.shape(&format!("_blocks.{BLOCKS}._project_conv.weight"))
                .is_none(),
            "the pretrained weights have more than {BLOCKS} blocks: not EfficientNet-Lite0"
        );
        let head = conv(sd, "_conv_head", "_bn1", 1, false, true)?;
        ensure!(
            head.c_out == FEATURES,
            "head width {} != {FEATURES}",
            head.c_out
        );
        Ok(Self {
            stem,
            blocks,
            head,
            imagenet_w: sd.get("_fc.weight", &[1000, FEATURES])?.to_vec(),
            imagenet_b: sd.get("_fc.bias", &[1000])?.to_vec(),
        })
    }

    /// Every convolution in order.
    pub fn convs(&self) -> impl Iterator<Item = &LiteConv> {
        std::iter::once(&self.stem)
            .chain(self.blocks.iter().flat_map(LiteBlock::convs))
            .chain([&self.head])
    }

    /// Multiply-accumulates of the backbone (to the pooled features) for an `h` x `w` input.
    pub fn macs(&self, h: usize, w: usize) -> u64 {
        let (mut h, mut w) = (h, w);
        let mut total = 0;
        for c in self.convs() {
            total += c.macs(h, w);
            (h, w) = (c.same_pad(h).2, c.same_pad(w).2);
        }
        total
    }

    /// Receptive field in input pixels of one unit before global pooling.
    pub fn receptive_field(&self) -> usize {
        let (mut rf, mut jump) = (1, 1);
        for c in self.convs() {
            rf += (c.kernel - 1) * jump;
            jump *= c.stride;
        }
        rf
    }

    pub fn params(&self) -> usize {
        self.convs().map(|c| c.w.len() + c.b.len()).sum()
    }
}
