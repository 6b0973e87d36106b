//! Scoring a trained run on train/val/test, exporting it to ONNX, and the model card
//! (`models/<name>.json`) that gathers every number about it.

use crate::data::cache::ImageCache;
use crate::data::split::{Entry, Split};
use crate::eval::metrics::Metrics;
use crate::eval::metrics::SplitMetrics;
use crate::fit::{load_module, predict, RunPaths, TrainConfig};
use crate::model::Cnn;
use crate::onnx;
use crate::onnx::export::ExportCheck;
use crate::onnx::export::{float_model, fold};
use crate::report::card::{ExportedModel, SplitSummary, TrainingSummary};
use crate::util::{sha256_hex, write_atomic, write_json};
use anyhow::{bail, Result};
use burn::prelude::*;
use std::path::Path;
use tagger_core::backend::BackendKind;
use tagger_core::metadata::ModelInfo;
use tagger_core::model::Model;
use tagger_core::preprocess::IMAGE_LEN;

/// The best-on-validation weights of a run, ready for inference.
pub fn best_model(paths: &RunPaths, cfg: &TrainConfig, device: &Device) -> Result<Cnn> {
    load_module(&cfg.arch, &paths.best(), device)
}

pub fn predictions(
    model: &Cnn,
    cfg: &TrainConfig,
    cache: &ImageCache,
    set: &[Entry],
    what: &str,
) -> (Vec<usize>, Vec<usize>) {
    let (logits, truth) = predict(model, cache, set, &cfg.normalization, &Device::flex(), what);
    let pred = logits
        .iter()
        .map(|l| tagger_core::classify::argmax(l))
        .collect();
    (pred, truth)
}

/// Scores the run's best checkpoint on all three splits; writes metrics.json and the plots.
pub fn evaluate(paths: &RunPaths, split: &Split, cache: &ImageCache) -> Result<SplitMetrics> {
    let (cfg, state) = paths.read()?;
    // A station model has one more output, `none`, after the split's classes.
    if !cfg.labels.starts_with(&split.labels) {
        bail!(
            "run {} was trained on other labels than this split",
            paths.dir.display()
        );
    }
    let model = best_model(paths, &cfg, &Device::flex())?;
    let score = |set: &[Entry], what: &str| {
        let (p, t) = predictions(&model, &cfg, cache, set, what);
        Metrics::compute(&p, &t, &cfg.labels)
    };
    let m = SplitMetrics {
        train: score(&split.train, "scoring train"),
        val: score(&split.val, "scoring val"),
        test: score(&split.test, "scoring test"),
    };
    write_json(&paths.dir.join("metrics.json"), &m)?;
    let h = &state.history;
    let per_epoch = |f: fn(&crate::fit::EpochLog) -> f64| h.iter().map(f).collect::<Vec<f64>>();
    crate::report::plots::curves(
        &per_epoch(|e| e.epoch as f64),
        [
            crate::report::plots::Panel {
                name: "cross-entropy loss",
                train: per_epoch(|e| e.train_loss),
                val: per_epoch(|e| e.val_loss),
            },
            crate::report::plots::Panel {
                name: "accuracy",
                train: per_epoch(|e| e.train_acc),
                val: per_epoch(|e| e.val_acc),
            },
        ],
        &format!("{}: training curves", cfg.name),
        &paths.dir.join("curves.png"),
    )?;
    crate::report::plots::confusion(
        &m.test,
        &format!("{}: test confusion matrix", cfg.name),
        &paths.dir.join("confusion_test.png"),
    )?;
    Ok(m)
}

