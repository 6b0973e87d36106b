//! `training`: the command line of the training crate.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use tagger::preprocess::Normalization;
use training::augment::Augment;
use training::cache::ImageCache;
use training::model::{Arch, Layer};
use training::negatives::Negatives;
use training::quantize::{Calibration, Int8Form};
use training::split::{Split, SplitOptions};
use training::train::{RunPaths, TrainConfig};

#[derive(Parser)]
#[command(
    version,
    about = "Train, evaluate, export and quantize the fashion tagger CNNs"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Load the data, keep frequent classes and write a deterministic train/val/test split.
    Split {
        /// Dataset directory: styles.csv + images/{id}.jpg (or train.csv + test.csv + images/).
        #[arg(long)]
        data: PathBuf,
        /// Column to classify by: subCategory, masterCategory or articleType.
        #[arg(long, default_value = "subCategory")]
        label_column: String,
        /// Keep classes with at least this many images (700 keeps the 13 largest subCategories
        /// in both the Kaggle set and this project's copy; see training/README.md).
        #[arg(long, default_value_t = 700)]
        min_images: usize,
        #[arg(long, default_value_t = 2024)]
        seed: u64,
        #[arg(long, default_value = "models/split.json")]
        out: PathBuf,
    },
    /// Train one model on a split; checkpoints every epoch, `--resume` continues a killed run.
    Train {
        #[arg(long)]
        data: PathBuf,
        #[arg(long, default_value = "models/split.json")]
        split: PathBuf,
        /// Model name: baseline, tuned, augmented or any other.
        #[arg(long, default_value = "baseline")]
        name: String,
        /// Run directory (checkpoints, logs); default runs/<name>.
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long, default_value_t = 15)]
        epochs: usize,
        #[arg(long, default_value_t = 64)]
        batch_size: usize,
        #[arg(long, default_value_t = 2e-3)]
        lr: f64,
        #[arg(long, default_value_t = 1e-4)]
        weight_decay: f64,
        /// Stage widths, comma separated.
        #[arg(long, value_delimiter = ',', default_value = "16,32,64,128")]
        channels: Vec<usize>,
        #[arg(long, default_value_t = 1)]
        convs_per_stage: usize,
        /// Explicit conv layers instead of stages, e.g. `32:4/4v,64v,96/2v,128v`
        /// (`C[:K][/S][v]`: channels, kernel, stride, no padding; see model.rs).
        #[arg(long, value_delimiter = ',')]
        layers: Vec<Layer>,
        #[arg(long, default_value_t = 0.2)]
        dropout: f64,
        /// Train with on-the-fly augmentation (default settings, see augment.rs).
        #[arg(long)]
        augment: bool,
        /// Train for stations: products composited onto belts and trays every epoch (mirrored,
        /// moved, turned, relit, blurred, noisy, JPEG), a `none` output trained on empty
        /// surfaces, and --negatives trained to stay unsure (station.rs, train.rs).
        #[arg(long, conflicts_with = "augment")]
        station: bool,
        /// Other kinds to train as negatives (written by `training negatives`); station runs.
        #[arg(long, requires = "station")]
        negatives: Option<PathBuf>,
        /// Vary how products are cut out (standard, loose with halos, tight) in station runs.
        #[arg(long, requires = "station")]
        cut_jitter: bool,
        /// Share of product samples kept in the catalogue look in station runs.
        #[arg(long, default_value_t = 0.25, requires = "station")]
        catalogue_share: f32,
        /// Label smoothing (share of each target spread over all outputs).
        #[arg(long, default_value_t = 0.0)]
        label_smoothing: f64,
        /// Linear learning-rate warm-up, in epochs.
        #[arg(long, default_value_t = 0)]
        warmup_epochs: usize,
        /// Validate, select and export a moving average of the weights with this decay per
        /// step (e.g. 0.999; ema.rs) instead of the last weights.
        #[arg(long, value_parser = parse_ema)]
        ema: Option<f64>,
        /// Distil from these exported models (repeat or comma separate): product targets are
        /// partly their averaged, softened output on the clean photo (distill.rs).
        #[arg(long, value_delimiter = ',')]
        teacher: Vec<PathBuf>,
        /// Share of each product target taken from the teachers.
        #[arg(long, default_value_t = 0.5)]
        distill_weight: f32,
        /// Temperature of the teachers' softmax.
        #[arg(long, default_value_t = 2.0)]
        distill_temperature: f32,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long)]
        resume: bool,
        /// Stop after this many epochs in this call (resume later with --resume).
        #[arg(long)]
        stop_after: Option<usize>,
        /// Where decoded images are cached.
        #[arg(long, default_value = "runs/cache")]
        cache_dir: PathBuf,
    },
    /// Score a run's best checkpoint on train/val/test: metrics.json, curves and confusion PNGs.
    Evaluate {
        #[arg(long)]
        data: PathBuf,
        #[arg(long, default_value = "models/split.json")]
        split: PathBuf,
        /// Run directory written by `train`.
        #[arg(long)]
        run: PathBuf,
        #[arg(long, default_value = "runs/cache")]
        cache_dir: PathBuf,
    },
    /// Export a run's best checkpoint to ONNX (BN folded, metadata, checked against tract) and
    /// write its model card `<out>.json`; plots are copied to docs/img.
    Export {
        #[arg(long)]
        data: PathBuf,
        #[arg(long, default_value = "models/split.json")]
        split: PathBuf,
        #[arg(long)]
        run: PathBuf,
        /// ONNX file to write, e.g. models/baseline.onnx.
        #[arg(long)]
        out: PathBuf,
        /// Version stored in the model's metadata.
        #[arg(long, default_value = "1")]
        version: String,
        #[arg(long, default_value = "runs/cache")]
        cache_dir: PathBuf,
    },
    /// Split the products of other kinds (every class the split leaves out) train/val/test, for
    /// station training (negatives) and for measuring how often they stay unreported.
    Negatives {
        #[arg(long)]
        data: PathBuf,
        #[arg(long, default_value = "models/split.json")]
        split: PathBuf,
        #[arg(long, default_value_t = 2024)]
        seed: u64,
        #[arg(long, default_value = "models/negatives.json")]
        out: PathBuf,
    },
    /// Render station frames from a split part as image files (deterministic per image): the
    /// benchmark's levels at the network's size, whole camera frames with the product in a ROI,
    /// a pass-by sequence for `tag watch`, or a picture of samples.
    Frames {
        #[arg(long)]
        data: PathBuf,
        #[arg(long, default_value = "models/split.json")]
        split: PathBuf,
        /// Split part: val (for choices) or test (for reported figures). Never train.
        #[arg(long, value_parser = ["val", "test"], default_value = "val")]
        part: String,
        #[arg(long, value_enum, default_value_t = training::station::Level::Mild)]
        level: training::station::Level,
        /// Folder to write `<id>.jpg` (or `.png`) files and `labels.csv` into.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Frames to write at most (empty: how many empty frames).
        #[arg(long, default_value_t = 200)]
        limit: usize,
        /// Whole WxH camera frames with the product inside this ROI (x,y,width,height
        /// fractions), e.g. `--whole 640x480 --roi 0.3,0.1,0.4,0.8`.
        #[arg(long)]
        whole: Option<String>,
        #[arg(long, default_value = "0.265625,0.0833,0.46875,0.8333")]
        roi: String,
        /// A pass-by sequence instead: each product for N frames, the empty belt between them
        /// (whole frames, one belt).
        #[arg(long)]
        sequence: Option<usize>,
        /// Empty-belt frames before, between and after the products of a sequence.
        #[arg(long, default_value_t = 4)]
        gap: usize,
        /// Write a PNG of sample frames (one row per class: catalogue, mirrored, mild, hard,
        /// tray, empty) instead.
        #[arg(long)]
        grid: Option<PathBuf>,
        #[arg(long, default_value = "runs/cache")]
        cache_dir: PathBuf,
    },
    /// Score an exported model (and its int8 sibling) on station frames of val and test into
    /// its model card: catalogue, mirrored, mild, hard, tray, empty frames, other kinds.
    Station {
        #[arg(long)]
        data: PathBuf,
        #[arg(long, default_value = "models/split.json")]
        split: PathBuf,
        #[arg(long, default_value = "models/negatives.json")]
        negatives: PathBuf,
        /// Float ONNX model; `<model>.int8.onnx` is scored too when present.
        #[arg(long)]
        model: PathBuf,
        /// Empty frames per part.
        #[arg(long, default_value_t = 1000)]
        empties: usize,
        #[arg(long, default_value = "runs/cache")]
        cache_dir: PathBuf,
    },
    /// Fit a temperature on val station frames (lowest NLL) and fold it into a float model's head
    /// (temperature.rs); the card gets a `temperature` section. Run after `export`, before
    /// `quantize` and `station`.
    Calibrate {
        #[arg(long)]
        data: PathBuf,
        #[arg(long, default_value = "models/split.json")]
        split: PathBuf,
        /// Float ONNX model, rewritten in place.
        #[arg(long)]
        model: PathBuf,
        /// Empty val frames among the fitting frames (station models).
        #[arg(long, default_value_t = 1000)]
        empties: usize,
        #[arg(long, default_value = "runs/cache")]
        cache_dir: PathBuf,
    },
    /// Write a PNG grid of training images next to augmented copies of them.
    AugmentGrid {
        #[arg(long)]
        data: PathBuf,
        #[arg(long, default_value = "models/split.json")]
        split: PathBuf,
        #[arg(long, default_value = "docs/img/augmentation.png")]
        out: PathBuf,
        /// Rows (one image each, taken from different classes).
        #[arg(long, default_value_t = 6)]
        rows: usize,
        #[arg(long, default_value_t = 5)]
        variants: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value = "runs/cache")]
        cache_dir: PathBuf,
    },
    /// Write docs/REPORT.md (and its plots) from the model cards and the saved training logs.
    Report {
        /// Run folders to copy per-epoch logs from (missing runs: the copies in --data-dir).
        #[arg(long, default_value = "runs")]
        runs: PathBuf,
        #[arg(long, default_value = "models")]
        models: PathBuf,
        /// Where the per-epoch logs are kept in the repository.
        #[arg(long, default_value = "docs/data")]
        data_dir: PathBuf,
        #[arg(long, default_value = "docs")]
        docs: PathBuf,
    },
    /// Quantize an exported float model to int8 (QLinearConv), calibrated on training images,
    /// then score float and int8 side by side on val and test (into the model card).
    Quantize {
        #[arg(long)]
        data: PathBuf,
        #[arg(long, default_value = "models/split.json")]
        split: PathBuf,
        /// Float ONNX model written by `training export`.
        #[arg(long)]
        model: PathBuf,
        /// int8 ONNX to write; default <model>.int8.onnx.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Calibration images, drawn from the training split only.
        #[arg(long, default_value_t = 300)]
        calibration_images: usize,
        #[arg(long, value_enum, default_value_t = Calibration::Percentile)]
        method: Calibration,
        /// Graph form: QLinearConv (true int8 in tract; <model>.int8.onnx) or QDQ for
        /// onnxruntime (<model>.qdq.onnx).
        #[arg(long, value_enum, default_value_t = Int8Form::Qlinear)]
        form: Int8Form,
        #[arg(long, default_value_t = 7)]
        seed: u64,
        #[arg(long, default_value = "runs/cache")]
        cache_dir: PathBuf,
    },
}

