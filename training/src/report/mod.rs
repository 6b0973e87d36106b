//! docs/REPORT.md: the experiment report, rendered only from saved results so no number in it can
//! drift from the models: the model cards (`models/<name>.json`) and the per-epoch logs kept in
//! `docs/data/` (copied there from `runs/` by [`collect`], so a fresh clone regenerates the same
//! report without the run folders).

pub mod lite;
mod probe;
pub mod readme;
mod real;

use crate::card::ModelCard as Card;
use crate::station_eval::StationScores;
use crate::train::{EpochLog, TrainConfig};
use anyhow::{bail, Context, Result};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The report's models, in table order. `fast` is the tuned recipe on a strided architecture
/// that tract runs faster (docs/BENCHMARKS.md).
/// `robust` is trained for station frames (compositing, `none`, negatives).
/// `multihead` is `robust` with extra heads (article type, colour, gender, usage).
pub const MODELS: [&str; 6] = [
    "baseline",
    "tuned",
    "augmented",
    "fast",
    "robust",
    "multihead",
];

/// One short run of the learning-rate sweep.
pub struct SweepRun {
    pub lr: f64,
    pub history: Vec<EpochLog>,
}

/// One full run of the architecture sweep for `fast` (training/scripts/sweep_arch.sh).
pub struct ArchRun {
    pub variant: String,
    pub config: TrainConfig,
    pub history: Vec<EpochLog>,
}

impl ArchRun {
    /// The epoch with the best [`EpochLog::selection_score`] (validation accuracy, or the station
    /// score of a station run), the first on ties: the checkpoint a run keeps (train.rs replaces
    /// it only on a strictly better epoch).
    pub fn best(&self) -> &EpochLog {
        let mut best = &self.history[0];
        for e in &self.history[1..] {
            if e.selection_score() > best.selection_score() {
                best = e;
            }
        }
        best
    }

    /// Whether this run is the one behind a shipped model card: the same network and training
    /// settings, seed included (a variant's other seeds differ only there).
    pub fn is_behind(&self, card: &crate::card::ExportedModel) -> bool {
        let (c, t) = (&self.config, &card.training);
        card.arch.cnn() == Some(&c.arch) && (c.epochs, &c.recipe) == (t.epochs, &t.recipe)
    }
}

pub struct Inputs {
    pub cards: Vec<Card>,
    /// Per-epoch logs by model name (same order as `cards`; empty when missing).
    pub histories: Vec<Vec<EpochLog>>,
    pub sweep: Vec<SweepRun>,
    pub arch_sweep: Vec<ArchRun>,
    /// Station-model variants (runs/station-runs), chosen on validation station frames.
    pub station_runs: Vec<ArchRun>,
    /// Pretrained-backbone runs (`training probe`), kept in docs/data/probe.
    pub probes: Vec<crate::fit::probe::ProbeSummary>,
    /// Fine-tuning runs (`training lite`), kept in docs/data/lite.
    pub lites: Vec<lite::LiteRun>,
}

/// The architecture sweep's choice: the best validation accuracy of any epoch.
pub fn arch_choice(runs: &[ArchRun]) -> Option<&ArchRun> {
    runs.iter()
        .max_by(|a, b| a.best().val_acc.total_cmp(&b.best().val_acc))
}

pub fn read_history(path: &Path) -> Result<Vec<EpochLog>> {
    let mut r =
        csv::Reader::from_path(path).with_context(|| format!("cannot read {}", path.display()))?;
    r.deserialize()
        .collect::<Result<Vec<EpochLog>, _>>()
        .with_context(|| format!("{} is not a training history", path.display()))
}

/// Copies every `runs/<folder>/*<suffix>` into `data/<folder>/`; returns the files copied.
fn copy_summaries(runs: &Path, data: &Path, folder: &str, suffix: &str) -> Result<usize> {
    let mut n = 0;
    if let Ok(entries) = std::fs::read_dir(runs.join(folder)) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(suffix) {
                n += copy_if_present(&e.path(), &data.join(folder).join(&name))? as usize;
            }
        }
    }
    Ok(n)
}

fn copy_if_present(from: &Path, to: &Path) -> Result<bool> {
    if !from.is_file() {
        return Ok(false);
    }
    std::fs::create_dir_all(to.parent().expect("has a parent"))?;
    crate::util::write_atomic(to, &std::fs::read(from)?)?;
    Ok(true)
}

/// Copies each run folder's `config.json` and `history.csv` in `from` to `<run>.config.json` and
/// `<run>.csv` in `to`.
fn copy_runs(from: &Path, to: &Path) -> Result<usize> {
    let mut n = 0;
    if let Ok(entries) = std::fs::read_dir(from) {
        for e in entries.flatten().filter(|e| e.path().is_dir()) {
            let name = e.file_name().to_string_lossy().into_owned();
            if e.path().join("history.csv").is_file() {
                n += copy_if_present(
                    &e.path().join("config.json"),
                    &to.join(format!("{name}.config.json")),
                )? as usize;
                n += copy_if_present(
                    &e.path().join("history.csv"),
                    &to.join(format!("{name}.csv")),
                )? as usize;
            }
        }
    }
    Ok(n)
}

