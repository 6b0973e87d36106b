//! A dense head trained in burn on fixed feature vectors (the frozen backbone's, features.rs):
//! cross-entropy against soft targets (one-hot for products and `none`, flat over the products for
//! other kinds, as the station models are trained), AdamW, minibatches in a seeded order.

use anyhow::{ensure, Result};
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::optim::{AdamWConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::TensorData;
use rand::seq::SliceRandom;
use rand::SeedableRng;

/// How the head is fitted.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LinearFit {
    pub epochs: usize,
    pub lr: f64,
    pub weight_decay: f64,
    pub batch_size: usize,
    pub seed: u64,
}

/// Training rows: features `[n, dim]` and soft targets `[n, outputs]`.
pub struct Rows<'a> {
    pub x: &'a [f32],
    pub t: &'a [f32],
    pub dim: usize,
    pub outputs: usize,
}

/// The fitted head: weights `[dim, outputs]` (burn's and ONNX Gemm's layout) and bias.
pub struct Head {
    pub w: Vec<f32>,
    pub b: Vec<f32>,
}

impl Head {
    /// Logits of one feature vector.
    pub fn logits(&self, f: &[f32]) -> Vec<f32> {
        let outputs = self.b.len();
        let mut out = self.b.clone();
        for (i, &v) in f.iter().enumerate() {
            let row = &self.w[i * outputs..(i + 1) * outputs];
            out.iter_mut().zip(row).for_each(|(o, &w)| *o += v * w);
        }
        out
    }
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .expect("f32 tensor")
}

/// Fits the head; `on_epoch(epoch, mean loss, head)` sees each epoch's result (for validation
/// figures and picking an epoch).
pub fn fit(
    rows: &Rows,
    cfg: &LinearFit,
    mut on_epoch: impl FnMut(usize, f64, &Head),
) -> Result<Head> {
    let n = rows.x.len() / rows.dim.max(1);
    ensure!(
        n > 0 && rows.t.len() == n * rows.outputs,
        "no training rows or mismatched targets"
    );
    let device = Device::flex();
    device.seed(cfg.seed);
    let ad = device.autodiff();
    let mut model: Linear = LinearConfig::new(rows.dim, rows.outputs).init(&ad);
    let mut optim = AdamWConfig::new()
        .with_weight_decay(cfg.weight_decay as f32)
        .init();
    let mut rng = rand::rngs::StdRng::seed_from_u64(cfg.seed);
    let mut order: Vec<usize> = (0..n).collect();
    let mut head = Head {
        w: vec![],
        b: vec![],
    };
    for epoch in 1..=cfg.epochs {
        order.shuffle(&mut rng);
        let mut loss_sum = 0.0;
        for batch in order.chunks(cfg.batch_size) {
            let m = batch.len();
            let mut x = Vec::with_capacity(m * rows.dim);
            let mut t = Vec::with_capacity(m * rows.outputs);
            for &i in batch {
                x.extend_from_slice(&rows.x[i * rows.dim..(i + 1) * rows.dim]);
                t.extend_from_slice(&rows.t[i * rows.outputs..(i + 1) * rows.outputs]);
            }
            let x = Tensor::<2>::from_data(TensorData::new(x, [m, rows.dim]), &ad);
            let t = Tensor::<2>::from_data(TensorData::new(t, [m, rows.outputs]), &ad);
            let logp = burn::tensor::activation::log_softmax(model.forward(x), 1);
            let loss = (logp * t).sum_dim(1).mean().neg();
            loss_sum += loss.clone().into_scalar::<f32>() as f64 * m as f64;
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(cfg.lr, model, grads);
        }
        let valid = model.valid();
        head = Head {
            w: values(valid.weight.val()),
            b: valid
                .bias
                .as_ref()
                .map(|b| values(b.val()))
                .unwrap_or_default(),
        };
        on_epoch(epoch, loss_sum / n as f64, &head);
    }
    Ok(head)
}
