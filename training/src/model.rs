//! The CNNs, in burn. One family, described by [`Arch`]: conv -> batch norm -> ReLU layers
//! (either stages of 3x3 convs with a 2x2 max pool between them, or an explicit list of
//! [`Layer`]s with their own kernel, stride and padding), then global average pooling, dropout
//! and one dense layer. training/README.md explains the choices; the exporter (onnx/export.rs) writes
//! the same graph to ONNX from the trained weights.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
use burn::nn::{
    BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Linear, LinearConfig, PaddingConfig2d, Relu,
};
use burn::prelude::*;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use tagger_core::preprocess::{HEIGHT, WIDTH};

/// Network shape, saved with every run so export and evaluation rebuild the same model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Arch {
    /// Output channels of each stage; a 2x2 max pool follows every stage but the last.
    /// Ignored when `layers` is given.
    pub channels: Vec<usize>,
    /// Conv-BN-ReLU layers per stage.
    pub convs_per_stage: usize,
    /// Explicit conv layers (no max pools), replacing the stages: downsampling by stride. tract
    /// runs a strided conv much faster than a conv followed by MaxPool (docs/BENCHMARKS.md).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<Layer>,
    pub dropout: f64,
    pub classes: usize,
    /// Sizes of extra output heads (heads.rs: article type, colour, ...) beside the primary
    /// `classes`, each a dense layer on the same pooled features. Empty for single-head models.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub heads: Vec<usize>,
}

/// One conv -> BN -> ReLU layer, written `C[:K][/S][v]`: C output channels, K x K kernel
/// (default 3), stride S (default 1), `v` for no padding ("valid"; default: pad K/2).
/// `32:4/4v` is a 4x4 stride-4 "patchify" conv; `96/2v` a 3x3 stride-2 conv without padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layer {
    pub channels: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
}

impl FromStr for Layer {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("bad layer `{s}`: expected C[:K][/S][v], e.g. 64, 32:4/4v or 96/2v");
        let (rest, valid) = match s.strip_suffix('v') {
            Some(r) => (r, true),
            None => (s, false),
        };
        let (rest, stride) = match rest.split_once('/') {
            Some((r, st)) => (r, st.parse().map_err(|_| bad())?),
            None => (rest, 1),
        };
        let (channels, kernel) = match rest.split_once(':') {
            Some((c, k)) => (c.parse().map_err(|_| bad())?, k.parse().map_err(|_| bad())?),
            None => (rest.parse().map_err(|_| bad())?, 3),
        };
        if channels == 0 || kernel == 0 || stride == 0 {
            return Err(bad());
        }
        Ok(Layer {
            channels,
            kernel,
            stride,
            padding: if valid { 0 } else { kernel / 2 },
        })
    }
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}", self.channels)?;
        if self.kernel != 3 {
            write!(f, ":{}", self.kernel)?;
        }
        if self.stride != 1 {
            write!(f, "/{}", self.stride)?;
        }
        if self.padding == 0 {
            write!(f, "v")?;
        }
        Ok(())
    }
}

/// One convolution of a network as it runs: shapes in, kernel, and whether a 2x2 max pool
/// follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvSpec {
    pub c_in: usize,
    pub c_out: usize,
    /// Input height and width.
    pub h: usize,
    pub w: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
    pub pool: bool,
}

impl ConvSpec {
    /// Output height and width of the convolution (before any pool); 0 where the kernel does
    /// not fit, which [`Arch::validate`] reports.
    pub fn out_hw(&self) -> (usize, usize) {
        let o = |x: usize| {
            (x + 2 * self.padding)
                .checked_sub(self.kernel)
                .map_or(0, |room| room / self.stride + 1)
        };
        (o(self.h), o(self.w))
    }
}

