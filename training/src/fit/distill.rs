//! Knowledge distillation for station training: besides its label, each product
//! sample learns the softened output of catalogue models (e.g. `fast` and `tuned`) on the
//! *clean catalogue photo* of the same product, whatever belt, mirroring or blur the student
//! sees. The teachers see the photos they are good at; the student learns to give the same answer
//! through the camera, and gets their "dark knowledge" (which classes a photo resembles), which
//! helps small networks most.
//!
//! Teacher outputs are computed once per run, before the first epoch, through the runtime
//! (`tagger_core::model`, tract), from the exported ONNX files: the teachers are what ships, not
//! checkpoints.

use crate::data::cache::ImageCache;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;
use tagger_core::backend::BackendKind;
use tagger_core::model::Model;

/// Distillation settings, saved in the run's config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Distill {
    /// ONNX files of the teachers; their outputs are averaged.
    pub teachers: Vec<String>,
    /// Share of each product target taken from the teachers (the rest is the label).
    pub weight: f32,
    /// Softmax temperature applied to the teachers' logits.
    pub temperature: f32,
}

/// The teachers' averaged, softened probabilities over the product classes, per image id.
pub struct TeacherTargets {
    index: HashMap<u64, usize>,
    probs: Vec<f32>,
    classes: usize,
}

impl TeacherTargets {
    /// Probabilities over the product classes for `id`, if a teacher saw it.
    pub fn get(&self, id: u64) -> Option<&[f32]> {
        let i = *self.index.get(&id)?;
        Some(&self.probs[i * self.classes..(i + 1) * self.classes])
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }
}

impl TeacherTargets {
    /// Targets from a teacher's logits computed elsewhere (`logits`: one row of `classes`
    /// product logits per id, e.g. a probe head on cached backbone features).
    pub fn from_logits(ids: &[u64], logits: &[f32], classes: usize, temperature: f32) -> Self {
        let probs = logits
            .chunks(classes)
            .flat_map(|l| softened(l, temperature))
            .collect();
        TeacherTargets {
            index: ids.iter().enumerate().map(|(i, &id)| (id, i)).collect(),
            probs,
            classes,
        }
    }
}

/// Softmax of `logits / temperature`.
pub fn softened(logits: &[f32], temperature: f32) -> Vec<f32> {
    let t = temperature.max(1e-3);
    let max = logits.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let e: Vec<f32> = logits.iter().map(|&v| ((v - max) / t).exp()).collect();
    let sum: f32 = e.iter().sum();
    e.into_iter().map(|v| v / sum).collect()
}

/// Runs every teacher over the cached photos `ids`. Teachers must output exactly the product
/// classes `products`, in that order.
pub fn teacher_targets(
    cfg: &Distill,
    cache: &ImageCache,
    ids: &[u64],
    products: &[String],
) -> Result<TeacherTargets> {
    if cfg.teachers.is_empty() {
        bail!("distillation needs at least one --teacher model");
    }
    if !(cfg.weight > 0.0 && cfg.weight <= 1.0) {
        bail!("--distill-weight must be in (0, 1], got {}", cfg.weight);
    }
    if !(cfg.temperature > 0.0 && cfg.temperature.is_finite()) {
        bail!(
            "--distill-temperature must be a positive number, got {}",
            cfg.temperature
        );
    }
    let ids: Vec<u64> = ids
        .iter()
        .copied()
        .filter(|&id| cache.get(id).is_some())
        .collect();
    let classes = products.len();
    let mut probs = vec![0f32; ids.len() * classes];
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    for path in &cfg.teachers {
        let model = Model::from_path(Path::new(path), BackendKind::Tract, threads)
            .with_context(|| format!("loading teacher {path}"))?;
        if model.info.labels != products {
            bail!(
                "teacher {path} has the classes {:?}; the student's product classes are {:?}: \
                 use a teacher trained on the same split",
                model.info.labels,
                products
            );
        }
        let images: Vec<&[u8]> = ids.iter().filter_map(|&id| cache.get(id)).collect();
        let logits = crate::eval::runner::logits(&model, &images)
            .with_context(|| format!("teacher {path}: re-export it"))?;
        for (l, o) in logits.chunks(classes).zip(probs.chunks_mut(classes)) {
            for (o, p) in o.iter_mut().zip(softened(l, cfg.temperature)) {
                *o += p / cfg.teachers.len() as f32;
            }
        }
    }
    Ok(TeacherTargets {
        index: ids.iter().enumerate().map(|(i, &id)| (id, i)).collect(),
        probs,
        classes,
    })
}

/// The target of one product sample: `(1 - weight)` of its (smoothed) label target plus
/// `weight` of the teachers' probabilities over the product classes (none gets nothing).
pub fn blend(target: &mut [f32], teacher: &[f32], weight: f32) {
    for (i, t) in target.iter_mut().enumerate() {
        *t = (1.0 - weight) * *t + weight * teacher.get(i).copied().unwrap_or(0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softened_is_a_distribution_that_flattens_with_temperature() {
        let l = [3.0, 1.0, 0.0];
        let p1 = softened(&l, 1.0);
        let p4 = softened(&l, 4.0);
        assert!((p1.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!((p4.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(p4[0] < p1[0] && p4[2] > p1[2]);
        assert!(p1[0] > p1[1] && p1[1] > p1[2]);
    }

    #[test]
    fn blend_keeps_a_distribution_and_gives_none_nothing() {
        let mut t = vec![0.0, 1.0, 0.0, 0.0];
        blend(&mut t, &[0.2, 0.7, 0.1], 0.5);
        assert!((t.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert_eq!(t, vec![0.1, 0.85, 0.05, 0.0]);
    }
}
