//! `training calibrate`: see [`Args`] for what it does and its options.

use super::{open_cache, open_cache_with};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use training::data::negatives::Negatives;
use training::data::split::Split;

/// Fit a temperature on val station frames (lowest NLL) and fold it into a float model's head
/// (temperature.rs); the card gets a `temperature` section. Run after `export`, before
/// `quantize` and `station`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub input: super::DataArgs,
    /// Float ONNX model, rewritten in place.
    #[arg(long)]
    pub model: PathBuf,
    /// Empty val frames among the fitting frames (station models).
    #[arg(long, default_value_t = 1000)]
    pub empties: usize,
    /// Val photos of other kinds (from --negatives) among the fitting frames, in the same looks,
    /// with a flat target over the products: keeps them below the station threshold (0: none).
    #[arg(long, default_value_t = 0)]
    pub others: usize,
    #[arg(long, default_value = "models/negatives.json")]
    pub negatives: PathBuf,
}

pub fn run(args: Args) -> Result<()> {
    let Args {
        input,
        model,
        empties,
        others,
        negatives,
    } = args;
    let super::DataArgs {
        data,
        split,
        cache_dir,
    } = input;
    let fitting = Fitting {
        empties,
        others,
        negatives,
    };
    calibrate_cmd(&data, &split, &model, &fitting, &cache_dir)
}

/// What the temperature is fitted on besides the val products.
struct Fitting {
    empties: usize,
    others: usize,
    negatives: PathBuf,
}

/// `training calibrate`: temperature scaling of a float model, written in place with its card.
fn calibrate_cmd(
    data: &Path,
    split_file: &Path,
    model: &Path,
    fitting: &Fitting,
    cache_dir: &Path,
) -> Result<()> {
    use tagger_core::backend::BackendKind;
    use training::onnx::temperature as temp;
    let split = Split::load(split_file)?;
    let bytes = std::fs::read(model).with_context(|| format!("reading {}", model.display()))?;
    if let Some(t) = temp::folded(&bytes) {
        anyhow::bail!(
            "{} is calibrated already (temperature {t}); re-export it to calibrate again",
            model.display()
        );
    }
    let m = tagger_core::model::Model::from_bytes(
        &bytes,
        model.display().to_string(),
        BackendKind::Tract,
        1,
    )?;
    let station = m.info.labels.last().map(String::as_str) == Some(tagger_core::classify::NONE);
    let Fitting {
        empties, others, ..
    } = *fitting;
    let empties = if station { empties } else { 0 };
    let (cache, other_ids) = if others > 0 {
        let neg = Negatives::load(&fitting.negatives, split_file)?;
        let cache = open_cache_with(data, cache_dir, &split, Some(&neg))?;
        let mut ids = neg.ids("val");
        ids.truncate(others);
        (cache, ids)
    } else {
        (open_cache(data, cache_dir, &split)?, vec![])
    };
    let started = std::time::Instant::now();
    let products = if station {
        m.classes() - 1
    } else {
        m.classes()
    };
    let (frames, truth) = temp::fitting_frames(&split.val, &other_ids, empties, products, &cache);
    let logits = temp::logits(&m, &frames)?;
    let k = m.classes();
    let t = temp::fit(&logits, k, &truth);
    let scaling = temp::TemperatureScaling {
        temperature: (t as f64 * 100.0).round() / 100.0,
        fitted_on: format!(
            "val: catalogue photos and their mild, hard and tray station frames{}{}",
            if other_ids.is_empty() {
                String::new()
            } else {
                format!(
                    ", {} photos of other kinds in the same looks (flat over the products)",
                    other_ids.len()
                )
            },
            if station {
                format!(", {empties} empty frames (none)")
            } else {
                String::new()
            }
        ),
        frames: frames.len(),
        nll_before: temp::nll(&logits, k, &truth, 1.0),
        nll_after: temp::nll(&logits, k, &truth, t),
        ece_before: temp::ece(&logits, k, &truth, 1.0),
        ece_after: temp::ece(&logits, k, &truth, t),
    };
    eprintln!(
        "temperature {t:.2} on {} val frames: NLL {:.4} -> {:.4}, ECE {:.4} -> {:.4} ({:.0}s)",
        scaling.frames,
        scaling.nll_before,
        scaling.nll_after,
        scaling.ece_before,
        scaling.ece_after,
        started.elapsed().as_secs_f64()
    );
    let calibrated = temp::apply(&bytes, t)?;
    // The calibrated model must load and keep every prediction.
    let check = tagger_core::model::Model::from_bytes(
        &calibrated,
        "calibrated".into(),
        BackendKind::Tract,
        1,
    )?;
    let after = temp::logits(&check, &frames[..frames.len().min(512)])?;
    let argmax = |r: &[f32]| tagger_core::classify::argmax(r);
    if logits
        .chunks(k)
        .zip(after.chunks(k))
        .any(|(a, b)| argmax(a) != argmax(b))
    {
        anyhow::bail!("calibration changed a prediction; not written");
    }
    training::util::write_atomic(model, &calibrated)?;
    let section = training::report::card::TemperatureSection {
        scaling,
        reproduce: format!(
            "cargo run --release -p training -- calibrate --data ../shared/data/fashion-product-images-small --split {} --model {} --empties {empties}{}",
            split_file.display(),
            model.display(),
            if others > 0 {
                format!(
                    " --others {others} --negatives {}",
                    fitting.negatives.display()
                )
            } else {
                String::new()
            }
        ),
    };
    // The card gets the section and describes the file that ships.
    let updated = training::report::card::update(model, |c| {
        c.temperature = Some(section);
        c.model.onnx_bytes = calibrated.len();
        c.model.onnx_sha256 = training::util::sha256_hex(&calibrated);
    })?;
    if let Some(card) = updated {
        eprintln!("{} calibrated; card {}", model.display(), card.display());
    }
    Ok(())
}
