//! `training finetune`: see [`Args`] for what it does and its options.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::time::Instant;
use tagger_core::backend::BackendKind;
use tagger_core::model::Model;
use training::backbone::graph;
use training::backbone::reload;
use training::backbone::trainable::LiteNet;
use training::backbone::weights::{self, StateDict};
use training::data::negatives::Negatives;
use training::data::split::{Entry, Split};
use training::data::station_photos::{LabelledPhoto, StationPhotos};
use training::error::{data, usage};
use training::eval::real::{self, RealScores};
use training::fit::finetune::*;
use training::fit::lite::Validation;
use training::fit::lite::{accuracy, fit, logits, station_pool, LiteConfig, LiteData, RealRows};
use training::fit::probe::{present, View};
use training::fit::{Recipe, RunPaths, StationTraining};

/// Adapt an exported EfficientNet-Lite0 classifier (`training lite`'s family, e.g. the built-in
/// model) to a station's labelled photos: a collection labelled in `tag review`, or a folder laid
/// out like real-photos-dev. The photos are mixed with the usual training data; the latest 20%
/// (by time) validate. Writes the model and `<out>.finetune.json` (before/after on the photos'
/// validation part, catalogue test and rendered station frames), unless catalogue test falls by
/// more than `--max-catalogue-drop`. Checkpoints every epoch (`--resume`).
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub input: super::DataArgs,
    #[arg(long, default_value = "models/negatives.json")]
    pub negatives: PathBuf,
    /// The model to start from (an ONNX file written by `training lite` or `finetune`).
    #[arg(long)]
    pub from: PathBuf,
    /// The labelled photos: a collection (`tag watch --collect`) or a real-photo folder.
    #[arg(long)]
    pub photos: PathBuf,
    /// With a real-photo folder: train on this sender split's train part, validate on its val part
    /// (instead of the latest photos).
    #[arg(long)]
    pub real_split: Option<PathBuf>,
    /// Share of the photos (the latest) that validate.
    #[arg(long, default_value_t = 0.2)]
    pub val_share: f64,
    /// Share of every epoch drawn from the station's photos (the rest: the usual training data).
    #[arg(long, default_value_t = 0.3)]
    pub photo_share: f64,
    #[arg(long, default_value_t = 3)]
    pub epochs: usize,
    #[arg(long, default_value_t = 960)]
    pub epoch_size: usize,
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 1e-4)]
    pub lr: f64,
    #[arg(long, default_value_t = 1e-2)]
    pub weight_decay: f64,
    #[arg(long, default_value_t = 0.1)]
    pub label_smoothing: f64,
    #[arg(long, default_value_t = 0.2)]
    pub dropout: f64,
    /// Leading blocks (of 16) left as they are.
    #[arg(long, default_value_t = 3)]
    pub freeze_blocks: usize,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Catalogue val photos per look (catalogue, mild, hard) scored after each epoch.
    #[arg(long, default_value_t = 300)]
    pub val_photos: usize,
    /// Catalogue test photos (evenly spaced; 0: all) for the before/after check.
    #[arg(long, default_value_t = 2000)]
    pub check_photos: usize,
    /// Empty frames in the before/after check.
    #[arg(long, default_value_t = 300)]
    pub empties: usize,
    /// Largest loss on catalogue test photos (percentage points) a written model may have.
    #[arg(long, default_value_t = 1.0)]
    pub max_catalogue_drop: f64,
    /// Write the model even when it lost more than that.
    #[arg(long)]
    pub allow_worse: bool,
    /// Run directory (checkpoints); default runs/finetune/<out's stem>.
    #[arg(long)]
    pub run: Option<PathBuf>,
    #[arg(long)]
    pub resume: bool,
    /// The new model's name (default: the source's name with `-ft`).
    #[arg(long)]
    pub name: Option<String>,
    #[arg(long)]
    pub out: PathBuf,
}

/// Evenly spaced entries, at most `want` (all when `want` is 0).
fn spaced<T: Copy>(all: &[T], want: usize) -> Vec<T> {
    let step = all
        .len()
        .checked_div(want)
        .map_or(1, |_| all.len().div_ceil(want).max(1));
    all.iter().step_by(step).copied().collect()
}

/// The photos to train and validate on, and how validation was chosen.
fn photos(
    args: &Args,
    labels: &[String],
) -> Result<(
    StationPhotos,
    Vec<LabelledPhoto>,
    Vec<LabelledPhoto>,
    String,
)> {
    let all = StationPhotos::load(&args.photos, labels).map_err(data)?;
    match &args.real_split {
        Some(split) => {
            let part = |p| StationPhotos::real_part(&args.photos, split, p, labels).map_err(data);
            let rule = format!("the val part of {}", split.display());
            Ok((all, part("train")?.photos, part("val")?.photos, rule))
        }
        None => {
            let (train, val) = all.split_by_time(args.val_share);
            let rule = format!("the latest {:.0}% by time", args.val_share * 100.0);
            Ok((all, train, val, rule))
        }
    }
}

