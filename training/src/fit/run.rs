//! A training run on disk: its configuration and recipe (`config.json`), the per-epoch log and
//! state (`state.json`, `history.csv`) and where each file of the run folder lives.

use crate::data::heads::Head;
use crate::fit::augment::Augment;
use crate::fit::distill::Distill;
use crate::model::Arch;
use crate::scene::Scene;
use crate::util::write_atomic;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use tagger_core::preprocess::Normalization;

/// Training for stations: products composited onto belts and trays every epoch, a
/// `none` output trained on empty surfaces, and products of other kinds trained towards a flat
/// output so they stay below the station threshold (outlier exposure).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StationTraining {
    /// The compositing scene (scene/mod.rs `Scene::training`).
    pub scene: Scene,
    /// Share of product samples kept in the catalogue look (white background, small shifts).
    pub catalogue_share: f32,
    /// Empty frames per epoch, as a share of the training products (target `none`).
    pub empty_share: f32,
    /// Other-kind photos of `models/negatives.json`'s train part: their target is uniform over
    /// the product classes. `None`: not used.
    pub negatives: Option<String>,
    /// Vary the cut-out (cutout::CutStyle: 70% standard, 15% loose, 15% tight) so the model does
    /// not learn one cutting method's edges.
    #[serde(default)]
    pub cut_jitter: bool,
    /// Share of product samples photographed "at home" instead ([`Scene::room`]: wood, tiles,
    /// sheets, carpet, room light), as real photos are taken.
    #[serde(default, skip_serializing_if = "is_zero_f32")]
    pub room_share: f32,
    /// Classes (output indices) drawn as a pair in most room scenes: shoes lie in pairs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pair_classes: Vec<usize>,
}

pub(crate) fn is_zero_f32(v: &f32) -> bool {
    *v == 0.0
}

impl StationTraining {
    pub fn new(negatives: Option<String>) -> Self {
        Self {
            scene: Scene::training(),
            catalogue_share: 0.25,
            empty_share: 0.06,
            negatives,
            cut_jitter: false,
            room_share: 0.0,
            pair_classes: vec![],
        }
    }
}

pub(crate) fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

pub(crate) fn is_zero_usize(v: &usize) -> bool {
    *v == 0
}

/// Everything that defines a run; saved as `config.json` in the run directory.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TrainConfig {
    pub name: String,
    pub arch: Arch,
    pub epochs: usize,
    #[serde(flatten)]
    pub recipe: Recipe,
    pub normalization: Normalization,
    pub label_column: String,
    /// The model's outputs: the split's classes, then `none` for station runs.
    pub labels: Vec<String>,
}

/// How a network is trained, besides its architecture and length: kept in the run's config and
/// in the model card's training summary (flattened, so both files read as before), which makes
/// "is this run the one behind that card" one comparison.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Recipe {
    pub batch_size: usize,
    pub lr: f64,
    pub weight_decay: f64,
    pub seed: u64,
    pub augment: Option<Augment>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub station: Option<StationTraining>,
    /// Label smoothing: this much of each product target is spread over all outputs.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub label_smoothing: f64,
    /// Linear learning-rate warm-up over this many epochs (then the cosine decay).
    #[serde(default, skip_serializing_if = "is_zero_usize")]
    pub warmup_epochs: usize,
    /// Product targets partly taken from catalogue teachers (distill.rs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distill: Option<Distill>,
    /// Decay of a weight moving average (ema.rs) that is validated, kept as the best checkpoint
    /// and exported instead of the last weights.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ema: Option<f64>,
    /// Extra heads (heads.rs), trained beside the primary class with a masked loss each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub heads: Vec<Head>,
    /// Run directory whose best checkpoint this run starts from instead of random weights
    /// (same convolutions; head outputs matched by label, new ones fresh): fine-tuning. Its
    /// training time counts in this run's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_from: Option<String>,
}

impl Recipe {
    /// Plain training: no augmentation, station frames, smoothing, warm-up, teachers, average,
    /// extra heads or starting point.
    pub fn plain(batch_size: usize, lr: f64, weight_decay: f64, seed: u64) -> Self {
        Self {
            batch_size,
            lr,
            weight_decay,
            seed,
            augment: None,
            station: None,
            label_smoothing: 0.0,
            warmup_epochs: 0,
            distill: None,
            ema: None,
            heads: vec![],
            init_from: None,
        }
    }
}

