//! EfficientNet-Lite0 in burn, for fine-tuning. Every convolution of efficientnet.rs becomes a
//! burn `Conv2d` with a bias: batch norm stays folded, so its statistics are frozen while the
//! weights train (the usual choice when fine-tuning with small batches, and what the exported
//! graph runs anyway). TF-SAME padding is fixed for one input size. [`LiteNet::to_lite`] reads the
//! weights back so graph.rs writes the fine-tuned network, the only exporter of this family.

use super::efficientnet::{Lite, LiteBlock, LiteConv, FEATURES};
use super::graph::{bilinear_matrix, transpose};
use burn::module::Param;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::TensorData;

/// One convolution (+ ReLU6).
#[derive(Module, Debug)]
pub struct Unit {
    pub conv: Conv2d,
    #[module(skip)]
    pub relu6: bool,
}

impl Unit {
    fn new(c: &LiteConv, h: usize, w: usize, device: &Device) -> (Self, usize, usize) {
        let (pt, pb, oh) = c.same_pad(h);
        let (pl, pr, ow) = c.same_pad(w);
        let mut conv = Conv2dConfig::new([c.c_in, c.c_out], [c.kernel, c.kernel])
            .with_stride([c.stride, c.stride])
            .with_groups(c.groups)
            .with_padding(PaddingConfig2d::Explicit(pt, pl, pb, pr))
            .with_bias(true)
            .init(device);
        let shape = [c.c_out, c.c_in / c.groups, c.kernel, c.kernel];
        conv.weight = Param::from_tensor(Tensor::from_data(
            TensorData::new(c.w.clone(), shape),
            device,
        ));
        conv.bias = Some(Param::from_tensor(Tensor::from_data(
            TensorData::new(c.b.clone(), [c.c_out]),
            device,
        )));
        let unit = Self {
            conv,
            relu6: c.relu6,
        };
        (unit, oh, ow)
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let y = self.conv.forward(x);
        if self.relu6 {
            y.clamp(0.0, 6.0)
        } else {
            y
        }
    }

    /// The folded convolution with this unit's current weights.
    fn to_conv(&self, like: &LiteConv) -> LiteConv {
        LiteConv {
            w: values(self.conv.weight.val()),
            b: self
                .conv
                .bias
                .as_ref()
                .map(|b| values(b.val()))
                .unwrap_or_else(|| vec![0.0; like.c_out]),
            ..like.clone()
        }
    }
}

#[derive(Module, Debug)]
pub struct Block {
    pub expand: Option<Unit>,
    pub depthwise: Unit,
    pub project: Unit,
    #[module(skip)]
    pub skip: bool,
}

impl Block {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut y = x.clone();
        if let Some(e) = &self.expand {
            y = e.forward(y);
        }
        y = self.project.forward(self.depthwise.forward(y));
        if self.skip {
            y + x
        } else {
            y
        }
    }
}

/// The network from `tag`'s 3x80x60 input (enlarged first when `resize` is given) to the logits
/// of one dense head.
#[derive(Module, Debug)]
pub struct LiteNet {
    pub stem: Unit,
    pub blocks: Vec<Block>,
    pub head_conv: Unit,
    pub dropout: Dropout,
    pub classifier: Linear,
    /// Bilinear matrices `[rh, 80]` and `[60, rw]` (graph.rs's enlargement), when enlarged.
    #[module(skip)]
    pub resize: Option<(Vec<f32>, Vec<f32>, usize, usize)>,
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .expect("f32 tensor")
}