/// Tract's logits for the exported model against burn's on the same images.
pub fn parity(
    onnx_bytes: &[u8],
    model: &Cnn,
    cfg: &TrainConfig,
    cache: &ImageCache,
    set: &[Entry],
) -> Result<f32> {
    let runtime = Model::from_bytes(onnx_bytes, "export check".into(), BackendKind::Tract, 1)?;
    let present: Vec<&[u8]> = set.iter().filter_map(|e| cache.get(e.0)).collect();
    let input = runtime.batch_input(&present);
    debug_assert_eq!(input.len(), present.len() * IMAGE_LEN);
    let tract_outputs = runtime.outputs(&input, present.len())?;
    // burn's class logits and extra heads from one pass over the same images (one batch: the
    // export check uses a few dozen).
    let (x, _, _) = crate::fit::batch_tensors(cache, set, &cfg.normalization, &Device::flex());
    let (logits, aux) = model.forward_all(x);
    let burn_outputs = std::iter::once(logits)
        .chain(aux)
        .map(|t| {
            t.into_data()
                .convert::<f32>()
                .try_to_vec::<f32>()
                .map_err(|e| anyhow::anyhow!("reading burn outputs: {e:?}"))
        })
        .collect::<Result<Vec<Vec<f32>>>>()?;
    if burn_outputs.len() != tract_outputs.len() {
        bail!(
            "burn gave {} outputs, tract {}",
            burn_outputs.len(),
            tract_outputs.len()
        );
    }
    let mut diff = 0f32;
    for (b, t) in burn_outputs.iter().zip(&tract_outputs) {
        if b.len() != t.len() {
            bail!("burn gave {} values, tract {}", b.len(), t.len());
        }
        diff = b
            .iter()
            .zip(t)
            .map(|(a, b)| (a - b).abs())
            .fold(diff, f32::max);
    }
    Ok(diff)
}

/// Largest tract-vs-burn logit difference accepted for an export.
pub const PARITY_TOLERANCE: f32 = 1e-4;

/// Exports the best checkpoint to `out` (ONNX) and returns the parity check.
pub fn export(
    paths: &RunPaths,
    version: &str,
    split: &Split,
    cache: &ImageCache,
    out: &Path,
) -> Result<ExportCheck> {
    let (cfg, _) = paths.read()?;
    let model = best_model(paths, &cfg, &Device::flex())?;
    let info = ModelInfo {
        labels: cfg.labels.clone(),
        label_column: cfg.label_column.clone(),
        name: cfg.name.clone(),
        version: version.to_string(),
        normalization: cfg.normalization,
        quantization: None,
        heads: cfg
            .recipe
            .heads
            .iter()
            .map(|h| tagger_core::metadata::HeadInfo {
                name: h.name.clone(),
                labels: h.labels.clone(),
            })
            .collect(),
    };
    let names: Vec<String> = cfg.recipe.heads.iter().map(|h| h.name.clone()).collect();
    let bytes = onnx::encode(&float_model(&fold(&model, &cfg.arch, &names), &info));
    let check_set: Vec<Entry> = split.test.iter().take(64).copied().collect();
    let diff = parity(&bytes, &model, &cfg, cache, &check_set)?;
    if diff > PARITY_TOLERANCE {
        bail!("exported model differs from burn by {diff} (> {PARITY_TOLERANCE}); not written");
    }
    write_atomic(out, &bytes)?;
    Ok(ExportCheck {
        images: check_set.len(),
        max_abs_logit_diff_tract_vs_burn: diff,
    })
}

/// Which machine trained the model (CPU model and cores).
pub fn machine() -> String {
    tagger_core::machine::describe()
}

#[allow(clippy::too_many_arguments)]
/// The part of the model card that `export` writes.
pub fn model_card(
    paths: &RunPaths,
    version: &str,
    split: &Split,
    split_file: &Path,
    onnx_path: &Path,
    metrics: SplitMetrics,
    check: ExportCheck,
    reproduce: Vec<String>,
) -> Result<ExportedModel> {
    let (cfg, state) = paths.read()?;
    let bytes = std::fs::read(onnx_path)?;
    let mut ips: Vec<f64> = state.history.iter().map(|h| h.images_per_s).collect();
    ips.sort_by(f64::total_cmp);
    Ok(ExportedModel {
        name: cfg.name.clone(),
        version: version.into(),
        onnx: onnx_path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default(),
        onnx_bytes: bytes.len(),
        onnx_sha256: sha256_hex(&bytes),
        label_column: cfg.label_column.clone(),
        labels: cfg.labels.clone(),
        params: cfg.arch.params_folded(),
        flops_per_image: cfg.arch.flops(),
        receptive_field_px: cfg.arch.receptive_field(),
        arch: crate::report::card::Network::Cnn(cfg.arch.clone()),
        training: TrainingSummary {
            epochs: state.epochs_done,
            best_epoch: state.best_epoch,
            recipe: cfg.recipe.clone(),
            train_seconds: state.train_seconds,
            images_per_s: ips.get(ips.len() / 2).copied().unwrap_or(0.0),
            skipped_corrupt_images: state.skipped_corrupt,
            machine: machine(),
        },
        split: SplitSummary::of(split, split_file)?,
        metrics,
        export_check: check,
        reproduce,
    })
}
