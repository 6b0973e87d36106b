//! `training`: the command line of the training crate.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use tagger::preprocess::Normalization;
use training::augment::Augment;
use training::cache::ImageCache;
use training::model::{Arch, Layer};
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
    let ids: Vec<u64> = split
        .train
        .iter()
        .chain(&split.val)
        .chain(&split.test)
        .map(|e| e.0)
        .collect();
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
            seed,
            resume,
            stop_after,
            cache_dir,
        } => {
            let split_file = split;
            let split = Split::load(&split_file)?;
            let cfg = TrainConfig {
                name: name.clone(),
                arch: if layers.is_empty() {
                    Arch {
                        channels,
                        convs_per_stage,
                        layers,
                        dropout,
                        classes: split.labels.len(),
                    }
                } else {
                    Arch::from_layers(layers, dropout, split.labels.len())
                },
                epochs,
                batch_size,
                lr,
                weight_decay,
                seed,
                augment: augment.then(Augment::default),
                normalization: Normalization::default(),
                label_column: split.label_column.clone(),
                labels: split.labels.clone(),
            };
            cfg.arch
                .validate()
                .map_err(|e| anyhow::anyhow!("--channels/--layers: {e}"))?;
            // Only after the cheap checks: opening the cache may decode every image.
            let cache = open_cache(&data, &cache_dir, &split)?;
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
    if split.labels != info.labels {
        anyhow::bail!(
            "{} was trained on other labels than {}",
            model.display(),
            split_file.display()
        );
    }
    let cache = open_cache(data, cache_dir, &split)?;
    let mut pool = split.train.clone();
    pool.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
    let calib: Vec<&[u8]> = pool
        .iter()
        .filter_map(|e| cache.get(e.0))
        .take(calibration_images)
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
        format!("training split, seed {seed}"),
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
    let card_path = model.with_extension("json");
    if card_path.is_file() {
        let mut card: serde_json::Value = serde_json::from_slice(&std::fs::read(&card_path)?)?;
        // The QLinear form is "the" int8 model; the QDQ form gets its own section.
        let key = match form {
            Int8Form::Qlinear => "int8",
            Int8Form::Qdq => "int8_qdq",
        };
        card[key] = serde_json::json!({
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
        training::util::write_json(&card_path, &card)?;
        eprintln!("float vs int8 written to {}", card_path.display());
    }
    Ok(())
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
                " --augment"
            } else {
                ""
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
