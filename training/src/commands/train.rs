//! `training train`: see [`Args`] for what it does and its options.

use super::open_cache_with;
use anyhow::{Context, Result};
use std::path::PathBuf;
use tagger_core::preprocess::Normalization;
use training::data::negatives::Negatives;
use training::data::split::Split;
use training::fit::augment::Augment;
use training::fit::{Recipe, RunPaths, TrainConfig, TrainData};
use training::model::{Arch, Layer};

/// Train one model on a split; checkpoints every epoch, `--resume` continues a killed run.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub input: super::DataArgs,
    /// Model name: baseline, tuned, augmented or any other.
    #[arg(long, default_value = "baseline")]
    pub name: String,
    /// Run directory (checkpoints, logs); default runs/<name>.
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[arg(long, default_value_t = 15)]
    pub epochs: usize,
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 2e-3)]
    pub lr: f64,
    #[arg(long, default_value_t = 1e-4)]
    pub weight_decay: f64,
    /// Stage widths, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "16,32,64,128")]
    pub channels: Vec<usize>,
    #[arg(long, default_value_t = 1)]
    pub convs_per_stage: usize,
    /// Explicit conv layers instead of stages, e.g. `32:4/4v,64v,96/2v,128v`
    /// (`C[:K][/S][v]`: channels, kernel, stride, no padding; see model.rs).
    #[arg(long, value_delimiter = ',')]
    pub layers: Vec<Layer>,
    #[arg(long, default_value_t = 0.2)]
    pub dropout: f64,
    /// Train with on-the-fly augmentation (default settings, see augment.rs).
    #[arg(long)]
    pub augment: bool,
    /// Train for stations: products composited onto belts and trays every epoch (mirrored,
    /// moved, turned, relit, blurred, noisy, JPEG), a `none` output trained on empty
    /// surfaces, and --negatives trained to stay unsure (station.rs, train.rs).
    #[arg(long, conflicts_with = "augment")]
    pub station: bool,
    /// Other kinds to train as negatives (written by `training negatives`); station runs.
    #[arg(long, requires = "station")]
    pub negatives: Option<PathBuf>,
    /// Vary how products are cut out (standard, loose with halos, tight) in station runs.
    #[arg(long, requires = "station")]
    pub cut_jitter: bool,
    /// Share of product samples kept in the catalogue look in station runs.
    #[arg(long, default_value_t = 0.25, requires = "station")]
    pub catalogue_share: f32,
    /// Label smoothing (share of each target spread over all outputs).
    #[arg(long, default_value_t = 0.0)]
    pub label_smoothing: f64,
    /// Linear learning-rate warm-up, in epochs.
    #[arg(long, default_value_t = 0)]
    pub warmup_epochs: usize,
    /// Validate, select and export a moving average of the weights with this decay per
    /// step (e.g. 0.999; ema.rs) instead of the last weights.
    #[arg(long, value_parser = parse_ema)]
    pub ema: Option<f64>,
    /// Distil from these exported models (repeat or comma separate): product targets are
    /// partly their averaged, softened output on the clean photo (distill.rs).
    #[arg(long, value_delimiter = ',')]
    pub teacher: Vec<PathBuf>,
    /// Share of each product target taken from the teachers.
    #[arg(long, default_value_t = 0.5)]
    pub distill_weight: f32,
    /// Temperature of the teachers' softmax.
    #[arg(long, default_value_t = 2.0)]
    pub distill_temperature: f32,
    /// Extra heads trained beside the class (heads.rs): articleType, colour, gender, usage.
    /// Exported as one ONNX output each.
    #[arg(long, value_delimiter = ',')]
    pub heads: Vec<String>,
    /// Loss weight of each extra head (the class has 1).
    #[arg(long, default_value_t = 0.5)]
    pub head_weight: f32,
    /// Values with fewer training photos are folded into `other` (articleType) or masked.
    #[arg(long, default_value_t = 200)]
    pub head_min_images: usize,
    /// Start from the best checkpoint of this run directory instead of random weights
    /// (fine-tuning; same --layers, outputs matched by label, e.g. a catalogue run for a
    /// --station run). Its training time counts in this run's.
    #[arg(long)]
    pub init_from: Option<PathBuf>,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[arg(long)]
    pub resume: bool,
    /// Stop after this many epochs in this call (resume later with --resume).
    #[arg(long)]
    pub stop_after: Option<usize>,
}

