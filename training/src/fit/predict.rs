//! A trained burn network on images: logits per image, the station validation frames of a run,
//! per-head accuracies, cross-entropy and accuracy.

use super::batch::*;
use super::run::*;
use crate::data::cache::ImageCache;
use crate::data::heads::HeadTargets;
use crate::data::split::Entry;
use crate::model::Cnn;
use crate::scene::Level;
use crate::util::progress;
use burn::prelude::*;
use burn::tensor::TensorData;
use tagger_core::preprocess::{normalize_into, Normalization, HEIGHT, IMAGE_LEN, WIDTH};

/// One row of logits per image of a batch.
pub(crate) fn logit_rows(model: &Cnn, x: Tensor<4>) -> Vec<Vec<f32>> {
    let y = model.forward(x);
    let [_, classes] = y.dims();
    let v: Vec<f32> = y
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .expect("f32 logits");
    v.chunks(classes).map(<[f32]>::to_vec).collect()
}

/// Network-sized frames through a (non-training) model: logits per frame.
pub fn predict_frames(
    model: &Cnn,
    frames: &[Vec<u8>],
    norm: &Normalization,
    device: &Device,
) -> Vec<Vec<f32>> {
    let mut out = vec![];
    for chunk in frames.chunks(256) {
        let mut input = vec![0f32; chunk.len() * IMAGE_LEN];
        for (f, o) in chunk.iter().zip(input.chunks_mut(IMAGE_LEN)) {
            normalize_into(f, norm, o);
        }
        let x = Tensor::<4>::from_data(
            TensorData::new(input, [chunk.len(), 3, HEIGHT as usize, WIDTH as usize]),
            device,
        );
        out.extend(logit_rows(model, x));
    }
    out
}

/// Station validation frames, rendered once per run.
pub(crate) struct StationVal {
    mild: Vec<Vec<u8>>,
    hard: Vec<Vec<u8>>,
    truth: Vec<usize>,
    empty: Vec<Vec<u8>>,
}

impl StationVal {
    pub(crate) fn new(cache: &ImageCache, val_set: &[Entry]) -> Self {
        let present: Vec<Entry> = val_set
            .iter()
            .copied()
            .filter(|e| cache.get(e.0).is_some())
            .collect();
        let frames = |l| crate::eval::runner::level_inputs(l, "val", &present, 400, cache);
        Self {
            mild: frames(Level::Mild),
            hard: frames(Level::Hard),
            truth: present.iter().map(|e| e.1).collect(),
            empty: frames(Level::Empty),
        }
    }

    /// (mild accuracy, hard accuracy, share of empty frames reported as a product).
    pub(crate) fn score(&self, model: &Cnn, cfg: &TrainConfig, device: &Device) -> (f64, f64, f64) {
        let norm = &cfg.normalization;
        let acc = |frames: &[Vec<u8>]| {
            let logits = predict_frames(model, frames, norm, device);
            accuracy(&logits, &self.truth)
        };
        let empty = predict_frames(model, &self.empty, norm, device);
        let reported = empty
            .iter()
            .filter(|l| crate::eval::runner::reported(l, &cfg.labels).is_some())
            .count();
        (
            acc(&self.mild),
            acc(&self.hard),
            reported as f64 / self.empty.len().max(1) as f64,
        )
    }
}

/// Logits of a (non-training) model for `entries`, plus the classes of those that were present.
pub fn predict(
    model: &Cnn,
    cache: &ImageCache,
    entries: &[Entry],
    norm: &Normalization,
    device: &Device,
    what: &str,
) -> (Vec<Vec<f32>>, Vec<usize>) {
    let bar = progress(entries.len() as u64, what);
    let mut logits = vec![];
    let mut targets = vec![];
    for chunk in entries.chunks(256) {
        let (x, _, n) = batch_tensors(cache, chunk, norm, device);
        if n > 0 {
            logits.extend(logit_rows(model, x));
        }
        targets.extend(
            chunk
                .iter()
                .filter(|(id, _)| cache.get(*id).is_some())
                .map(|&(_, c)| c),
        );
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    (logits, targets)
}

/// Validation accuracy of each extra head over the photos that have a value, as
/// `name=acc name=acc`.
pub(crate) fn head_accuracies(
    model: &Cnn,
    cfg: &TrainConfig,
    cache: &ImageCache,
    val_set: &[Entry],
    heads: &HeadTargets,
    device: &Device,
) -> String {
    let mut hits = vec![0usize; cfg.recipe.heads.len()];
    let mut counted = vec![0usize; cfg.recipe.heads.len()];
    let present: Vec<Entry> = val_set
        .iter()
        .copied()
        .filter(|e| cache.get(e.0).is_some())
        .collect();
    for chunk in present.chunks(256) {
        let (x, _, _) = batch_tensors(cache, chunk, &cfg.normalization, device);
        let (_, aux) = model.forward_all(x);
        for (j, a) in aux.into_iter().enumerate() {
            let pred: Vec<i64> = a
                .argmax(1)
                .into_data()
                .convert::<i64>()
                .try_to_vec::<i64>()
                .expect("i64 predictions");
            for (p, &(id, _)) in pred.iter().zip(chunk) {
                if let Some(&t) = heads.get(id).and_then(|t| t.get(j)) {
                    if t >= 0 {
                        counted[j] += 1;
                        hits[j] += (*p == t as i64) as usize;
                    }
                }
            }
        }
    }
    cfg.recipe
        .heads
        .iter()
        .enumerate()
        .map(|(j, h)| {
            format!(
                "{}={:.4}",
                h.name,
                hits[j] as f64 / counted[j].max(1) as f64
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

pub(crate) fn mean_ce(logits: &[Vec<f32>], targets: &[usize]) -> f64 {
    let mut total = 0.0;
    for (l, &t) in logits.iter().zip(targets) {
        let max = l.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        let lse = max + l.iter().map(|&v| (v as f64 - max).exp()).sum::<f64>().ln();
        total += lse - l[t] as f64;
    }
    total / targets.len().max(1) as f64
}

pub(crate) fn accuracy(logits: &[Vec<f32>], targets: &[usize]) -> f64 {
    let hits = logits
        .iter()
        .zip(targets)
        .filter(|(l, &t)| tagger_core::classify::argmax(l) == t)
        .count();
    hits as f64 / targets.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cross_entropy_and_accuracy() {
        let logits = vec![vec![2.0, 0.0], vec![0.0, 2.0]];
        assert_eq!(accuracy(&logits, &[0, 0]), 0.5);
        let ce = mean_ce(&logits, &[0, 1]);
        assert!((ce - (1.0f64 + (-2.0f64).exp()).ln()).abs() < 1e-6);
    }
}