fn main() {
    if let Err(e) = run(Cli::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn open_cache(data: &Path, cache_dir: &Path, split: &Split) -> Result<ImageCache> {
    open_cache_with(data, cache_dir, split, None)
}

/// The cache of the split's images, plus the other kinds when given.
fn open_cache_with(
    data: &Path,
    cache_dir: &Path,
    split: &Split,
    negatives: Option<&Negatives>,
) -> Result<ImageCache> {
    let mut ids: Vec<u64> = split
        .train
        .iter()
        .chain(&split.val)
        .chain(&split.test)
        .map(|e| e.0)
        .collect();
    if let Some(n) = negatives {
        ids.extend(n.train.iter().chain(&n.val).chain(&n.test).map(|e| e.0));
    }
    let cache = ImageCache::open(data, cache_dir, &ids)?;
    eprintln!(
        "image cache {}: {} images{}, {} corrupt (skipped)",
        cache.path.display(),
        cache.len(),
        if cache.rebuilt { " (decoded now)" } else { "" },
        cache.corrupt.len()
    );
    for (id, why) in cache.corrupt.iter().take(5) {
        eprintln!("  skipped {id}: {why}");
    }
    Ok(cache)
}

fn run(cli: Cli) -> Result<()> {
    match cli.cmd {
        Cmd::Split {
            data,
            label_column,
            min_images,
            seed,
            out,
        } => {
            let split = Split::create(
                &data,
                &SplitOptions {
                    seed,
                    label_column,
                    min_images,
                    val_fraction: 0.1,
                    test_fraction: 0.1,
                },
            )?;
            split.save(&out)?;
            eprintln!(
                "split {}: {} classes, train {} / val {} / test {}; {} duplicate groups kept \
                 together; skipped {} rows without image, {} bad rows, {} images of rare classes",
                out.display(),
                split.labels.len(),
                split.train.len(),
                split.val.len(),
                split.test.len(),
                split.duplicate_groups,
                split.missing_images,
                split.bad_rows,
                split.rare_class_images
            );
            let counts = Split::counts(&split.train, split.labels.len());
            for (l, c) in split.labels.iter().zip(counts) {
                eprintln!("  {l:<12} train {c}");
            }
            Ok(())
        }
        Cmd::Train {
            data,
            split,
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
            seed,
            resume,
            stop_after,
            cache_dir,
        } => {
            let split_file = split;
            let split = Split::load(&split_file)?;
            let negatives = negatives
                .map(|p| Negatives::load(&p, &split_file).map(|n| (p, n)))
                .transpose()?;
            let mut labels = split.labels.clone();
            if station {
                labels.push(tagger::classify::NONE.to_string());
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
                    }
                } else {
                    Arch::from_layers(layers, dropout, labels.len())
                },
                epochs,
                batch_size,
                lr,
                weight_decay,
                seed,
                augment: augment.then(Augment::default),
                normalization: Normalization::default(),
                label_column: split.label_column.clone(),
                labels,
                station: station.then(|| training::train::StationTraining {
                    cut_jitter,
                    catalogue_share,
                    ..training::train::StationTraining::new(
                        negatives.as_ref().map(|(p, _)| p.display().to_string()),
                    )
                }),
                label_smoothing,
                warmup_epochs,
                ema,
                distill: (!teacher.is_empty()).then(|| training::distill::Distill {
                    teachers: teacher.iter().map(|p| p.display().to_string()).collect(),
                    weight: distill_weight,
                    temperature: distill_temperature,
                }),
            };
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
            let out = out.unwrap_or_else(|| PathBuf::from("runs").join(&name));
            eprintln!(
                "training {name}: {} params (folded), {:.1} MFLOP/image, receptive field {} px",
                cfg.arch.params_folded(),
                cfg.arch.flops() as f64 / 1e6,
                cfg.arch.receptive_field()
            );
            let state = training::train::train(
                &cfg,
                &RunPaths::new(&out),
                &cache,
                &split.train,
                &split.val,
                &negative_ids,
                resume,
                stop_after,
            )
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
        Cmd::Evaluate {
            data,
            split,
            run,
            cache_dir,
        } => {
            let split = Split::load(&split)?;
            let cache = open_cache(&data, &cache_dir, &split)?;
            let m = training::evaluate::evaluate(&RunPaths::new(&run), &split, &cache)?;
            eprintln!("{:<6} {:>9} {:>9}", "split", "accuracy", "macro-F1");
            for (name, x) in [("train", &m.train), ("val", &m.val), ("test", &m.test)] {
                eprintln!("{name:<6} {:>9.4} {:>9.4}", x.accuracy, x.macro_f1);
            }
            eprintln!("metrics and plots written to {}", run.display());
            Ok(())
        }
        Cmd::Export {
            data,
            split: split_file,
            run,
            out,
            version,
            cache_dir,
        } => {
            let split = Split::load(&split_file)?;
            let cache = open_cache(&data, &cache_dir, &split)?;
            let paths = RunPaths::new(&run);
            let metrics: training::evaluate::SplitMetrics = serde_json::from_slice(
                &std::fs::read(run.join("metrics.json")).with_context(|| {
                    format!(
                        "{} has no metrics.json: run `training evaluate --run {}` first",
                        run.display(),
                        run.display()
                    )
                })?,
            )?;
            let check = training::evaluate::export(&paths, &version, &split, &cache, &out)?;
            eprintln!(
                "wrote {}: tract matches burn within {:.2e} on {} test images",
                out.display(),
                check.max_abs_logit_diff_tract_vs_burn,
                check.images
            );
            let (cfg, _) = training::evaluate::read_run(&paths)?;
            let reproduce = reproduce_commands(&cfg, &split_file, &run, &out);
            let card = training::evaluate::model_card(
                &paths,
                &version,
                &split,
                &split_file,
                &out,
                metrics,
                check,
                reproduce,
            )?;
            let card_path = out.with_extension("json");
            let mut card = serde_json::to_value(&card)?;
            keep_sections(&card_path, &mut card);
            training::util::write_json(&card_path, &card)?;
            let img = PathBuf::from("docs/img");
            std::fs::create_dir_all(&img)?;
            for (from, to) in [
                ("curves.png", "curves"),
                ("confusion_test.png", "confusion"),
            ] {
                let src = run.join(from);
                if src.is_file() {
                    std::fs::copy(&src, img.join(format!("{}-{to}.png", cfg.name)))?;
                }
            }
            eprintln!("wrote {}", card_path.display());
            Ok(())
        }
        Cmd::AugmentGrid {
            data,
            split,
            out,
            rows,
            variants,
            seed,
            cache_dir,
        } => {
            let split = Split::load(&split)?;
            let cache = open_cache(&data, &cache_dir, &split)?;
            // The first training image of each of `rows` classes.
            let mut picked: Vec<&[u8]> = vec![];
            for class in 0..split.labels.len() {
                if picked.len() == rows {
                    break;
                }
                if let Some(img) = split
                    .train
                    .iter()
                    .find(|e| e.1 == class)
                    .and_then(|e| cache.get(e.0))
                {
                    picked.push(img);
                }
            }
            let grid = training::augment::sample_grid(&picked, &Augment::default(), variants, seed);
            let mut png = vec![];
            grid.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)?;
            training::util::write_atomic(&out, &png)?;
            eprintln!("wrote {} (left column: originals)", out.display());
            Ok(())
        }
        Cmd::Negatives {
            data,
            split: split_file,
            seed,
            out,
        } => {
            let split = Split::load(&split_file)?;
            let n = Negatives::create(&data, &split, &split_file, seed)?;
            n.save(&out)?;
            eprintln!(
                "negatives {}: {} kinds, train {} / val {} / test {}; {} left out (same bytes as a \
                 split image)",
                out.display(),
                n.kinds.len(),
                n.train.len(),
                n.val.len(),
                n.test.len(),
                n.shared_with_split
            );
            Ok(())
        }
        Cmd::Frames {
            data,
            split,
            part,
            level,
            out,
            limit,
            whole,
            roi,
            sequence,
            gap,
            grid,
            cache_dir,
        } => {
            let split = Split::load(&split)?;
            let cache = open_cache(&data, &cache_dir, &split)?;
            let entries = split.part(&part);
            let opts = training::frames::FrameOptions {
                part: &part,
                level,
                limit,
                whole: whole
                    .as_deref()
                    .map(training::frames::parse_size)
                    .transpose()?,
                roi: training::frames::parse_roi(&roi)?,
                sequence,
                gap,
            };
            if let Some(grid) = grid {
                let png = training::frames::sample_grid(&cache, &split, entries, &part)?;
                training::util::write_atomic(&grid, &png)?;
                eprintln!("wrote {}", grid.display());
                return Ok(());
            }
            let Some(out) = out else {
                anyhow::bail!("pass --out DIR to write frames (or --grid FILE for a picture)");
            };
            let written = training::frames::write(&cache, &split, entries, &opts, &out)?;
            eprintln!(
                "wrote {written} frames and labels.csv to {} ({} {} frames of {})",
                out.display(),
                part,
                level.name(),
                if opts.sequence.is_some() {
                    "a pass-by sequence"
                } else {
                    "the split"
                }
            );
            Ok(())
        }
        Cmd::Station {
            data,
            split: split_file,
            negatives,
            model,
            empties,
            cache_dir,
        } => station_cmd(&data, &split_file, &negatives, &model, empties, &cache_dir),
        Cmd::Calibrate {
            data,
            split,
            model,
            empties,
            cache_dir,
        } => calibrate_cmd(&data, &split, &model, empties, &cache_dir),
        Cmd::Report {
            runs,
            models,
            data_dir,
            docs,
        } => {
            let copied = training::report::collect(&runs, &data_dir)?;
            eprintln!(
                "copied {copied} training logs from {} into {}",
                runs.display(),
                data_dir.display()
            );
            let out = training::report::write(&models, &data_dir, &docs)?;
            eprintln!("wrote {}", out.display());
            Ok(())
        }
        Cmd::Quantize {
            data,
            split,
            model,
            out,
            calibration_images,
            method,
            form,
            seed,
            cache_dir,
        } => quantize_cmd(
            &data,
            &split,
            &model,
            out,
            calibration_images,
            (method, form),
            seed,
            &cache_dir,
        ),
    }
}