impl Arch {
    /// The documented baseline (training/README.md): 4 stages, 16 -> 128 channels.
    pub fn baseline(classes: usize) -> Self {
        Self {
            channels: vec![16, 32, 64, 128],
            convs_per_stage: 1,
            layers: vec![],
            dropout: 0.2,
            classes,
            heads: vec![],
        }
    }

    /// A network given as explicit layers (see [`Layer`]).
    pub fn from_layers(layers: Vec<Layer>, dropout: f64, classes: usize) -> Self {
        Self {
            channels: vec![],
            convs_per_stage: 0,
            layers,
            dropout,
            classes,
            heads: vec![],
        }
    }

    /// The layers, written as `--layers` takes them (`32:4/4v,64v,96/2v,128v`), or the stages.
    pub fn describe(&self) -> String {
        if self.layers.is_empty() {
            format!(
                "conv3x3 stages {:?} ({} per stage), 2x2 max pool between stages",
                self.channels, self.convs_per_stage
            )
        } else {
            let l: Vec<String> = self.layers.iter().map(Layer::to_string).collect();
            format!("conv layers {}, no max pool", l.join(","))
        }
    }

    /// Every conv in order, with its input shape.
    pub fn convs(&self) -> Vec<ConvSpec> {
        let (mut h, mut w, mut c_in) = (HEIGHT as usize, WIDTH as usize, 3);
        let mut out = vec![];
        let mut push = |l: Layer, pool: bool| {
            let spec = ConvSpec {
                c_in,
                c_out: l.channels,
                h,
                w,
                kernel: l.kernel,
                stride: l.stride,
                padding: l.padding,
                pool,
            };
            (h, w) = spec.out_hw();
            if pool {
                h /= 2;
                w /= 2;
            }
            c_in = l.channels;
            out.push(spec);
        };
        if self.layers.is_empty() {
            for (s, &c) in self.channels.iter().enumerate() {
                for k in 0..self.convs_per_stage {
                    let last_in_stage = k + 1 == self.convs_per_stage;
                    let pool = last_in_stage && s + 1 < self.channels.len();
                    let conv3x3 = Layer {
                        channels: c,
                        kernel: 3,
                        stride: 1,
                        padding: 1,
                    };
                    push(conv3x3, pool);
                }
            }
        } else {
            for &l in &self.layers {
                push(l, false);
            }
        }
        out
    }

    /// Channels into the dense head.
    pub fn features(&self) -> usize {
        self.convs().last().map(|c| c.c_out).unwrap_or(3)
    }

    /// Checks that every layer still has pixels to work on at 60x80.
    pub fn validate(&self) -> Result<(), String> {
        let mut h = HEIGHT as usize;
        let mut w = WIDTH as usize;
        for (i, c) in self.convs().iter().enumerate() {
            if c.h + 2 * c.padding < c.kernel || c.w + 2 * c.padding < c.kernel {
                return Err(format!(
                    "conv {i} ({}x{} kernel) gets a {}x{} input: too small; use fewer strides \
                     or padding",
                    c.kernel, c.kernel, c.h, c.w
                ));
            }
            (h, w) = c.out_hw();
            if c.pool {
                (h, w) = (h / 2, w / 2);
            }
        }
        if self.convs().is_empty() || h == 0 || w == 0 {
            return Err("the network has no convolution or no pixels left before pooling".into());
        }
        Ok(())
    }

    /// Multiply-accumulates x2 per image for convolutions and the dense layer (BN folds away).
    pub fn flops(&self) -> u64 {
        let conv: u64 = self
            .convs()
            .iter()
            .map(|c| {
                let (h, w) = c.out_hw();
                2 * (c.kernel * c.kernel * c.c_in * c.c_out * h * w) as u64
            })
            .sum();
        conv + 2 * (self.features() * self.outputs()) as u64
    }

    /// Outputs of all heads together.
    pub fn outputs(&self) -> usize {
        self.classes + self.heads.iter().sum::<usize>()
    }