pub fn run(args: Args) -> Result<()> {
    let Args {
        input,
        name,
        out,
        epochs,
        batch_size,
        lr,
        weight_decay,
        channels,
        convs_per_stage,
        layers,
        dropout,
        augment,
        station,
        negatives,
        cut_jitter,
        catalogue_share,
        label_smoothing,
        warmup_epochs,
        ema,
        teacher,
        distill_weight,
        distill_temperature,
        heads,
        head_weight,
        head_min_images,
        init_from,
        seed,
        resume,
        stop_after,
    } = args;
    let super::DataArgs {
        data,
        split,
        cache_dir,
    } = input;
    let split_file = split;
    let split = Split::load(&split_file)?;
    let negatives = negatives
        .map(|p| Negatives::load(&p, &split_file).map(|n| (p, n)))
        .transpose()?;
    let attributes = if heads.is_empty() {
        None
    } else {
        Some(training::data::heads::Attributes::load(&data).map_err(training::error::data)?)
    };
    let train_ids: Vec<u64> = split.train.iter().map(|e| e.0).collect();
    let heads: Vec<training::data::heads::Head> = match &attributes {
        Some(a) => heads
            .iter()
            .map(|k| a.head(k, &train_ids, head_min_images, head_weight))
            .collect::<Result<_>>()
            .map_err(training::error::usage)?,
        None => vec![],
    };
    let mut labels = split.labels.clone();
    if station {
        labels.push(tagger_core::classify::NONE.to_string());
    }
    let cfg = TrainConfig {
        name: name.clone(),
        arch: if layers.is_empty() {
            Arch {
                channels,
                convs_per_stage,
                layers,
                dropout,
                classes: labels.len(),
                heads: heads.iter().map(|h| h.labels.len()).collect(),
            }
        } else {
            Arch {
                heads: heads.iter().map(|h| h.labels.len()).collect(),
                ..Arch::from_layers(layers, dropout, labels.len())
            }
        },
        epochs,
        recipe: Recipe {
            batch_size,
            lr,
            weight_decay,
            seed,
            augment: augment.then(Augment::default),
            station: station.then(|| training::fit::StationTraining {
                cut_jitter,
                catalogue_share,
                ..training::fit::StationTraining::new(
                    negatives.as_ref().map(|(p, _)| p.display().to_string()),
                )
            }),
            label_smoothing,
            warmup_epochs,
            ema,
            distill: (!teacher.is_empty()).then(|| training::fit::distill::Distill {
                teachers: teacher.iter().map(|p| p.display().to_string()).collect(),
                weight: distill_weight,
                temperature: distill_temperature,
            }),
            heads,
            init_from: init_from.map(|p| p.display().to_string()),
        },
        normalization: Normalization::default(),
        label_column: split.label_column.clone(),
        labels,
    };
    for h in &cfg.recipe.heads {
        eprintln!(
            "head {}: {} labels ({})",
            h.name,
            h.labels.len(),
            h.labels.join(", ")
        );
    }
    cfg.arch
        .validate()
        .map_err(|e| anyhow::anyhow!("--channels/--layers: {e}"))?;
    // Only after the cheap checks: opening the cache may decode every image.
    let cache = open_cache_with(
        &data,
        &cache_dir,
        &split,
        negatives.as_ref().map(|(_, n)| n),
    )?;
    let negative_ids = negatives
        .as_ref()
        .map(|(_, n)| n.ids("train"))
        .unwrap_or_default();
    let head_targets = match &attributes {
        Some(a) => {
            let ids: Vec<u64> = split.train.iter().chain(&split.val).map(|e| e.0).collect();
            a.targets(&cfg.recipe.heads, &ids)
        }
        None => Default::default(),
    };
    let out = out.unwrap_or_else(|| PathBuf::from("runs").join(&name));
    eprintln!(
        "training {name}: {} params (folded), {:.1} MFLOP/image, receptive field {} px",
        cfg.arch.params_folded(),
        cfg.arch.flops() as f64 / 1e6,
        cfg.arch.receptive_field()
    );
    let data = TrainData {
        cache: &cache,
        train: &split.train,
        val: &split.val,
        negatives: &negative_ids,
        heads: &head_targets,
    };
    let state = training::fit::train::train(&cfg, &RunPaths::new(&out), data, resume, stop_after)
        .with_context(|| format!("training {name}"))?;
    let last = state.history.last();
    eprintln!(
        "done: {} epochs in {:.0}s, best val acc {:.4} at epoch {}, last {:.0} img/s; \
         checkpoints in {}",
        state.epochs_done,
        state.train_seconds,
        state.best_val_acc,
        state.best_epoch,
        last.map(|l| l.images_per_s).unwrap_or(0.0),
        out.display()
    );
    Ok(())
}

/// `--ema`: a decay in (0, 1).
fn parse_ema(s: &str) -> std::result::Result<f64, String> {
    match s.parse::<f64>() {
        Ok(d) if d > 0.0 && d < 1.0 => Ok(d),
        _ => Err(format!(
            "`{s}` is not a decay between 0 and 1 (exclusive), e.g. 0.999"
        )),
    }
}