/// `training station`: scores the float model and its int8 sibling on val and test station
/// frames and writes the figures into the model card's `station` section.
fn station_cmd(
    data: &Path,
    split_file: &Path,
    negatives: &Path,
    model: &Path,
    empties: usize,
    cache_dir: &Path,
) -> Result<()> {
    use tagger::backend::BackendKind;
    use training::station_eval::score;
    let split = Split::load(split_file)?;
    let neg = Negatives::load(negatives, split_file)?;
    let cache = open_cache_with(data, cache_dir, &split, Some(&neg))?;
    let int8_path = model.with_extension("int8.onnx");
    let mut section = serde_json::Map::new();
    for (key, path) in [("float", model.to_path_buf()), ("int8", int8_path)] {
        if !path.is_file() {
            continue;
        }
        let m = tagger::model::Model::from_path(&path, BackendKind::Tract, 1)?;
        if !m.info.labels.starts_with(&split.labels) {
            anyhow::bail!(
                "{} was trained on other labels than {}",
                path.display(),
                split_file.display()
            );
        }
        for part in ["val", "test"] {
            let entries = split.part(part);
            let started = std::time::Instant::now();
            let s = score(&m, part, entries, &neg.ids(part), empties, &cache)?;
            eprintln!(
                "{} {part}: catalogue {:.4} mirrored {:.4} mild {:.4} hard {:.4} tray {:.4} | \
                 empty as product {:.4} | other kinds unreported {} | right above {:.2}: {:.4} \
                 ({:.0}s)",
                path.display(),
                s.catalogue,
                s.mirrored,
                s.mild,
                s.hard,
                s.tray,
                s.empty_as_product,
                s.others_not_reported
                    .map_or("-".into(), |v| format!("{v:.4}")),
                s.threshold,
                s.catalogue_right_above_threshold,
                started.elapsed().as_secs_f64()
            );
            section.insert(format!("{key}_{part}"), serde_json::to_value(&s)?);
        }
    }
    section.insert(
        "reproduce".into(),
        format!(
            "cargo run --release -p training -- station --data ../shared/data/fashion-product-images-small --split {} --negatives {} --model {} --empties {empties}",
            split_file.display(),
            negatives.display(),
            model.display()
        )
        .into(),
    );
    match set_card_section(model, "station", serde_json::Value::Object(section))? {
        Some(card) => eprintln!("station figures written to {}", card.display()),
        None => eprintln!("{} has no model card: figures not saved", model.display()),
    }
    Ok(())
}

