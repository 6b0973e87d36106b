//! docs/REPORT.md: the experiment report, rendered only from saved results so no number in it can
//! drift from the models: the model cards (`models/<name>.json`) and the per-epoch logs kept in
//! `docs/data/` (copied there from `runs/` by [`collect`], so a fresh clone regenerates the same
//! report without the run folders).

pub mod card;
mod catalogue;
mod heads;
pub mod lite;
pub mod plots;
mod probe;
pub mod readme;
mod real;
mod station;

use crate::eval::runner::StationScores;
use crate::fit::{EpochLog, TrainConfig};
use crate::report::card::ModelCard as Card;
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
    pub fn is_behind(&self, card: &crate::report::card::ExportedModel) -> bool {
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
    catalogue::intro(&mut md, inp)?;
    catalogue::side_by_side(&mut md, inp)?;
    station::section(&mut md, inp, img)?;
    heads::section(&mut md, inp, img)?;
    real::section(&mut md, inp, img)?;
    probe::section(&mut md, inp)?;
    lite::section(&mut md, inp, img)?;
    catalogue::per_class(&mut md, inp)?;
    catalogue::baseline(&mut md, inp)?;
    catalogue::tuned(&mut md, inp, img)?;
    catalogue::augmented(&mut md, inp, img)?;
    catalogue::fast(&mut md, inp)?;
    catalogue::curves(&mut md, inp, img)?;
    catalogue::int8(&mut md, inp)?;
    catalogue::next_steps(&mut md, inp)?;
    Ok(md)
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
        crate::report::plots::sweep(&runs, &img.join("sweep-lr.png"))?;
    }
    let named: Vec<(&str, Vec<(f64, f64)>)> = inp
        .cards
        .iter()
        .zip(&inp.histories)
        .filter(|(_, h)| !h.is_empty())
        .map(|(c, h)| (c.model.name.as_str(), val_acc_points(h)))
        .collect();
    if !named.is_empty() {
        crate::report::plots::compare_val(&named, &img.join("compare-val.png"))?;
    }
    lite::plot(&inp, &img)?;
    let md = render(&inp, "img")?;
    let out = docs.join("REPORT.md");
    crate::util::write_atomic(&out, md.as_bytes())?;
    Ok(out)
}

/// The last component of a path as written in a run's config (`runs/fast-s1` -> `fast-s1`).
fn file_name(path: &str) -> String {
    std::path::Path::new(path)
        .file_name()
        .map_or(path.to_string(), |s| s.to_string_lossy().into_owned())
}