impl LiteNet {
    /// The pretrained network for an `input` image enlarged to `resize`, with a fresh head of
    /// `outputs` (or the given head weights `[1280, outputs]` and bias).
    pub fn new(
        lite: &Lite,
        input: (usize, usize),
        resize: Option<(usize, usize)>,
        outputs: usize,
        head: Option<(&[f32], &[f32])>,
        dropout: f64,
        device: &Device,
    ) -> Self {
        let (mut h, mut w) = resize.unwrap_or(input);
        let (stem, oh, ow) = Unit::new(&lite.stem, h, w, device);
        (h, w) = (oh, ow);
        let mut blocks = vec![];
        for b in &lite.blocks {
            let expand = b.expand.as_ref().map(|e| {
                let (u, oh, ow) = Unit::new(e, h, w, device);
                (h, w) = (oh, ow);
                u
            });
            let (depthwise, oh, ow) = Unit::new(&b.depthwise, h, w, device);
            (h, w) = (oh, ow);
            let (project, oh, ow) = Unit::new(&b.project, h, w, device);
            (h, w) = (oh, ow);
            blocks.push(Block {
                expand,
                depthwise,
                project,
                skip: b.skip,
            });
        }
        let (head_conv, _, _) = Unit::new(&lite.head, h, w, device);
        let mut classifier = LinearConfig::new(FEATURES, outputs).init(device);
        if let Some((hw, hb)) = head {
            classifier.weight = Param::from_tensor(Tensor::from_data(
                TensorData::new(hw.to_vec(), [FEATURES, outputs]),
                device,
            ));
            classifier.bias = Some(Param::from_tensor(Tensor::from_data(
                TensorData::new(hb.to_vec(), [outputs]),
                device,
            )));
        }
        let resize = resize.map(|(rh, rw)| {
            let cols_t = transpose(&bilinear_matrix(rw, input.1), rw, input.1);
            (bilinear_matrix(rh, input.0), cols_t, rh, rw)
        });
        Self {
            stem,
            blocks,
            head_conv,
            dropout: DropoutConfig::new(dropout).init(),
            classifier,
            resize,
        }
    }

    /// Pooled features `[n, 1280]` of normalised `[n, 3, 80, 60]` images.
    pub fn features(&self, x: Tensor<4>) -> Tensor<2> {
        let device = x.device();
        let [_, _, ih, iw] = x.dims();
        let mut x = x;
        if let Some((rows, cols, rh, rw)) = &self.resize {
            let rows = Tensor::<2>::from_data(TensorData::new(rows.clone(), [*rh, ih]), &device);
            let cols = Tensor::<2>::from_data(TensorData::new(cols.clone(), [iw, *rw]), &device);
            x = rows
                .unsqueeze::<4>()
                .matmul(x)
                .matmul(cols.unsqueeze::<4>());
        }
        let mut x = self.stem.forward(x);
        for b in &self.blocks {
            x = b.forward(x);
        }
        let x = self.head_conv.forward(x);
        let [n, c, _, _] = x.dims();
        x.mean_dim(3).mean_dim(2).reshape([n, c])
    }

    /// Logits `[n, outputs]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.classifier
            .forward(self.dropout.forward(self.features(x)))
    }

    /// The first `blocks` blocks (and the stem) keep their pretrained weights.
    pub fn freeze(mut self, blocks: usize) -> Self {
        if blocks > 0 {
            self.stem = self.stem.no_grad();
        }
        self.blocks = self
            .blocks
            .into_iter()
            .enumerate()
            .map(|(i, b)| if i < blocks { b.no_grad() } else { b })
            .collect();
        self
    }

    /// The backbone with this network's weights (`base` gives the shapes), for graph.rs.
    pub fn to_lite(&self, base: &Lite) -> Lite {
        Lite {
            stem: self.stem.to_conv(&base.stem),
            blocks: self
                .blocks
                .iter()
                .zip(&base.blocks)
                .map(|(b, lb)| LiteBlock {
                    expand: b
                        .expand
                        .as_ref()
                        .zip(lb.expand.as_ref())
                        .map(|(u, c)| u.to_conv(c)),
                    depthwise: b.depthwise.to_conv(&lb.depthwise),
                    project: b.project.to_conv(&lb.project),
                    skip: lb.skip,
                })
                .collect(),
            head: self.head_conv.to_conv(&base.head),
            imagenet_w: base.imagenet_w.clone(),
            imagenet_b: base.imagenet_b.clone(),
        }
    }

    /// The dense head: weights `[1280, outputs]` and bias.
    pub fn head(&self) -> (Vec<f32>, Vec<f32>) {
        (
            values(self.classifier.weight.val()),
            self.classifier
                .bias
                .as_ref()
                .map(|b| values(b.val()))
                .unwrap_or_default(),
        )
    }
}