/// One line of the training log.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EpochLog {
    pub epoch: usize,
    pub lr: f64,
    pub train_loss: f64,
    pub train_acc: f64,
    pub val_loss: f64,
    pub val_acc: f64,
    pub seconds: f64,
    pub images_per_s: f64,
    /// Station runs: validation accuracy on station frames (`mild`, `hard`) and the share of
    /// empty validation frames reported as a product.
    #[serde(default)]
    pub val_mild: Option<f64>,
    #[serde(default)]
    pub val_hard: Option<f64>,
    #[serde(default)]
    pub val_empty_product: Option<f64>,
    /// Runs with extra heads: validation accuracy of each, `name=acc` separated by spaces.
    #[serde(default)]
    pub val_heads: Option<String>,
}

impl EpochLog {
    /// What the best checkpoint is chosen by: validation accuracy, or for station runs the mean
    /// of catalogue, `mild` and `hard` validation accuracy less the empty-frame error.
    pub fn selection_score(&self) -> f64 {
        match (self.val_mild, self.val_hard, self.val_empty_product) {
            (Some(m), Some(h), Some(e)) => (self.val_acc + m + h) / 3.0 - e,
            _ => self.val_acc,
        }
    }
}

/// Saved after every epoch; what `--resume` reads.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct RunState {
    pub epochs_done: usize,
    pub best_epoch: usize,
    pub best_val_acc: f64,
    pub history: Vec<EpochLog>,
    pub train_seconds: f64,
    pub skipped_corrupt: usize,
    /// The best epoch's [`EpochLog::selection_score`] (equal to `best_val_acc` for plain runs).
    #[serde(default)]
    pub best_score: f64,
}

pub struct RunPaths {
    pub dir: PathBuf,
}

impl RunPaths {
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
        }
    }
    /// The run's settings and its state after the last finished epoch.
    pub fn read(&self) -> Result<(TrainConfig, RunState)> {
        let dir = self.dir.display();
        let cfg: TrainConfig = serde_json::from_slice(
            &std::fs::read(self.config())
                .with_context(|| format!("{dir} is not a training run (no config.json)"))?,
        )
        .with_context(|| format!("{dir}: config.json is unreadable"))?;
        let state: RunState = serde_json::from_slice(
            &std::fs::read(self.state())
                .with_context(|| format!("{dir} has no finished epoch yet (no state.json)"))?,
        )
        .with_context(|| format!("{dir}: state.json is unreadable"))?;
        Ok((cfg, state))
    }
    pub fn config(&self) -> PathBuf {
        self.dir.join("config.json")
    }
    pub fn state(&self) -> PathBuf {
        self.dir.join("state.json")
    }
    pub fn last(&self) -> PathBuf {
        self.dir.join("last.bpk")
    }
    pub fn optimizer(&self) -> PathBuf {
        self.dir.join("optimizer.bpk")
    }
    pub fn best(&self) -> PathBuf {
        self.dir.join("best.bpk")
    }
    /// The weight moving average after the last epoch (runs with `--ema`).
    pub fn ema(&self) -> PathBuf {
        self.dir.join("ema.bpk")
    }
    pub fn history_csv(&self) -> PathBuf {
        self.dir.join("history.csv")
    }
}

pub(crate) fn write_history_csv(path: &Path, history: &[EpochLog]) -> Result<()> {
    let mut w = csv::Writer::from_writer(vec![]);
    for h in history {
        w.serialize(h)?;
    }
    write_atomic(path, &w.into_inner()?)
}

#[cfg(test)]
mod tests {

    /// A resumed run must see exactly the history it saved (serde_json's `float_roundtrip`).
    #[test]
    fn saved_floats_restore_exactly() {
        for v in [
            1.9236636528602014f64,
            1.9236636528602016,
            0.1 + 0.2,
            1e-300,
            0.9734466277217206,
        ] {
            let text = serde_json::to_string(&v).unwrap();
            assert_eq!(
                serde_json::from_str::<f64>(&text).unwrap().to_bits(),
                v.to_bits()
            );
        }
    }
}