/// Copies the per-epoch logs of the shipped models and of the sweep from `runs` into `data`.
/// Missing runs are fine: the copies already in `data` are used.
pub fn collect(runs: &Path, data: &Path) -> Result<usize> {
    let mut n = 0;
    for m in MODELS {
        n += copy_if_present(
            &runs.join(m).join("history.csv"),
            &data.join("history").join(format!("{m}.csv")),
        )? as usize;
    }
    n += probe::collect(runs, data)?;
    n += lite::collect(runs, data)?;
    for folder in ["sweep-arch", "station-runs"] {
        n += copy_runs(&runs.join(folder), &data.join(folder))?;
    }
    if let Ok(entries) = std::fs::read_dir(runs.join("sweep-lr")) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("lr-") {
                n += copy_if_present(
                    &e.path().join("history.csv"),
                    &data.join("sweep-lr").join(format!("{name}.csv")),
                )? as usize;
            }
        }
    }
    Ok(n)
}

pub fn load(models: &Path, data: &Path) -> Result<Inputs> {
    let (mut cards, mut histories) = (vec![], vec![]);
    for m in MODELS {
        let p = models.join(format!("{m}.json"));
        if !p.is_file() {
            continue;
        }
        let card = Card::load(&p)?;
        let h = data.join("history").join(format!("{m}.csv"));
        histories.push(if h.is_file() {
            read_history(&h)?
        } else {
            vec![]
        });
        cards.push(card);
    }
    if cards.is_empty() {
        bail!(
            "no model cards (baseline/tuned/augmented/fast .json) in {}",
            models.display()
        );
    }
    let mut sweep = vec![];
    if let Ok(entries) = std::fs::read_dir(data.join("sweep-lr")) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(lr) = name
                .strip_prefix("lr-")
                .and_then(|s| s.strip_suffix(".csv"))
                .and_then(|s| s.parse::<f64>().ok())
            else {
                continue;
            };
            let history = read_history(&e.path())?;
            if !history.is_empty() {
                sweep.push(SweepRun { lr, history });
            }
        }
    }
    sweep.sort_by(|a, b| a.lr.total_cmp(&b.lr));
    let arch_sweep = read_runs(&data.join("sweep-arch"))?;
    let station_runs = read_runs(&data.join("station-runs"))?;
    let probes = probe::read(&data.join("probe"))?;
    let lites = lite::read(&data.join("lite"), models)?;

    Ok(Inputs {
        cards,
        histories,
        sweep,
        arch_sweep,
        station_runs,
        probes,
        lites,
    })
}

/// Runs saved by [`copy_runs`]: `<run>.config.json` + `<run>.csv`, sorted by name.
fn read_runs(dir: &Path) -> Result<Vec<ArchRun>> {
    let mut runs = vec![];
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(variant) = name.strip_suffix(".config.json") else {
                continue;
            };
            let config: TrainConfig = serde_json::from_slice(&std::fs::read(e.path())?)
                .with_context(|| format!("{} is not a run config", e.path().display()))?;
            let history = read_history(&dir.join(format!("{variant}.csv")))?;
            if !history.is_empty() {
                runs.push(ArchRun {
                    variant: variant.to_string(),
                    config,
                    history,
                });
            }
        }
    }
    runs.sort_by(|a, b| a.variant.cmp(&b.variant));
    Ok(runs)
}

fn pct(x: f64) -> String {
    format!("{:.2}%", x * 100.0)
}

fn pp(x: f64) -> String {
    format!("{:+.2} pp", x)
}

/// The sweep's choice: the highest final validation accuracy (the test split is never looked at).
pub fn sweep_choice(sweep: &[SweepRun]) -> Option<&SweepRun> {
    sweep.iter().max_by(|a, b| {
        let (x, y) = (a.history.last().unwrap(), b.history.last().unwrap());
        x.val_acc.total_cmp(&y.val_acc)
    })
}