    /// Parameters of the exported (batch-norm folded) network.
    pub fn params_folded(&self) -> u64 {
        let conv: usize = self
            .convs()
            .iter()
            .map(|c| c.kernel * c.kernel * c.c_in * c.c_out + c.c_out)
            .sum();
        (conv + self.features() * self.outputs() + self.outputs()) as u64
    }

    /// Receptive field in input pixels of one unit before global pooling.
    pub fn receptive_field(&self) -> usize {
        let (mut rf, mut jump) = (1, 1);
        for c in &self.convs() {
            rf += (c.kernel - 1) * jump;
            jump *= c.stride;
            if c.pool {
                rf += jump;
                jump *= 2;
            }
        }
        rf
    }

    pub fn init(&self, device: &Device) -> Cnn {
        let blocks = self
            .convs()
            .into_iter()
            .map(|c| {
                let p = c.padding;
                ConvBlock {
                    conv: Conv2dConfig::new([c.c_in, c.c_out], [c.kernel, c.kernel])
                        .with_stride([c.stride, c.stride])
                        .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
                        .with_bias(false)
                        .init(device),
                    bn: BatchNormConfig::new(c.c_out).init(device),
                    pool: c
                        .pool
                        .then(|| MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init()),
                }
            })
            .collect();
        Cnn {
            blocks,
            relu: Relu::new(),
            gap: AdaptiveAvgPool2dConfig::new([1, 1]).init(),
            dropout: DropoutConfig::new(self.dropout).init(),
            head: LinearConfig::new(self.features(), self.classes).init(device),
            aux: self
                .heads
                .iter()
                .map(|&n| LinearConfig::new(self.features(), n).init(device))
                .collect(),
        }
    }
}

#[derive(Module, Debug)]
pub struct ConvBlock {
    pub conv: Conv2d,
    pub bn: BatchNorm,
    pub pool: Option<MaxPool2d>,
}

#[derive(Module, Debug)]
pub struct Cnn {
    pub blocks: Vec<ConvBlock>,
    relu: Relu,
    gap: AdaptiveAvgPool2d,
    dropout: Dropout,
    pub head: Linear,
    /// Extra heads (Arch::heads), in order.
    pub aux: Vec<Linear>,
}

