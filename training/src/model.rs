//! The CNNs, in burn. One family, described by [`Arch`]: stages of
//! conv3x3 -> batch norm -> ReLU, a 2x2 max pool between stages, then global average pooling,
//! dropout and one dense layer. training/README.md explains the choices; the exporter
//! (export.rs) writes the same graph to ONNX from the trained weights.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
use burn::nn::{
    BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Linear, LinearConfig, PaddingConfig2d, Relu,
};
use burn::prelude::*;
use serde::{Deserialize, Serialize};
use tagger::preprocess::{HEIGHT, WIDTH};

/// Network shape, saved with every run so export and evaluation rebuild the same model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Arch {
    /// Output channels of each stage; a 2x2 max pool follows every stage but the last.
    pub channels: Vec<usize>,
    /// Conv-BN-ReLU layers per stage.
    pub convs_per_stage: usize,
    pub dropout: f64,
    pub classes: usize,
}

impl Arch {
    /// The documented baseline (training/README.md): 4 stages, 16 -> 128 channels.
    pub fn baseline(classes: usize) -> Self {
        Self {
            channels: vec![16, 32, 64, 128],
            convs_per_stage: 1,
            dropout: 0.2,
            classes,
        }
    }

    /// Every conv as (in channels, out channels, input height, input width, pool after).
    pub fn convs(&self) -> Vec<(usize, usize, usize, usize, bool)> {
        let (mut h, mut w, mut c_in) = (HEIGHT as usize, WIDTH as usize, 3);
        let mut out = vec![];
        for (s, &c) in self.channels.iter().enumerate() {
            for k in 0..self.convs_per_stage {
                let last_in_stage = k + 1 == self.convs_per_stage;
                let pool = last_in_stage && s + 1 < self.channels.len();
                out.push((c_in, c, h, w, pool));
                c_in = c;
                if pool {
                    h /= 2;
                    w /= 2;
                }
            }
        }
        out
    }

    /// Multiply-accumulates x2 per image for convolutions and the dense layer (BN folds away).
    pub fn flops(&self) -> u64 {
        let conv: u64 = self
            .convs()
            .iter()
            .map(|&(ci, co, h, w, _)| 2 * 9 * ci as u64 * co as u64 * h as u64 * w as u64)
            .sum();
        let last = *self.channels.last().unwrap_or(&0) as u64;
        conv + 2 * last * self.classes as u64
    }

    /// Parameters of the exported (batch-norm folded) network.
    pub fn params_folded(&self) -> u64 {
        let conv: u64 = self
            .convs()
            .iter()
            .map(|&(ci, co, ..)| (9 * ci * co + co) as u64)
            .sum();
        let last = *self.channels.last().unwrap_or(&0) as u64;
        conv + last * self.classes as u64 + self.classes as u64
    }

    /// Receptive field in input pixels of one unit before global pooling.
    pub fn receptive_field(&self) -> usize {
        let (mut rf, mut jump) = (1, 1);
        for &(.., pool) in &self.convs() {
            rf += 2 * jump;
            if pool {
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
            .map(|(ci, co, _, _, pool)| ConvBlock {
                conv: Conv2dConfig::new([ci, co], [3, 3])
                    .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                    .with_bias(false)
                    .init(device),
                bn: BatchNormConfig::new(co).init(device),
                pool: pool.then(|| MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init()),
            })
            .collect();
        Cnn {
            blocks,
            relu: Relu::new(),
            gap: AdaptiveAvgPool2dConfig::new([1, 1]).init(),
            dropout: DropoutConfig::new(self.dropout).init(),
            head: LinearConfig::new(
                *self.channels.last().expect("at least one stage"),
                self.classes,
            )
            .init(device),
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
}

impl Cnn {
    /// `[n, 3, 80, 60]` normalised images -> `[n, classes]` logits.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let mut x = x;
        for b in &self.blocks {
            x = self.relu.forward(b.bn.forward(b.conv.forward(x)));
            if let Some(p) = &b.pool {
                x = p.forward(x);
            }
        }
        let x = self.gap.forward(x).flatten::<2>(1, 3);
        self.head.forward(self.dropout.forward(x))
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
}