/// Renders the report; `img` is the PNG folder as linked from the report (relative to docs/).
pub fn render(inp: &Inputs, img: &str) -> Result<String> {
    let mut md = String::new();
    let by_name = |n: &str| inp.cards.iter().position(|c| c.model.name == n);
    let base = by_name("baseline").map(|i| &inp.cards[i].model);
    writeln!(
        md,
        "# Experiment report: baseline, tuned, augmented, fast and robust CNNs\n"
    )?;
    writeln!(
        md,
        "Generated by `cargo run --release -p training -- report` from the model cards \
         (`models/<name>.json`) and the per-epoch logs in `docs/data/`; do not edit by hand. Every \
         model uses the same split (`models/split.json`, {} train / {} val / {} test images, 13 \
         classes); the test split is only scored, never used to choose anything.\n",
        inp.cards[0].model.split.train, inp.cards[0].model.split.val, inp.cards[0].model.split.test
    )?;

    writeln!(md, "## Side by side\n")?;
    writeln!(
        md,
        "| model | test acc | test macro-F1 | val acc | train acc | train - val | int8 test acc | int8 agreement | params | MFLOP/image | epochs | lr | seed | augment | training time | images/s |"
    )?;
    writeln!(
        md,
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    )?;
    for c in &inp.cards {
        let k = &c.model;
        let m = &k.metrics;
        let (i8acc, agree) = c.int8.as_ref().map_or(("-".into(), "-".into()), |q| {
            (
                pct(q.comparison.test.int8.accuracy),
                pct(q.comparison.test.agreement),
            )
        });
        writeln!(
            md,
            "| {} | **{}** | {:.3} | {} | {} | {} | {} | {} | {} | {:.1} | {} | {} | {} | {} | {:.0} min | {:.0} |",
            k.name,
            pct(m.test.accuracy),
            m.test.macro_f1,
            pct(m.val.accuracy),
            pct(m.train.accuracy),
            pp((m.train.accuracy - m.val.accuracy) * 100.0),
            i8acc,
            agree,
            k.params,
            k.flops_per_image as f64 / 1e6,
            k.training.epochs,
            k.training.recipe.lr,
            k.training.recipe.seed,
            if k.training.recipe.augment.is_some() {
                "yes"
            } else if k.training.recipe.station.is_some() {
                "station"
            } else {
                "no"
            },
            k.training.train_seconds / 60.0,
            k.training.images_per_s,
        )?;
    }
    writeln!(
        md,
        "\nAll three splits are scored with the run's best-on-validation checkpoint, without \
         augmentation or dropout, so `train - val` is the generalisation gap. Training time is wall-clock on the \
         2-core build machine, which other jobs shared part of the time (indicative only).\n"
    )?;

    station_table(&mut md, inp, img)?;
    heads_section(&mut md, inp, img)?;
    real::section(&mut md, inp, img)?;
    probe::section(&mut md, inp)?;
    lite::section(&mut md, inp, img)?;

    writeln!(md, "## Per-class recall (test)\n")?;
    write!(md, "| class | test images |")?;
    for c in &inp.cards {
        write!(md, " {} |", c.model.name)?;
    }
    writeln!(md)?;
    writeln!(md, "|---|---|{}", "---|".repeat(inp.cards.len()))?;
    for (i, label) in inp.cards[0].model.labels.iter().enumerate() {
        let support = inp.cards[0].model.metrics.test.per_class[i].support;
        write!(md, "| {label} | {support} |")?;
        for c in &inp.cards {
            write!(md, " {} |", pct(c.model.metrics.test.per_class[i].recall))?;
        }
        writeln!(md)?;
    }

    writeln!(md, "\n## Baseline\n")?;
    if let Some(b) = base {
        writeln!(
            md,
            "A plain 4-stage CNN at the photos' native 60x80: conv3x3-BN-ReLU(-maxpool) with {:?} \
             channels, global average pooling, dropout {}, one dense layer; AdamW (lr {}, weight \
             decay {}), batch {}, cosine decay over {} epochs. Why each choice: \
             [training/README.md](../training/README.md#the-baseline-cnn). It reaches {} on test \
             and {} on validation; its train accuracy ({}) is {} above validation: it fits the \
             training set more tightly than it generalises.\n",
            b.arch.cnn().map(|a| a.channels.clone()).unwrap_or_default(),
            b.arch.dropout(),
            b.training.recipe.lr,
            b.training.recipe.weight_decay,
            b.training.recipe.batch_size,
            b.training.epochs,
            pct(b.metrics.test.accuracy),
            pct(b.metrics.val.accuracy),
            pct(b.metrics.train.accuracy),
            pp((b.metrics.train.accuracy - b.metrics.val.accuracy) * 100.0)
        )?;
    }

    writeln!(md, "## Tuned: the learning rate\n")?;
    writeln!(
        md,
        "**Why the learning rate.** With batch norm, AdamW and a fixed small network, the step size \
         is the setting that most changes where training ends up, and the baseline's curves show \
         it is not settled: validation accuracy swings by several points in the first epochs \
         (batch-norm statistics chasing large weight updates) and only settles once the cosine \
         schedule has brought the rate down. Width and depth would change the latency budget \
         too; weight decay and dropout matter less when train and validation are this close.\n"
    )?;
    if inp.sweep.is_empty() {
        writeln!(md, "No sweep results in docs/data/sweep-lr/ yet.\n")?;
    } else {
        let epochs = inp.sweep[0].history.len();
        writeln!(
            md,
            "**Sweep.** {} learning rates, {epochs} epochs each with its own full cosine schedule \
             (`training/scripts/sweep_lr.sh`), everything else as the baseline; scored on \
             validation only.\n",
            inp.sweep.len()
        )?;
        writeln!(md, "| learning rate | final val acc | best val acc | final val loss | final train acc (running) |")?;
        writeln!(md, "|---|---|---|---|---|")?;
        let choice = sweep_choice(&inp.sweep).map(|s| s.lr);
        for s in &inp.sweep {
            let last = s.history.last().unwrap();
            let best = s.history.iter().map(|h| h.val_acc).fold(0.0, f64::max);
            let mark = if Some(s.lr) == choice {
                " (chosen)"
            } else {
                ""
            };
            writeln!(
                md,
                "| {}{mark} | {} | {} | {:.4} | {} |",
                s.lr,
                pct(last.val_acc),
                pct(best),
                last.val_loss,
                pct(last.train_acc)
            )?;
        }
        writeln!(md, "\n![learning-rate sweep]({img}/sweep-lr.png)\n")?;
        if let Some(c) = choice {
            let (lo, hi) = (inp.sweep[0].lr, inp.sweep[inp.sweep.len() - 1].lr);
            if c == hi || c == lo {
                writeln!(
                    md,
                    "The best rate is at the {} end of the range swept, so the optimum may lie \
                     beyond it; the next sweep should extend the range that way.\n",
                    if c == hi { "upper" } else { "lower" }
                )?;
            }
        }
        if let (Some(t), Some(b)) = (by_name("tuned").map(|i| &inp.cards[i].model), base) {
            let dv = (t.metrics.val.accuracy - b.metrics.val.accuracy) * 100.0;
            let dt = (t.metrics.test.accuracy - b.metrics.test.accuracy) * 100.0;
            writeln!(
                md,
                "**Full run.** The chosen rate ({}) trained for the full {} epochs: validation {} \
                 ({} vs baseline), test {} ({} vs baseline). {}\n",
                t.training.recipe.lr,
                t.training.epochs,
                pct(t.metrics.val.accuracy),
                pp(dv),
                pct(t.metrics.test.accuracy),
                pp(dt),
                if t.training.recipe.lr == b.training.recipe.lr {
                    "The sweep confirmed the baseline's rate, so `tuned` is the baseline's \
                     setting trained again with another seed: the difference between the two is \
                     seed noise, the yardstick for every other difference in this report."
                } else if dv > 0.0 {
                    "The short-run ranking held over the full schedule."
                } else {
                    "The short-run winner did not beat the baseline over the full schedule: \
                     5-epoch runs favour rates that converge fast, a known bias of short sweeps."
                }
            )?;
        }
    }

    writeln!(md, "## Augmented\n")?;
    if let Some(i) = by_name("augmented") {
        let a = &inp.cards[i].model;
        if let Some(aug) = &a.training.recipe.augment {
            writeln!(
                md,
                "On-the-fly, seeded, training batches only: horizontal flip {}, shift up to {:.0}%, \
                 scale +-{:.0}%, rotation +-{} deg, brightness +-{:.0}%, contrast +-{:.0}%, colour \
                 gain +-{:.0}%, Gaussian noise sd {} on half the images: what a warehouse camera \
                 changes (position on the belt, lighting, white balance, sensor noise) while the \
                 product stays upright. Samples: ![augmentation]({img}/augmentation.png)\n",
                if aug.flip { "on" } else { "off" },
                aug.shift * 100.0,
                aug.scale * 100.0,
                aug.rotate_deg,
                aug.brightness * 100.0,
                aug.contrast * 100.0,
                aug.colour * 100.0,
                aug.noise
            )?;
        }
        if let Some(b) = base {
            let gap_a = (a.metrics.train.accuracy - a.metrics.val.accuracy) * 100.0;
            let gap_b = (b.metrics.train.accuracy - b.metrics.val.accuracy) * 100.0;
            writeln!(
                md,
                "Result: test {} ({} vs baseline), validation {}; the train - val gap went from \
                 {} to {}. {}\n",
                pct(a.metrics.test.accuracy),
                pp((a.metrics.test.accuracy - b.metrics.test.accuracy) * 100.0),
                pct(a.metrics.val.accuracy),
                pp(gap_b),
                pp(gap_a),
                if a.metrics.test.accuracy < b.metrics.test.accuracy && gap_a < gap_b {
                    "Augmentation did what it is for, closing the gap, but at this length it \
                     costs more training accuracy than it gains in generalisation: the network \
                     underfits the harder, augmented task. The catalogue photos in val and test \
                     are as clean as the training photos, so invariances they never need do not \
                     pay off on this split; they matter for real camera frames, which this split \
                     does not contain."
                } else if a.metrics.test.accuracy >= b.metrics.test.accuracy {
                    "Augmentation improved generalisation here."
                } else {
                    "Augmentation did not help on this split."
                }
            )?;
        }
    } else {
        writeln!(md, "No augmented model card yet.\n")?;
    }

    writeln!(md, "## Fast: strided architecture for tract\n")?;
    if !inp.arch_sweep.is_empty() {
        let chosen = arch_choice(&inp.arch_sweep).map(|r| r.variant.clone());
        writeln!(
            md,
            "**Architecture sweep** (`training/scripts/sweep_arch.sh`): pool-free networks \
             whose latency on tract was measured first with random weights \
             (`benches/experiments/arch_latency.py`), each trained fully with the tuned recipe \
             and chosen on validation accuracy (the best epoch, which is the checkpoint kept).\n"
        )?;
        writeln!(
            md,
            "| variant | layers | MFLOP | params | dropout | weight decay | best val acc (epoch) | train acc in that epoch |"
        )?;
        writeln!(md, "|---|---|---|---|---|---|---|---|")?;
        for r in &inp.arch_sweep {
            let b = r.best();
            let a = &r.config.arch;
            let layers: Vec<String> = a.layers.iter().map(|l| l.to_string()).collect();
            writeln!(
                md,
                "| {}{} | `{}` | {:.1} | {} | {} | {} | {} ({}) | {} |",
                r.variant,
                if chosen.as_deref() == Some(&r.variant) {
                    " (chosen)"
                } else {
                    ""
                },
                if layers.is_empty() {
                    format!("{:?}", a.channels)
                } else {
                    layers.join(",")
                },
                a.flops() as f64 / 1e6,
                a.params_folded(),
                a.dropout,
                r.config.recipe.weight_decay,
                pct(b.val_acc),
                b.epoch,
                pct(b.train_acc),
            )?;
        }
        writeln!(md)?;
    }
    let tuned = by_name("tuned").map(|i| &inp.cards[i].model);
    if let (Some(i), Some(t)) = (by_name("fast"), tuned) {
        let f = &inp.cards[i].model;
        let dt = (f.metrics.test.accuracy - t.metrics.test.accuracy) * 100.0;
        let dv = (f.metrics.val.accuracy - t.metrics.val.accuracy) * 100.0;
        writeln!(
            md,
            "The tuned recipe (lr {}, {} epochs, seed {}; dropout {}, weight decay {}) on \
             another network: {}. In tract's profile of the max-pool network, MaxPool takes a \
             quarter of the time and the full-resolution first conv (3 input channels) another \
             quarter (docs/BENCHMARKS.md); here a 4x4 stride-4 conv reads the image as \
             non-overlapping patches and later layers downsample by stride, without padding. \
             {:.1} MFLOP per image instead of {:.1}, receptive field {} px. Result: test {} ({} \
             vs tuned), validation {} ({} vs tuned), {:.0} images/s in training instead of {:.0}. \
             Latency on tract and onnxruntime: docs/BENCHMARKS.md.\n",
            f.training.recipe.lr,
            f.training.epochs,
            f.training.recipe.seed,
            f.arch.dropout(),
            f.training.recipe.weight_decay,
            f.arch.describe(),
            f.flops_per_image as f64 / 1e6,
            t.flops_per_image as f64 / 1e6,
            f.receptive_field_px,
            pct(f.metrics.test.accuracy),
            pp(dt),
            pct(f.metrics.val.accuracy),
            pp(dv),
            f.training.images_per_s,
            t.training.images_per_s,
        )?;
    } else {
        writeln!(md, "No fast model card yet.\n")?;
    }

    writeln!(md, "## Curves and confusion matrices\n")?;
    writeln!(
        md,
        "![validation accuracy per epoch]({img}/compare-val.png)\n"
    )?;
    for c in &inp.cards {
        let n = &c.model.name;
        writeln!(
            md,
            "- {n}: [training curves]({img}/{n}-curves.png), [test confusion matrix]({img}/{n}-confusion.png)"
        )?;
    }

    writeln!(md, "\n## Float vs int8\n")?;
    writeln!(md, "Static post-training quantization (`training quantize`): per-channel symmetric int8 weights, u8 activations calibrated on training images. Scored side by side by tract.\n")?;
    writeln!(md, "| model | float test | int8 test | delta | float val | int8 val | agreement (test) | largest class drop (test) | float size | int8 size |")?;
    writeln!(md, "|---|---|---|---|---|---|---|---|---|---|")?;
    for c in &inp.cards {
        let Some(q) = &c.int8 else { continue };
        let (t, v) = (&q.comparison.test, &q.comparison.val);
        writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} {} | {} KiB | {} KiB |",
            c.model.name,
            pct(t.float.accuracy),
            pct(t.int8.accuracy),
            pp(t.accuracy_delta_pp),
            pct(v.float.accuracy),
            pct(v.int8.accuracy),
            pct(t.agreement),
            t.largest_class_drop.0,
            pp(-t.largest_class_drop.1),
            c.model.onnx_bytes / 1024,
            q.onnx_bytes / 1024
        )?;
    }

    writeln!(md, "\n## What to try next\n")?;
    // Binomial standard error of the baseline's validation accuracy: the size of a difference
    // that sampling alone produces.
    let se_pp = base.map_or(f64::NAN, |b| {
        let (p, n) = (b.metrics.val.accuracy, b.metrics.val.n as f64);
        (p * (1.0 - p) / n).sqrt() * 100.0
    });
    writeln!(
        md,
        "- The weakest classes are the look-alikes: Sandal vs Shoes vs Flip Flops and Wallets vs \
           Bags (per-class table). More resolution does not exist in these 60x80 photos; a wider \
           last stage or class-balanced sampling targets them directly.\n\
         - Station frames are rendered, not photographed: a few hundred real frames from a \
           station (labelled by the operators' corrections) would tell how far the rendered \
           belts are from real ones, and could join the benchmark.\n\
         - `robust`: its recipe with a second seed (variant d) scores within 0.01 pp of it on \
           val (catalogue equal, mild -0.27 pp, hard +0.24 pp: about the seed noise), and \
           distillation from `fast` + `tuned` (variant c) 0.16 pp below, inside that noise. A \
           weight moving average (variant e, `--ema 0.999`, seed 2 like b) is ahead early (score \
           0.921 vs 0.911 at epoch 10) but ends 0.14 pp below b (catalogue +0.08, mild -0.05, \
           hard -0.45 pp): with the cosine schedule ending near zero the last weights are already \
           an average, so it brings nothing here. Of the ingredients (36 epochs, warm-up, label \
           smoothing, negatives, cut-out jitter) only the negatives are ablated (next point). \
           Extra heads \
           (*Multi-head model* above) cost the class accuracy at loss weight 0.5 and 0.06-0.38 pp \
           of validation score at 0.15 (2 seeds; hard frames lower on both); on test the shipped \
           one moved Sandal and Flip Flops up (+6.5 and +3.4 pp, 6 and 3 photos) and Shoes down \
           (-0.5 pp), too few photos to call a gain. Wider last stages (variants i and j, \
           `48:4/4v,64v,128/2v,192v,256`, 53 MFLOP, 30 epochs to stay within 45 minutes) \
           scored 0.9517 and 0.9485 against b and d's 0.9493 and 0.9492: +0.08 pp on the mean \
           of two seeds, noise, for 1.6x the compute; the last stages' width is not what holds \
           the station model back at this budget. More of the catalogue look (60% of products \
           instead of 40%, variants k and l) trades station frames for catalogue photos: \
           validation catalogue 97.29 / 97.50% (b and d: 97.16 / 97.16%), mild -0.3 pp and hard \
           -0.9 pp on the two-seed means, score 0.9470 / 0.9454; the catalogue gain is a third of \
           the 0.7 pp that separates `robust` from the 97.2% asked on test.\n\
         - Starting from a catalogue model (variants m and n, `--init-from`): `fast`'s recipe \
           retrained as runs/fast-s1 (15 epochs, 11 minutes; it reproduces `fast`'s validation \
           accuracy, 97.72% at epoch 15), then 24 station epochs at lr 0.002 so that both \
           stages stay within 45 minutes. The catalogue accuracy does not survive the station \
           epochs: it falls to 94-96% in the first ones and ends at 96.79 / 96.68% (b and d: \
           97.16%), with mild 93.15 / 93.36% and hard 90.44 / 90.55% (b and d: 94.85 / 94.58%, \
           92.78 / 93.02%), score 0.9346 / 0.9353. The station epochs decide, not the starting \
           point, and 24 of them are fewer than 36.\n\
         - Without the other kinds as negatives (variants o and p, b's recipe otherwise): \
           catalogue 97.34 / 97.03%, mild 95.22 / 94.80%, hard 92.59 / 92.22%, score 0.9505 / \
           0.9468; on the two-seed means catalogue +0.03, mild +0.30 and hard -0.50 pp against b \
           and d, about the seed noise. The negatives are not what costs the catalogue photos. \
           What they buy: o, exported and calibrated the same way (`training export`, \
           `calibrate`, `station`), leaves 29.26% of the 458 validation photos of other kinds \
           unreported at 0.6, `robust` 79.91% (50% asked): they are what keeps a sock or a \
           lipstick from being tagged. Some of them are products the classes own: styles.csv \
           files 6 photos under `Perfumes` with article type `Perfume and Body Mist` (Fragrance's \
           largest), and bags, travel accessories and a wallet under `Accessories` and `Free \
           Gifts`, all trained towards a flat output; `training negatives` could leave out \
           other kinds whose article type also occurs in a class.\n\
         - Averaging forward passes (`benches/experiments/average_models.py`, then `training \
           station`; validation, against `robust` alone): `robust` on the frame and its mirror \
           image: catalogue +0.00, mild +0.37, hard -0.21, tray +0.05 pp; `robust` and variant d \
           averaged: +0.08 / +0.24 / +0.63 / -0.35 pp; both, each with its mirror (four \
           passes): +0.11 / +0.45 / +0.40 / -0.22 pp. Two to four times the compute for mild \
           and hard gains about the size of the seed noise, and the catalogue figure, the goal \
           furthest off (97.2% asked), does not move: not shipped.\n\
         - Sweep weight decay and width at the chosen learning rate, with 2-3 seeds per point: the \
           standard error of the validation accuracy is {se_pp:.2} pp, so single-run gaps of that \
           size do not rank settings.\n\
         - `fast`: stronger regularisation (dropout 0.3, weight decay 5e-4) raised validation \
           accuracy at both widths, yet the train-val gap stays above 2 pp; augmentation is the \
           next lever, and 2-3 seeds per variant would tell which of these sub-point \
           differences are real.\n\
         - Not tried: distillation from a larger teacher trained without the 45-minute cap (the \
           teachers of variant c are `fast` and `tuned`, no stronger than the student on \
           catalogue photos); it would keep the on-device cost unchanged."
    )?;
    Ok(md)
}