impl Cnn {
    /// `[n, 3, 80, 60]` normalised images -> `[n, classes]` logits of the primary head.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.head.forward(self.features(x))
    }

    /// Logits of the primary head and of every extra head.
    pub fn forward_all(&self, x: Tensor<4>) -> (Tensor<2>, Vec<Tensor<2>>) {
        let f = self.features(x);
        let aux = self.aux.iter().map(|h| h.forward(f.clone())).collect();
        (self.head.forward(f), aux)
    }

    /// This freshly initialised model with `src`'s convolutions and batch norms, and each
    /// primary-head output `j` taken from `src`'s output `columns[j]` where there is one (the
    /// rest, e.g. a station model's new `none`, keep their fresh weights). How a run starts
    /// from another run's network (`--init-from`); both must have the same convolutions.
    pub fn transplant(self, src: Cnn, columns: &[Option<usize>]) -> Cnn {
        fn pick<const D: usize>(
            fresh: Tensor<D>,
            old: Tensor<D>,
            columns: &[Option<usize>],
        ) -> Tensor<D> {
            let parts = columns
                .iter()
                .enumerate()
                .map(|(j, c)| match c {
                    Some(i) => old.clone().narrow(D - 1, *i, 1),
                    None => fresh.clone().narrow(D - 1, j, 1),
                })
                .collect();
            Tensor::cat(parts, D - 1)
        }
        let mut head = self.head;
        let old_w = src.head.weight.val();
        head.weight = head.weight.map(|w| pick(w, old_w, columns));
        if let (Some(b), Some(old_b)) = (head.bias.take(), src.head.bias) {
            let old_b = old_b.val();
            head.bias = Some(b.map(|b| pick(b, old_b, columns)));
        }
        Cnn {
            blocks: src.blocks,
            head,
            ..self
        }
    }

    /// Pooled features after dropout: what every head reads.
    fn features(&self, x: Tensor<4>) -> Tensor<2> {
        let mut x = x;
        for b in &self.blocks {
            x = self.relu.forward(b.bn.forward(b.conv.forward(x)));
            if let Some(p) = &b.pool {
                x = p.forward(x);
            }
        }
        let x = self.gap.forward(x).flatten::<2>(1, 3);
        self.dropout.forward(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn baseline_budget() {
        let a = Arch::baseline(13);
        assert_eq!(a.convs().len(), 4);
        // Cheap enough to train a full run in about an hour on 2 cores.
        assert!(a.flops() < 50_000_000, "{}", a.flops());
        assert!(a.receptive_field() >= 30);
    }

    #[test]
    fn forward_shape() {
        let device = Device::flex();
        let a = Arch::baseline(5);
        let m = a.init(&device);
        let y = m.forward(Tensor::zeros([2, 3, 80, 60], &device));
        assert_eq!(y.dims(), [2, 5]);
        // conv weights + folded biases per stage, then the dense layer.
        let convs = (27 * 16 + 16) + (144 * 32 + 32) + (288 * 64 + 64) + (576 * 128 + 128);
        assert_eq!(a.params_folded(), convs + 128 * 5 + 5);
        // burn also counts BN's gamma, beta and running statistics (4 vectors per stage).
        assert_eq!(
            m.num_params() as u64,
            a.params_folded() + 3 * (16 + 32 + 64 + 128)
        );
    }

    #[test]
    fn layers_parse_and_print() {
        let l: Layer = "32:4/4v".parse().unwrap();
        assert_eq!(
            l,
            Layer {
                channels: 32,
                kernel: 4,
                stride: 4,
                padding: 0
            }
        );
        assert_eq!(l.to_string(), "32:4/4v");
        let l: Layer = "96/2".parse().unwrap();
        assert_eq!((l.kernel, l.stride, l.padding), (3, 2, 1));
        assert_eq!(l.to_string(), "96/2");
        for bad in ["", "x", "32:", "0", "32/0", "32:4/4vv"] {
            assert!(bad.parse::<Layer>().is_err(), "{bad}");
        }
    }

    #[test]
    fn explicit_layers_shapes_and_budget() {
        let layers = ["32:4/4v", "64v", "96/2v", "128v"]
            .map(|l| l.parse().unwrap())
            .to_vec();
        let a = Arch::from_layers(layers, 0.2, 13);
        a.validate().unwrap();
        let outs: Vec<_> = a.convs().iter().map(ConvSpec::out_hw).collect();
        assert_eq!(outs, [(20, 15), (18, 13), (8, 6), (6, 4)]);
        let expect = 2 * (16 * 3 * 32 * 300 + 9 * 32 * 64 * 234 + 9 * 64 * 96 * 48)
            + 2 * (9 * 96 * 128 * 24 + 128 * 13);
        assert_eq!(a.flops(), expect as u64);
        assert_eq!(a.receptive_field(), 4 + 2 * 4 + 2 * 4 + 2 * 8);
        let m = a.init(&Device::flex());
        let y = m.forward(Tensor::zeros([2, 3, 80, 60], &Device::flex()));
        assert_eq!(y.dims(), [2, 13]);
        // Old model cards (no `layers` key) still load.
        let old = r#"{"channels":[16,32],"convs_per_stage":1,"dropout":0.2,"classes":5}"#;
        let old: Arch = serde_json::from_str(old).unwrap();
        assert!(old.layers.is_empty());
        assert!(!serde_json::to_string(&old).unwrap().contains("layers"));
        let tiny = Arch::from_layers(vec!["8:9/9v".parse().unwrap(); 3], 0.0, 2);
        assert!(tiny.validate().is_err());
    }
}