pub fn run(args: Args) -> Result<()> {
    let started = Instant::now();
    if args.epochs == 0 || args.epoch_size == 0 || args.batch_size == 0 || args.val_photos == 0 {
        return Err(usage(anyhow::anyhow!(
            "--epochs, --epoch-size, --batch-size and --val-photos must each be at least 1"
        )));
    }
    if !(0.0..1.0).contains(&args.val_share) || !(0.0..1.0).contains(&args.photo_share) {
        return Err(usage(anyhow::anyhow!(
            "--val-share and --photo-share must be at least 0 and below 1"
        )));
    }
    let from_bytes = std::fs::read(&args.from)
        .with_context(|| format!("cannot read the model {}", args.from.display()))
        .map_err(data)?;
    let base = training::backbone::efficientnet::Lite::from_state_dict(&StateDict::load(
        &weights::default_path(),
    )?)?;
    let source = reload::classifier(&from_bytes, &base)
        .with_context(|| format!("{} cannot be fine-tuned", args.from.display()))
        .map_err(data)?;
    let labels = source.info.labels.clone();
    let split = Split::load(&args.input.split)?;
    // Class indices into the model's outputs (a split written elsewhere may order them otherwise).
    let split = match labels.last().map(String::as_str) {
        Some("none") => split.relabelled(&labels[..labels.len() - 1]),
        _ => Err(anyhow::anyhow!("the model has no `none` class")),
    }
    .with_context(|| {
        format!(
            "{} and {} do not fit together",
            args.from.display(),
            args.input.split.display()
        )
    })
    .map_err(data)?;
    let neg = Negatives::load(&args.negatives, &args.input.split)?;
    let cache =
        super::open_cache_with(&args.input.data, &args.input.cache_dir, &split, Some(&neg))?;
    let (all, train, val, val_rule) = photos(&args, &labels)?;
    let (train, train_x, bad_t) = inputs(&train);
    let (val, val_x, bad_v) = inputs(&val);
    let mut left_out = all.left_out.clone();
    left_out.extend(
        bad_t
            .into_iter()
            .chain(bad_v)
            .map(|b| (b, "unreadable".into())),
    );
    if train.is_empty() || val.is_empty() {
        return Err(data(anyhow::anyhow!(
            "{}: {} photos to train on and {} to validate on; at least one of each is needed",
            args.photos.display(),
            train.len(),
            val.len()
        )));
    }
    let pool = station_pool(&split, &neg, &cache);
    let repeat = repeat_for_share(args.photo_share, pool.samples.len(), train.len());
    eprintln!(
        "fine-tuning {} ({}) on {} photos of {} ({} validate: {val_rule}; {} left out), each {repeat}x \
         in a pool of {} station samples",
        source.info.name,
        args.from.display(),
        train.len(),
        args.photos.display(),
        val.len(),
        left_out.len(),
        pool.samples.len()
    );
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| format!("{}-ft", source.info.name));
    let mut recipe = Recipe::plain(args.batch_size, args.lr, args.weight_decay, args.seed);
    recipe.station = Some(StationTraining::new(Some(
        args.negatives.display().to_string(),
    )));
    recipe.label_smoothing = args.label_smoothing;
    let cfg = LiteConfig {
        name: name.clone(),
        resize: source.resize,
        freeze_blocks: args.freeze_blocks,
        epochs: args.epochs,
        epoch_size: args.epoch_size,
        dropout: args.dropout,
        recipe,
        real_train_repeat: repeat,
        teacher: None,
        normalization: source.info.normalization,
        labels: labels.clone(),
    };
    let (val_ids, val_y) = present(split.part("val"), &cache);
    let (vids, vy): (Vec<u64>, Vec<usize>) =
        spaced(&(0..val_ids.len()).collect::<Vec<_>>(), args.val_photos)
            .iter()
            .map(|&i| (val_ids[i], val_y[i]))
            .unzip();
    let views: Vec<Vec<Vec<u8>>> = [View::Catalogue, View::Mild, View::Hard]
        .iter()
        .map(|v| v.inputs("val", &vids, &cache))
        .collect();
    let device = burn::prelude::Device::flex();
    let (k, norm) = (labels.len(), cfg.normalization);
    let validate = |net: &LiteNet| -> Result<Validation> {
        let acc = |v: &[Vec<u8>]| accuracy(&logits(net, v, &norm, &device), &vy, k);
        let photos = PhotoScores::of(&val, &logits(net, &val_x, &norm, &device), &labels);
        Ok(Validation {
            catalogue: acc(&views[0]),
            mild: acc(&views[1]),
            hard: acc(&views[2]),
            real: real::score("val", &[], &[], &labels),
            photos: Some(photos.accuracy),
        })
    };
    let targets = train.iter().map(|p| p.target).collect();
    let lite_data = LiteData {
        cache: &cache,
        samples: pool.samples,
        real: RealRows {
            inputs: train_x,
            targets,
        },
        teacher: None,
        head: Some(source.head.clone()),
    };
    let run_dir = args.run.clone().unwrap_or_else(|| {
        let stem = args.out.file_stem().unwrap_or_default().to_string_lossy();
        Path::new("runs/finetune").join(stem.as_ref())
    });
    let paths = RunPaths::new(&run_dir);
    let (net, state) = fit(
        &cfg,
        &source.lite,
        &paths,
        &lite_data,
        args.resume,
        validate,
    )?;

    let (hw, hb) = net.head();
    let bytes = graph::classifier_bytes(
        &net.to_lite(&source.lite),
        source.resize,
        (&hw, &hb),
        &name,
        &labels,
        &split.label_column,
    );
    let probe = &views[0][..8.min(views[0].len())];
    graph::check_export(&bytes, probe, &logits(&net, probe, &norm, &device))?;

    let test: Vec<Entry> = spaced(split.part("test"), args.check_photos);
    let others = spaced(&neg.ids("test"), args.check_photos / 4);
    let real_val = real_val_photos(&args)?;
    let check = |what: &str, bytes: &[u8]| -> Result<Check> {
        let m = Model::from_bytes(bytes, what.into(), BackendKind::Tract, 1)?;
        let t = Instant::now();
        let c = Check {
            photos_val: PhotoScores::score(&m, &val, &val_x)?,
            station_test: training::eval::runner::score(
                &m,
                "test",
                &test,
                &others,
                args.empties,
                &cache,
            )?,
            real_val: real_val
                .as_ref()
                .map(|(photos, inputs)| -> Result<RealScores> {
                    let list: Vec<_> = photos.iter().collect();
                    let answers = real::answers(&m, inputs)?;
                    Ok(real::score("val", &list, &answers, &m.info.labels))
                })
                .transpose()?,
        };
        eprintln!("checked {what} ({:.0}s)", t.elapsed().as_secs_f64());
        Ok(c)
    };
    let before = check("the model before", &from_bytes)?;
    let after = check("the fine-tuned model", &bytes)?;
    eprintln!("{}", table(&before, &after));
    let refused = refusal(&before, &after, args.max_catalogue_drop);
    if let (Some(why), false) = (&refused, args.allow_worse) {
        anyhow::bail!("{why}");
    }
    training::util::write_atomic(&args.out, &bytes)?;
    let card = FinetuneCard {
        name,
        onnx: args.out.display().to_string(),
        onnx_sha256: training::util::sha256_hex(&bytes),
        from: Source {
            path: args.from.display().to_string(),
            name: source.info.name.clone(),
            sha256: training::util::sha256_hex(&from_bytes),
            temperature: source.temperature,
        },
        photos: PhotoSet {
            dir: args.photos.display().to_string(),
            layout: all.layout,
            train: train.len(),
            val: val.len(),
            val_rule,
            left_out,
            repeat,
        },
        config: cfg,
        state,
        check_photos: test.len(),
        before,
        after,
        max_catalogue_drop_pp: args.max_catalogue_drop,
        allowed_worse: refused.is_some(),
        int8: format!(
            "not written here: `training quantize --model {}` writes its QDQ form",
            args.out.display()
        ),
        seconds: started.elapsed().as_secs_f64(),
        machine: training::eval::evaluate::machine(),
        reproduce: training::util::reproduce(),
    };
    let card_path = args.out.with_extension("finetune.json");
    training::util::write_json(&card_path, &card)?;
    eprintln!(
        "wrote {} and {} in {:.0}s; not calibrated: run `training calibrate --model {}` next",
        args.out.display(),
        card_path.display(),
        card.seconds,
        args.out.display()
    );
    Ok(())
}

/// Real-val photos (the real-photo folder's val part) when fine-tuning on its train part.
#[allow(clippy::type_complexity)]
fn real_val_photos(
    args: &Args,
) -> Result<
    Option<(
        Vec<training::data::real_photos::Photo>,
        Vec<Option<Vec<u8>>>,
    )>,
> {
    let Some(split) = &args.real_split else {
        return Ok(None);
    };
    let photos = training::data::real_photos::RealPhotos::load(&args.photos)?;
    let s = training::data::real_photos::RealSplit::load(split, &photos)?;
    let val: Vec<_> = s.part(&photos, "val")?.into_iter().cloned().collect();
    let refs: Vec<_> = val.iter().collect();
    let inputs = real::inputs(&photos, &refs);
    Ok(Some((val, inputs)))
}