/// The station-frame columns: what a camera at a station sees, float and int8, val and test.
fn station_table(md: &mut String, inp: &Inputs, img: &str) -> Result<()> {
    writeln!(md, "## Station frames\n")?;
    writeln!(
        md,
        "The catalogue figure alone does not say whether a model works at a station. Each model \
         is also scored, through `tag`'s own preprocessing and tract, on frames rendered from \
         the same photos (`training station`; station.rs): the product cut out of its white \
         background and put on a belt (`mild`: grey, dark or coloured belt, 80-100% size, up to \
         8% off-centre, +-5 deg, either orientation, mild light change, JPEG 80-90), the same \
         with smaller products, +-15 deg, blur, noise and JPEG 55-80 on any surface (`hard`), \
         on a light tray (`tray`), the catalogue photo mirrored, and empty belts and trays \
         (`empty`: the share reported as a product at the station threshold 0.6, lower is \
         better). `other kinds` is the share of photos of the classes the models do not know \
         (socks, ties, scarves, make-up, ...; models/negatives.json) that stay unreported \
         (below 0.6 or `none`), next to the share of the 13 classes' catalogue photos still \
         tagged right at or above 0.6. Frames are deterministic per image (seeded); val frames \
         are used for choices, test frames only reported.\n"
    )?;
    let rows: Vec<(&str, &str, &StationScores, Option<&StationScores>)> = inp
        .cards
        .iter()
        .filter_map(|c| c.station.as_ref().map(|s| (c, s)))
        .flat_map(|(c, s)| {
            [
                ("float", s.float_test.as_ref(), s.float_val.as_ref()),
                ("int8", s.int8_test.as_ref(), s.int8_val.as_ref()),
            ]
            .into_iter()
            .filter_map(move |(form, t, v)| t.map(|t| (c.model.name.as_str(), form, t, v)))
        })
        .collect();
    for c in &inp.cards {
        if let Some(t) = &c.temperature {
            writeln!(
                md,
                "`{}` is calibrated: its logits are divided by a temperature of {:.2} folded \
                 into its head (`training calibrate`, temperature.rs), the value with the lowest \
                 negative log-likelihood on {} ({} frames; NLL {:.3} -> {:.3}, expected \
                 calibration error {:.3} -> {:.3}). Accuracy does not change; what is above the \
                 threshold does.\n",
                c.model.name,
                t.scaling.temperature,
                t.scaling.fitted_on,
                t.scaling.frames,
                t.scaling.nll_before,
                t.scaling.nll_after,
                t.scaling.ece_before,
                t.scaling.ece_after
            )?;
        }
    }
    if rows.is_empty() {
        writeln!(md, "No station figures in the model cards yet.\n")?;
        return Ok(());
    }
    writeln!(
        md,
        "| model | form | catalogue test | mirrored | station-mild | station-hard | tray | empty reported as product | other kinds unreported | catalogue right above 0.6 | val: mild / hard / empty |"
    )?;
    writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|")?;
    for (name, form, t, v) in rows {
        writeln!(
            md,
            "| {name} | {form} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            pct(t.catalogue),
            pct(t.mirrored),
            pct(t.mild),
            pct(t.hard),
            pct(t.tray),
            pct(t.empty_as_product),
            t.others_not_reported.map_or("-".into(), pct),
            pct(t.catalogue_right_above_threshold),
            v.map_or("-".into(), |v| format!(
                "{} / {} / {}",
                pct(v.mild),
                pct(v.hard),
                pct(v.empty_as_product)
            )),
        )?;
    }
    if let Some(t) = inp
        .cards
        .iter()
        .find_map(|c| c.station.as_ref().and_then(|s| s.float_test.as_ref()))
    {
        writeln!(
            md,
            "\n{} test images per column, {} empty frames, {} photos of other kinds. Sample \
             frames (test split; columns: catalogue, mirrored, mild, hard, tray, empty), made by \
             `cargo run --release -p training -- frames --data DIR --part test --grid \
             docs/img/station-frames.png`:\n\n![station frames]({img}/station-frames.png)\n",
            t.images, t.empty_frames, t.other_kinds
        )?;
    }
    if !inp.station_runs.is_empty() {
        writeln!(
            md,
            "### Station model variants (validation)\n\nEach variant is scored at its best \
             checkpoint: the mean of catalogue, `mild` and `hard` validation accuracy less the \
             share of empty validation frames reported as a product (the score each run also \
             uses to keep its best epoch). `(shipped)` marks the runs behind models/robust.json \
             and models/multihead.json (same network, settings and seed). Logs in \
             docs/data/station-runs/.\n"
        )?;
        writeln!(
            md,
            "| variant | MFLOP | seed | epochs | lr | started from | catalogue share | cut-out jitter | other kinds as negatives | label smoothing | distilled from | weight average (EMA) | best epoch | score | val catalogue | val mild | val hard | val empty as product | images/s |"
        )?;
        writeln!(
            md,
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
        )?;
        let shipped = |r: &ArchRun| {
            ["robust", "multihead"]
                .iter()
                .filter_map(|n| inp.cards.iter().find(|c| c.model.name == *n))
                .any(|c| r.is_behind(&c.model))
        };
        for r in &inp.station_runs {
            let b = r.best();
            let st = r.config.recipe.station.as_ref();
            let mut ips: Vec<f64> = r.history.iter().map(|h| h.images_per_s).collect();
            ips.sort_by(f64::total_cmp);
            writeln!(
                md,
                "| {}{} | {:.1} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.4} | {} | {} | {} | {} | {:.0} |",
                r.variant,
                match (shipped(r), r.config.recipe.heads.is_empty()) {
                    (true, true) => " (shipped)",
                    (true, false) => " (extra heads, shipped)",
                    (false, false) => " (extra heads)",
                    (false, true) => "",
                },
                r.config.arch.flops() as f64 / 1e6,
                r.config.recipe.seed,
                r.config.epochs,
                r.config.recipe.lr,
                r.config.recipe.init_from.as_deref().map_or("-".into(), file_name),
                st.map_or("-".into(), |s| format!("{:.2}", s.catalogue_share)),
                st.map_or("-", |s| if s.cut_jitter { "yes" } else { "no" }),
                st.map_or("-", |s| if s.negatives.is_some() { "yes" } else { "no" }),
                r.config.recipe.label_smoothing,
                r.config.recipe.distill.as_ref().map_or("-".into(), |d| format!(
                    "{} (weight {}, T {})",
                    d.teachers
                        .iter()
                        .map(|t| std::path::Path::new(t)
                            .file_stem()
                            .map_or(t.clone(), |s| s.to_string_lossy().into_owned()))
                        .collect::<Vec<_>>()
                        .join(" + "),
                    d.weight,
                    d.temperature
                )),
                r.config.recipe.ema.map_or("-".into(), |d| format!("decay {d}")),
                b.epoch,
                b.selection_score(),
                pct(b.val_acc),
                b.val_mild.map_or("-".into(), pct),
                b.val_hard.map_or("-".into(), pct),
                b.val_empty_product.map_or("-".into(), pct),
                ips[ips.len() / 2],
            )?;
        }
        writeln!(md)?;
    }
    Ok(())
}