/// `training calibrate`: temperature scaling of a float model, written in place with its card.
fn calibrate_cmd(
    data: &Path,
    split_file: &Path,
    model: &Path,
    empties: usize,
    cache_dir: &Path,
) -> Result<()> {
    use tagger::backend::BackendKind;
    use training::temperature as temp;
    let split = Split::load(split_file)?;
    let bytes = std::fs::read(model).with_context(|| format!("reading {}", model.display()))?;
    if let Some(t) = temp::folded(&bytes) {
        anyhow::bail!(
            "{} is calibrated already (temperature {t}); re-export it to calibrate again",
            model.display()
        );
    }
    let m = tagger::model::Model::from_bytes(
        &bytes,
        model.display().to_string(),
        BackendKind::Tract,
        1,
    )?;
    let station = m.info.labels.last().map(String::as_str) == Some(tagger::classify::NONE);
    let cache = open_cache(data, cache_dir, &split)?;
    let started = std::time::Instant::now();
    let (frames, truth) = temp::fitting_frames(
        &split.val,
        if station { empties } else { 0 },
        m.classes() - 1,
        &cache,
    );
    let logits = temp::logits(&m, &frames)?;
    let k = m.classes();
    let t = temp::fit(&logits, k, &truth);
    let scaling = temp::TemperatureScaling {
        temperature: (t as f64 * 100.0).round() / 100.0,
        fitted_on: format!(
            "val: catalogue photos and their mild, hard and tray station frames{}",
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
    let check =
        tagger::model::Model::from_bytes(&calibrated, "calibrated".into(), BackendKind::Tract, 1)?;
    let after = temp::logits(&check, &frames[..frames.len().min(512)])?;
    let argmax = |r: &[f32]| tagger::classify::argmax(r);
    if logits
        .chunks(k)
        .zip(after.chunks(k))
        .any(|(a, b)| argmax(a) != argmax(b))
    {
        anyhow::bail!("calibration changed a prediction; not written");
    }
    training::util::write_atomic(model, &calibrated)?;
    let mut section = serde_json::to_value(&scaling)?;
    section["reproduce"] = format!(
        "cargo run --release -p training -- calibrate --data ../shared/data/fashion-product-images-small --split {} --model {} --empties {empties}",
        split_file.display(),
        model.display()
    )
    .into();
    // The card gets the section and describes the file that ships.
    let fields = [
        ("temperature", section),
        ("onnx_bytes", calibrated.len().into()),
        (
            "onnx_sha256",
            training::util::sha256_hex(&calibrated).into(),
        ),
    ];
    if let Some(card) = set_card_fields(model, fields)? {
        eprintln!("{} calibrated; card {}", model.display(), card.display());
    }
    Ok(())
}

/// Sets one section of `model`'s card (`<model>.json`) and writes it back; `None` when the model
/// has no card.
fn set_card_section(model: &Path, key: &str, value: serde_json::Value) -> Result<Option<PathBuf>> {
    set_card_fields(model, [(key, value)])
}

/// Sets top-level fields of `model`'s card in one read and one atomic write; `None` when the
/// model has no card.
fn set_card_fields<'a>(
    model: &Path,
    fields: impl IntoIterator<Item = (&'a str, serde_json::Value)>,
) -> Result<Option<PathBuf>> {
    let card_path = model.with_extension("json");
    if !card_path.is_file() {
        return Ok(None);
    }
    let mut card: serde_json::Value = serde_json::from_slice(&std::fs::read(&card_path)?)
        .with_context(|| format!("{} is not a model card", card_path.display()))?;
    for (key, value) in fields {
        card[key] = value;
    }
    training::util::write_json(&card_path, &card)?;
    Ok(Some(card_path))
}

#[allow(clippy::too_many_arguments)]
fn quantize_cmd(
    data: &Path,
    split_file: &Path,
    model: &Path,
    out: Option<PathBuf>,
    calibration_images: usize,
    (method, form): (Calibration, Int8Form),
    seed: u64,
    cache_dir: &Path,
) -> Result<()> {
    use rand::seq::SliceRandom;
    use rand::SeedableRng;
    use tagger::tract_onnx::prelude::Framework;
    let out = out.unwrap_or_else(|| {
        model.with_extension(match form {
            Int8Form::Qlinear => "int8.onnx",
            Int8Form::Qdq => "qdq.onnx",
        })
    });
    let bytes = std::fs::read(model).with_context(|| format!("cannot read {}", model.display()))?;
    let info = tagger::model::read_info(&bytes)
        .with_context(|| format!("{} is not a tagger float model", model.display()))?;
    let proto = tagger::tract_onnx::onnx()
        .proto_model_for_read(&mut std::io::Cursor::new(&bytes))
        .map_err(|e| anyhow::anyhow!("{}: not an ONNX model: {e}", model.display()))?;
    let net = training::quantize::folded_from_onnx(&proto)
        .with_context(|| format!("cannot quantize {}", model.display()))?;
    if calibration_images == 0 {
        anyhow::bail!("the calibration set is empty: pass --calibration-images N with N > 0");
    }
    let split = Split::load(split_file)?;
    if !info.labels.starts_with(&split.labels) {
        anyhow::bail!(
            "{} was trained on other labels than {}",
            model.display(),
            split_file.display()
        );
    }
    let cache = open_cache(data, cache_dir, &split)?;
    let mut pool = split.train.clone();
    pool.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
    let catalogue: Vec<&[u8]> = pool
        .iter()
        .filter_map(|e| cache.get(e.0))
        .take(calibration_images)
        .collect();
    // A station model (with a `none` output) sees belts and trays: half of its calibration
    // images are training photos composited by the training scene (and a few empty belts), so
    // the activation ranges cover dark and coloured surfaces, not only catalogue white.
    let station = info.labels.iter().any(|l| l == tagger::classify::NONE);
    let rendered: Vec<Vec<u8>> = if station {
        use training::station::{self as st, mix, Product, Scene};
        let scene = Scene::training();
        catalogue
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 2 == 1)
            .map(|(i, img)| {
                let seed = mix(seed ^ i as u64);
                // One in ten is an empty belt: no product, so no mask to cut.
                let mask = (i % 10 != 1).then(|| training::cutout::product_mask(img));
                let product = mask.as_ref().map(|mask| Product { chw: img, mask });
                st::network_frame(product, &scene, mix(seed ^ 1), seed).to_chw()
            })
            .collect()
    } else {
        vec![]
    };
    let calib: Vec<&[u8]> = catalogue
        .iter()
        .enumerate()
        .filter(|(i, _)| !station || i % 2 == 0)
        .map(|(_, c)| *c)
        .chain(rendered.iter().map(Vec::as_slice))
        .collect();
    let mut input = vec![0f32; calib.len() * tagger::preprocess::IMAGE_LEN];
    for (img, o) in calib
        .iter()
        .zip(input.chunks_mut(tagger::preprocess::IMAGE_LEN))
    {
        tagger::preprocess::normalize_into(img, &info.normalization, o);
    }
    let ranges = training::quantize::calibrate(&net, &info, &input, calib.len(), method)?;
    let settings = training::quantize::QuantSettings::new(
        &info,
        form,
        method,
        &ranges,
        calib.len(),
        if station {
            format!("training split, seed {seed}: half catalogue, half station frames (training scene, 1 in 10 empty)")
        } else {
            format!("training split, seed {seed}")
        },
    );
    let q = training::quantize::int8_bytes(&net, &info, &ranges, &settings)?;
    // tract must load and run it before it is written.
    tagger::model::Model::from_bytes(
        &q,
        out.display().to_string(),
        tagger::backend::BackendKind::Tract,
        1,
    )
    .context("tract cannot run the quantized model")?;
    training::util::write_atomic(&out, &q)?;
    eprintln!(
        "wrote {} ({} bytes, float {} bytes)",
        out.display(),
        q.len(),
        bytes.len()
    );
    let cmp = training::compare::float_vs_int8(&bytes, &q, &split, &cache)?;
    cmp.print();
    // The QLinear form is "the" int8 model; the QDQ form gets its own section.
    let key = match form {
        Int8Form::Qlinear => "int8",
        Int8Form::Qdq => "int8_qdq",
    };
    let section = serde_json::json!({
        "onnx": out.file_name().map(|f| f.to_string_lossy().into_owned()),
        "onnx_bytes": q.len(),
        "onnx_sha256": training::util::sha256_hex(&q),
        "settings": settings,
        "comparison": cmp,
        "reproduce": format!(
            "cargo run --release -p training -- quantize --data ../shared/data/fashion-product-images-small --split {} --model {} --out {} --calibration-images {} --method {} --form {} --seed {}",
            split_file.display(), model.display(), out.display(), calibration_images,
            match method { Calibration::MinMax => "min-max", Calibration::Percentile => "percentile" },
            match form { Int8Form::Qlinear => "qlinear", Int8Form::Qdq => "qdq" }, seed
        ),
    });
    if let Some(card) = set_card_section(model, key, section)? {
        eprintln!("float vs int8 written to {}", card.display());
    }
    Ok(())
}

/// Sections other commands wrote into an existing card (`int8`, `int8_qdq`, `station`) survive
/// a re-export of the same model (same ONNX bytes); for a changed model they would describe
/// files and figures of the old one, so they are dropped and the commands to redo are named.
fn keep_sections(card_path: &Path, card: &mut serde_json::Value) {
    let Ok(bytes) = std::fs::read(card_path) else {
        return;
    };
    let Ok(serde_json::Value::Object(old)) = serde_json::from_slice(&bytes) else {
        return;
    };
    let same_model = old.get("onnx_sha256") == card.get("onnx_sha256");
    let sections = ["temperature", "int8", "int8_qdq", "station"];
    if let serde_json::Value::Object(new) = card {
        for (k, v) in old {
            if sections.contains(&k.as_str()) {
                if same_model {
                    new.entry(k).or_insert(v);
                } else {
                    eprintln!(
                        "{}: the model changed, its `{k}` section is dropped: run `training {}` again",
                        card_path.display(),
                        match k.as_str() {
                            "station" => "station",
                            "temperature" => "calibrate",
                            _ => "quantize",
                        }
                    );
                }
            }
        }
    }
}

fn reproduce_commands(cfg: &TrainConfig, split: &Path, run: &Path, out: &Path) -> Vec<String> {
    let t = "cargo run --release -p training --";
    let data = "--data ../shared/data/fashion-product-images-small";
    let shape = if cfg.arch.layers.is_empty() {
        let channels: Vec<String> = cfg.arch.channels.iter().map(usize::to_string).collect();
        format!(
            "--channels {} --convs-per-stage {}",
            channels.join(","),
            cfg.arch.convs_per_stage
        )
    } else {
        let layers: Vec<String> = cfg.arch.layers.iter().map(Layer::to_string).collect();
        format!("--layers {}", layers.join(","))
    };
    vec![
        format!("{t} split {data} --out {}", split.display()),
        format!(
            "{t} train {data} --split {} --name {} --out {} --epochs {} --batch-size {} --lr {} \
             --weight-decay {} {shape} --dropout {} --seed {}{}",
            split.display(),
            cfg.name,
            run.display(),
            cfg.epochs,
            cfg.batch_size,
            cfg.lr,
            cfg.weight_decay,
            cfg.arch.dropout,
            cfg.seed,
            if cfg.augment.is_some() {
                " --augment".to_string()
            } else if let Some(st) = &cfg.station {
                format!(
                    " --station{}{}{}{}{}{}{}",
                    st.negatives
                        .as_ref()
                        .map(|n| format!(" --negatives {n}"))
                        .unwrap_or_default(),
                    if st.cut_jitter { " --cut-jitter" } else { "" },
                    if st.catalogue_share != 0.25 {
                        format!(" --catalogue-share {}", st.catalogue_share)
                    } else {
                        String::new()
                    },
                    if cfg.label_smoothing > 0.0 {
                        format!(" --label-smoothing {}", cfg.label_smoothing)
                    } else {
                        String::new()
                    },
                    if cfg.warmup_epochs > 0 {
                        format!(" --warmup-epochs {}", cfg.warmup_epochs)
                    } else {
                        String::new()
                    },
                    cfg.ema.map(|d| format!(" --ema {d}")).unwrap_or_default(),
                    cfg.distill
                        .as_ref()
                        .map(|d| format!(
                            " --teacher {} --distill-weight {} --distill-temperature {}",
                            d.teachers.join(","),
                            d.weight,
                            d.temperature
                        ))
                        .unwrap_or_default()
                )
            } else {
                String::new()
            }
        ),
        format!(
            "{t} evaluate {data} --split {} --run {}",
            split.display(),
            run.display()
        ),
        format!(
            "{t} export {data} --split {} --run {} --out {}",
            split.display(),
            run.display(),
            out.display()
        ),
    ]
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

#[cfg(test)]
mod tests {
    use super::keep_sections;
    use serde_json::json;

    #[test]
    fn a_re_export_keeps_int8_and_station_only_for_the_same_model() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.json");
        let old = json!({"onnx_sha256": "aa", "metrics": 1, "int8": {"x": 1}, "station": {"y": 2}});
        std::fs::write(&path, serde_json::to_vec(&old).unwrap()).unwrap();
        let mut same = json!({"onnx_sha256": "aa", "metrics": 2});
        keep_sections(&path, &mut same);
        assert_eq!(same["int8"], json!({"x": 1}));
        assert_eq!(same["station"], json!({"y": 2}));
        assert_eq!(same["metrics"], 2, "the new card's own fields win");
        let mut changed = json!({"onnx_sha256": "bb", "metrics": 2});
        keep_sections(&path, &mut changed);
        assert!(changed.get("int8").is_none() && changed.get("station").is_none());
    }
}