/// The last component of a path as written in a run's config (`runs/fast-s1` -> `fast-s1`).
fn file_name(path: &str) -> String {
    std::path::Path::new(path)
        .file_name()
        .map_or(path.to_string(), |s| s.to_string_lossy().into_owned())
}

/// The multi-head model: each extra head's figures and whether the heads changed the class.
fn heads_section(md: &mut String, inp: &Inputs, img: &str) -> Result<()> {
    let Some(card) = inp.cards.iter().find(|c| c.heads.is_some()) else {
        return Ok(());
    };
    let h = card.heads.as_ref().expect("found");
    let k = &card.model;
    writeln!(
        md,
        "## Multi-head model: article type, colour, gender, usage\n"
    )?;
    let heads: Vec<String> = k
        .training
        .recipe
        .heads
        .iter()
        .map(|h| format!("`{}` ({} labels)", h.name, h.labels.len()))
        .collect();
    writeln!(
        md,
        "`{}` is `robust`'s network and recipe with one dense layer more per attribute of \
         styles.csv on the same pooled features: {} (heads.rs: article types with fewer than \
         200 training photos fold into `other`; the 46 base colours group into a 15-colour \
         palette; rare usages and missing values are masked, never guessed). Each head's \
         cross-entropy is added with weight {} over the photos that have a value. Figures \
         through tract on the test split's photos and their station frames, over the photos \
         whose value the head knows (`{}`):\n",
        k.name,
        heads.join(", "),
        k.training.recipe.heads.first().map_or(0.0, |h| h.weight),
        h.reproduce
    )?;
    writeln!(
        md,
        "| head | form | catalogue accuracy | catalogue macro-F1 | station-mild accuracy | station-hard accuracy | photos |"
    )?;
    writeln!(md, "|---|---|---|---|---|---|---|")?;
    for (form, scores) in [("float", &h.float), ("int8", &h.int8)] {
        let names: Vec<&str> = scores
            .iter()
            .filter(|s| s.frames == "catalogue")
            .map(|s| s.head.as_str())
            .collect();
        for name in names {
            let get = |frames: &str| scores.iter().find(|s| s.head == name && s.frames == frames);
            let cat = get("catalogue").expect("catalogue row");
            writeln!(
                md,
                "| {name} | {form} | {} | {:.3} | {} | {} | {} |",
                pct(cat.accuracy),
                cat.macro_f1,
                get("mild").map_or("-".into(), |s| pct(s.accuracy)),
                get("hard").map_or("-".into(), |s| pct(s.accuracy)),
                cat.n
            )?;
        }
    }
    if let Some(conf) = &h.article_type_confusion {
        let file = Path::new(conf)
            .file_name()
            .map_or(conf.clone(), |f| f.to_string_lossy().into_owned());
        writeln!(
            md,
            "\nArticle-type confusion on the test photos (float):\n\n![article type confusion]({img}/{file})\n"
        )?;
    }
    // The class (subCategory) with and without heads, per seed (validation): the runs whose
    // network, length and recipe equal the card's but for the heads and the seed.
    let without_heads = |arch: &crate::model::Arch, recipe: &crate::train::Recipe| {
        let arch = crate::model::Arch {
            heads: vec![],
            ..arch.clone()
        };
        let recipe = crate::train::Recipe {
            heads: vec![],
            seed: 0,
            ..recipe.clone()
        };
        (arch, recipe)
    };
    let Some(card_arch) = k.arch.cnn() else {
        return Ok(());
    };
    let card_recipe = without_heads(card_arch, &k.training.recipe);
    let runs: Vec<&ArchRun> = inp
        .station_runs
        .iter()
        .filter(|r| {
            r.config.epochs == k.training.epochs
                && without_heads(&r.config.arch, &r.config.recipe) == card_recipe
        })
        .collect();
    if !runs.is_empty() {
        writeln!(
            md,
            "Did the extra heads change the class? The same recipe with and without them, per \
             seed, at each run's best checkpoint (validation; logs in docs/data/station-runs/):\n"
        )?;
        writeln!(
            md,
            "| run | extra heads | seed | best epoch | val catalogue | val mild | val hard | val empty as product | score |"
        )?;
        writeln!(md, "|---|---|---|---|---|---|---|---|---|")?;
        for r in runs {
            let b = r.best();
            writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {:.4} |",
                r.variant,
                if r.config.recipe.heads.is_empty() {
                    "-".to_string()
                } else {
                    format!(
                        "{} (weight {})",
                        r.config.recipe.heads.len(),
                        r.config.recipe.heads[0].weight
                    )
                },
                r.config.recipe.seed,
                b.epoch,
                pct(b.val_acc),
                b.val_mild.map_or("-".into(), pct),
                b.val_hard.map_or("-".into(), pct),
                b.val_empty_product.map_or("-".into(), pct),
                b.selection_score()
            )?;
        }
        writeln!(md)?;
    }
    Ok(())
}

/// (epoch, validation accuracy) per epoch: what the sweep and comparison plots draw.
fn val_acc_points(history: &[EpochLog]) -> Vec<(f64, f64)> {
    history
        .iter()
        .map(|h| (h.epoch as f64, h.val_acc))
        .collect()
}

/// Writes the report and its plots.
pub fn write(models: &Path, data: &Path, docs: &Path) -> Result<PathBuf> {
    let inp = load(models, data)?;
    let img = docs.join("img");
    std::fs::create_dir_all(&img)?;
    if !inp.sweep.is_empty() {
        let runs: Vec<(f64, Vec<(f64, f64)>)> = inp
            .sweep
            .iter()
            .map(|r| (r.lr, val_acc_points(&r.history)))
            .collect();
        crate::plots::sweep(&runs, &img.join("sweep-lr.png"))?;
    }
    let named: Vec<(&str, Vec<(f64, f64)>)> = inp
        .cards
        .iter()
        .zip(&inp.histories)
        .filter(|(_, h)| !h.is_empty())
        .map(|(c, h)| (c.model.name.as_str(), val_acc_points(h)))
        .collect();
    if !named.is_empty() {
        crate::plots::compare_val(&named, &img.join("compare-val.png"))?;
    }
    lite::plot(&inp, &img)?;
    let md = render(&inp, "img")?;
    let out = docs.join("REPORT.md");
    crate::util::write_atomic(&out, md.as_bytes())?;
    Ok(out)
}
