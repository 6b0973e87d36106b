//! The training loop: AdamW, cosine learning-rate decay, cross-entropy, a checkpoint after every
//! epoch (model + optimizer + history, each written atomically) and `--resume` that continues
//! exactly where a killed run stopped.
//!
//! burn's `Learner` was evaluated and not used: its checkpoints are not written atomically, its
//! data pipeline would not reuse our decoded u8 cache, and its dashboard needs a terminal. The loop
//! itself is ~100 lines.

use crate::augment::Augment;
use crate::cache::ImageCache;
use crate::cutout::{product_mask_with, CutStyle};
use crate::distill::{self, Distill, TeacherTargets};
use crate::ema::Ema;
use crate::heads::{Head, HeadTargets};
use crate::model::{Arch, Cnn};
use crate::split::Entry;
use crate::station::{self, mix, Level, Product, Scene};
use crate::util::{progress, write_atomic, write_json};
use anyhow::{bail, Context, Result};
use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::{Bytes, TensorData};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tagger_core::preprocess::{normalize_into, Normalization, HEIGHT, IMAGE_LEN, WIDTH};

/// Training for stations: products composited onto belts and trays every epoch, a
/// `none` output trained on empty surfaces, and products of other kinds trained towards a flat
/// output so they stay below the station threshold (outlier exposure).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StationTraining {
    /// The compositing scene (station.rs `Scene::training`).
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

fn is_zero_f32(v: &f32) -> bool {
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

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

fn is_zero_usize(v: &usize) -> bool {
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

/// Learning rate at `step` of `total`: cosine from `lr` down to 1% of it. A pure function of the
/// step, so a resumed run follows the same schedule.
pub fn cosine_lr(lr: f64, step: usize, total: usize) -> f64 {
    let t = step as f64 / total.max(1) as f64;
    let floor = lr * 0.01;
    floor + 0.5 * (lr - floor) * (1.0 + (std::f64::consts::PI * t).cos())
}

/// Learning rate at `step` with a linear warm-up over the first `warmup` steps.
pub fn scheduled_lr(lr: f64, step: usize, total: usize, warmup: usize) -> f64 {
    let ramp = if warmup > 0 {
        ((step + 1) as f64 / warmup as f64).min(1.0)
    } else {
        1.0
    };
    cosine_lr(lr, step, total) * ramp
}

/// One training sample.
#[derive(Debug, Clone, Copy)]
pub enum Sample {
    /// A product photo of the split and its class.
    Product(u64, usize),
    /// A photo of another kind (negatives.json).
    Other(u64),
    /// An empty surface, numbered.
    Empty(u64),
}

/// A batch as plain data, built off the training thread.
pub struct Batch {
    pub input: Vec<f32>,
    /// Soft targets, `n x outputs`.
    pub targets: Vec<f32>,
    /// The hard class per sample, -1 for other kinds (not counted in training accuracy).
    pub hard: Vec<i64>,
    /// Extra heads: `n x heads` target indices, -1 where masked (empty frames, other kinds,
    /// missing values).
    pub aux: Vec<i32>,
    pub n: usize,
}

/// The network input of one training sample, or None for a corrupt image.
fn sample_input(recipe: &Recipe, cache: &ImageCache, s: Sample, epoch: usize) -> Option<Vec<u8>> {
    let seed = mix(recipe.seed
        ^ ((epoch as u64) << 32)
        ^ mix(match s {
            Sample::Product(id, _) | Sample::Other(id) => id,
            Sample::Empty(k) => !k,
        }));
    let render = |product: Option<Product>, scene: &Scene| {
        station::network_frame(product, scene, mix(seed ^ 1), seed).to_chw()
    };
    match (s, &recipe.station, &recipe.augment) {
        (Sample::Empty(_), Some(st), _) => Some(render(None, &st.scene)),
        (Sample::Product(id, _) | Sample::Other(id), Some(st), _) => {
            let img = cache.get(id)?;
            let mut rng = rand::rngs::StdRng::seed_from_u64(mix(seed ^ 2));
            let style = match (st.cut_jitter, rng.random_range(0..20)) {
                (false, _) | (true, 0..14) => CutStyle::Standard,
                (true, 14..17) => CutStyle::Loose,
                (true, _) => CutStyle::Tight,
            };
            let mask = product_mask_with(img, style);
            // Recipes without room scenes draw nothing more: their frames stay as they were.
            let scene = if rng.random_bool(st.catalogue_share as f64) {
                Scene::catalogue()
            } else if st.room_share > 0.0 && rng.random_bool(st.room_share as f64) {
                let paired = matches!(s, Sample::Product(_, c) if st.pair_classes.contains(&c));
                Scene::room(if paired { 0.7 } else { 0.0 })
            } else {
                st.scene.clone()
            };
            Some(render(
                Some(Product {
                    chw: img,
                    mask: &mask,
                }),
                &scene,
            ))
        }
        (Sample::Product(id, _) | Sample::Other(id), None, Some(aug)) => {
            let img = cache.get(id)?;
            let mut out = vec![0u8; IMAGE_LEN];
            aug.apply(
                img,
                &mut out,
                (recipe.seed ^ ((epoch as u64) << 32)) ^ id.wrapping_mul(0x9E37_79B9_7F4A_7C15),
            );
            Some(out)
        }
        (Sample::Product(id, _) | Sample::Other(id), None, None) => {
            cache.get(id).map(<[u8]>::to_vec)
        }
        (Sample::Empty(_), None, _) => None,
    }
}

/// One sample of a batch: input, soft targets, hard class, extra-head targets.
type BuiltSample = (Vec<f32>, Vec<f32>, i64, Vec<i32>);

/// Builds one batch on rayon's workers: augmentation and compositing never run on the thread
/// that trains. `labels`: the outputs (`none` last for station recipes); `teacher`: distillation
/// targets of the product photos (distill.rs).
#[allow(clippy::too_many_arguments)]
pub fn make_batch(
    recipe: &Recipe,
    labels: &[String],
    norm: &Normalization,
    cache: &ImageCache,
    samples: &[Sample],
    epoch: usize,
    teacher: Option<&TeacherTargets>,
    heads: &HeadTargets,
) -> Batch {
    let k = labels.len();
    let h = recipe.heads.len();
    let none = recipe.station.as_ref().map(|_| k - 1);
    let products = none.unwrap_or(k);
    let eps = recipe.label_smoothing as f32;
    let built: Vec<BuiltSample> = samples
        .par_iter()
        .filter_map(|&s| {
            let chw = sample_input(recipe, cache, s, epoch)?;
            let mut x = vec![0f32; IMAGE_LEN];
            normalize_into(&chw, norm, &mut x);
            let mut t = vec![0f32; k];
            let hard = match s {
                Sample::Product(_, c) => c as i64,
                Sample::Empty(_) => none? as i64,
                Sample::Other(_) => -1,
            };
            if hard >= 0 {
                t.iter_mut().for_each(|v| *v = eps / k as f32);
                t[hard as usize] += 1.0 - eps;
                if let (Sample::Product(id, _), Some(tt), Some(d)) = (s, teacher, &recipe.distill) {
                    if let Some(p) = tt.get(id) {
                        distill::blend(&mut t, p, d.weight);
                    }
                }
            } else {
                t[..products]
                    .iter_mut()
                    .for_each(|v| *v = 1.0 / products as f32);
            }
            let aux = match s {
                Sample::Product(id, _) => heads.get(id).map(<[i32]>::to_vec),
                _ => None,
            }
            .unwrap_or_else(|| vec![-1; h]);
            Some((x, t, hard, aux))
        })
        .collect();
    let n = built.len();
    let (mut input, mut targets, mut hard, mut aux) = (
        Vec::with_capacity(n * IMAGE_LEN),
        Vec::with_capacity(n * k),
        Vec::with_capacity(n),
        Vec::with_capacity(n * h),
    );
    for (x, t, c, a) in built {
        input.extend(x);
        targets.extend(t);
        hard.push(c);
        aux.extend(a);
    }
    Batch {
        input,
        targets,
        hard,
        aux,
        n,
    }
}

/// One row of logits per image of a batch.
fn logit_rows(model: &Cnn, x: Tensor<4>) -> Vec<Vec<f32>> {
    let y = model.forward(x);
    let [_, classes] = y.dims();
    let v: Vec<f32> = y
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .expect("f32 logits");
    v.chunks(classes).map(<[f32]>::to_vec).collect()
}

/// Network-sized frames through a (non-training) model: logits per frame.
pub fn predict_frames(
    model: &Cnn,
    frames: &[Vec<u8>],
    norm: &Normalization,
    device: &Device,
) -> Vec<Vec<f32>> {
    let mut out = vec![];
    for chunk in frames.chunks(256) {
        let mut input = vec![0f32; chunk.len() * IMAGE_LEN];
        for (f, o) in chunk.iter().zip(input.chunks_mut(IMAGE_LEN)) {
            normalize_into(f, norm, o);
        }
        let x = Tensor::<4>::from_data(
            TensorData::new(input, [chunk.len(), 3, HEIGHT as usize, WIDTH as usize]),
            device,
        );
        out.extend(logit_rows(model, x));
    }
    out
}

/// Station validation frames, rendered once per run.
struct StationVal {
    mild: Vec<Vec<u8>>,
    hard: Vec<Vec<u8>>,
    truth: Vec<usize>,
    empty: Vec<Vec<u8>>,
}

impl StationVal {
    fn new(cache: &ImageCache, val_set: &[Entry]) -> Self {
        let present: Vec<Entry> = val_set
            .iter()
            .copied()
            .filter(|e| cache.get(e.0).is_some())
            .collect();
        let frames = |l| crate::station_eval::level_inputs(l, "val", &present, 400, cache);
        Self {
            mild: frames(Level::Mild),
            hard: frames(Level::Hard),
            truth: present.iter().map(|e| e.1).collect(),
            empty: frames(Level::Empty),
        }
    }

    /// (mild accuracy, hard accuracy, share of empty frames reported as a product).
    fn score(&self, model: &Cnn, cfg: &TrainConfig, device: &Device) -> (f64, f64, f64) {
        let norm = &cfg.normalization;
        let acc = |frames: &[Vec<u8>]| {
            let logits = predict_frames(model, frames, norm, device);
            accuracy(&logits, &self.truth)
        };
        let empty = predict_frames(model, &self.empty, norm, device);
        let reported = empty
            .iter()
            .filter(|l| crate::station_eval::reported(l, &cfg.labels).is_some())
            .count();
        (
            acc(&self.mild),
            acc(&self.hard),
            reported as f64 / self.empty.len().max(1) as f64,
        )
    }
}

/// A batch of normalised (unaugmented) images and their targets, ready for burn: what
/// evaluation feeds.
pub fn batch_tensors(
    cache: &ImageCache,
    entries: &[Entry],
    norm: &Normalization,
    device: &Device,
) -> (Tensor<4>, Tensor<1, Int>, usize) {
    let mut input = vec![0f32; entries.len() * IMAGE_LEN];
    let mut targets = Vec::with_capacity(entries.len());
    let mut n = 0;
    for &(id, class) in entries {
        let Some(img) = cache.get(id) else { continue };
        normalize_into(img, norm, &mut input[n * IMAGE_LEN..(n + 1) * IMAGE_LEN]);
        targets.push(class as i64);
        n += 1;
    }
    input.truncate(n * IMAGE_LEN);
    let x = Tensor::<4>::from_data(
        TensorData::new(input, [n, 3, HEIGHT as usize, WIDTH as usize]),
        device,
    );
    let y = Tensor::<1, Int>::from_data(TensorData::new(targets, [n]), device);
    (x, y, n)
}

/// Logits of a (non-training) model for `entries`, plus the classes of those that were present.
pub fn predict(
    model: &Cnn,
    cache: &ImageCache,
    entries: &[Entry],
    norm: &Normalization,
    device: &Device,
    what: &str,
) -> (Vec<Vec<f32>>, Vec<usize>) {
    let bar = progress(entries.len() as u64, what);
    let mut logits = vec![];
    let mut targets = vec![];
    for chunk in entries.chunks(256) {
        let (x, _, n) = batch_tensors(cache, chunk, norm, device);
        if n > 0 {
            logits.extend(logit_rows(model, x));
        }
        targets.extend(
            chunk
                .iter()
                .filter(|(id, _)| cache.get(*id).is_some())
                .map(|&(_, c)| c),
        );
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    (logits, targets)
}

/// Validation accuracy of each extra head over the photos that have a value, as
/// `name=acc name=acc`.
fn head_accuracies(
    model: &Cnn,
    cfg: &TrainConfig,
    cache: &ImageCache,
    val_set: &[Entry],
    heads: &HeadTargets,
    device: &Device,
) -> String {
    let mut hits = vec![0usize; cfg.recipe.heads.len()];
    let mut counted = vec![0usize; cfg.recipe.heads.len()];
    let present: Vec<Entry> = val_set
        .iter()
        .copied()
        .filter(|e| cache.get(e.0).is_some())
        .collect();
    for chunk in present.chunks(256) {
        let (x, _, _) = batch_tensors(cache, chunk, &cfg.normalization, device);
        let (_, aux) = model.forward_all(x);
        for (j, a) in aux.into_iter().enumerate() {
            let pred: Vec<i64> = a
                .argmax(1)
                .into_data()
                .convert::<i64>()
                .try_to_vec::<i64>()
                .expect("i64 predictions");
            for (p, &(id, _)) in pred.iter().zip(chunk) {
                if let Some(&t) = heads.get(id).and_then(|t| t.get(j)) {
                    if t >= 0 {
                        counted[j] += 1;
                        hits[j] += (*p == t as i64) as usize;
                    }
                }
            }
        }
    }
    cfg.recipe
        .heads
        .iter()
        .enumerate()
        .map(|(j, h)| {
            format!(
                "{}={:.4}",
                h.name,
                hits[j] as f64 / counted[j].max(1) as f64
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn mean_ce(logits: &[Vec<f32>], targets: &[usize]) -> f64 {
    let mut total = 0.0;
    for (l, &t) in logits.iter().zip(targets) {
        let max = l.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        let lse = max + l.iter().map(|&v| (v as f64 - max).exp()).sum::<f64>().ln();
        total += lse - l[t] as f64;
    }
    total / targets.len().max(1) as f64
}

fn accuracy(logits: &[Vec<f32>], targets: &[usize]) -> f64 {
    let hits = logits
        .iter()
        .zip(targets)
        .filter(|(l, &t)| tagger_core::classify::argmax(l) == t)
        .count();
    hits as f64 / targets.len().max(1) as f64
}

/// Writes a module's weights atomically (any burn module: the CNNs, the fine-tuned backbone).
pub fn save_module<M: Module>(model: &M, path: &Path) -> Result<()> {
    let bytes = model
        .clone()
        .into_record()
        .into_bytes()
        .map_err(|e| anyhow::anyhow!("cannot serialise model: {e:?}"))?;
    write_atomic(path, &bytes)
}

/// Loads weights saved by [`save_module`] into `fresh`, a module of the same shape.
pub fn load_weights<M: Module>(fresh: M, path: &Path) -> Result<M> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read checkpoint {}", path.display()))?;
    let record = burn::store::ModuleRecord::from_bytes(Bytes::from_bytes_vec(bytes))
        .map_err(|e| anyhow::anyhow!("{} is not a model checkpoint: {e:?}", path.display()))?;
    fresh.try_load_record(record).map_err(|e| {
        anyhow::anyhow!(
            "checkpoint {} does not fit the architecture: {e:?}",
            path.display()
        )
    })
}

/// Loads weights saved by a run into a fresh model of `arch` on `device`.
pub fn load_module(arch: &Arch, path: &Path, device: &Device) -> Result<Cnn> {
    load_weights(arch.init(device), path)
}

/// `cfg`'s freshly initialised network with the convolutions, batch norms and matching head
/// outputs of the best checkpoint in run directory `src` (`--init-from`), and how many seconds
/// that run trained.
pub fn start_from(cfg: &TrainConfig, src: &Path, device: &Device) -> Result<(Cnn, f64)> {
    let src_paths = RunPaths::new(src);
    let (src_cfg, src_state) = src_paths
        .read()
        .with_context(|| format!("--init-from {}", src.display()))?;
    if src_cfg.arch.convs() != cfg.arch.convs() {
        bail!(
            "--init-from {}: its convolutions differ from this run's (pass the same --layers)",
            src.display()
        );
    }
    let columns: Vec<Option<usize>> = cfg
        .labels
        .iter()
        .map(|l| src_cfg.labels.iter().position(|s| s == l))
        .collect();
    let old = load_module(&src_cfg.arch, &src_paths.best(), device)?;
    eprintln!(
        "starting from {} (epoch {} of {}, {} of {} outputs carried over)",
        src.display(),
        src_state.best_epoch,
        src_cfg.name,
        columns.iter().flatten().count(),
        columns.len()
    );
    Ok((
        cfg.arch.init(device).transplant(old, columns.as_slice()),
        src_state.train_seconds,
    ))
}

/// What a run trains on: the decoded images and the parts of the split.
#[derive(Clone, Copy)]
pub struct TrainData<'a> {
    pub cache: &'a ImageCache,
    pub train: &'a [Entry],
    pub val: &'a [Entry],
    /// The other kinds' ids, used by station runs as negatives.
    pub negatives: &'a [u64],
    /// Targets of the extra heads; empty for a single-head run.
    pub heads: &'a HeadTargets,
}

/// Trains (or resumes) a run in `paths.dir`. `stop_after` ends the call after that many epochs
/// (the schedule still spans `cfg.epochs`), so a long run can be split across sessions.
pub fn train(
    cfg: &TrainConfig,
    paths: &RunPaths,
    data: TrainData,
    resume: bool,
    stop_after: Option<usize>,
) -> Result<RunState> {
    let TrainData {
        cache,
        train: train_set,
        val: val_set,
        negatives,
        heads,
    } = data;
    if heads.is_empty() != cfg.recipe.heads.is_empty() {
        bail!(
            "the run has {} extra head(s) but no targets for them were given",
            cfg.recipe.heads.len()
        );
    }
    if train_set.is_empty() || val_set.is_empty() {
        bail!("the split has an empty train or validation set: is the data directory complete?");
    }
    let device = Device::flex();
    device.seed(cfg.recipe.seed);
    let ad = device.clone().autodiff();
    let mut model = cfg.arch.init(&ad);
    let mut optim = AdamWConfig::new()
        .with_weight_decay(cfg.recipe.weight_decay as f32)
        .init();
    let mut state = RunState::default();
    let resuming = resume && paths.state().is_file();

    if resuming {
        let (saved, saved_state) = paths.read()?;
        if saved != *cfg {
            bail!(
                "{} was started with other settings; resume with the same options or use a new --out",
                paths.dir.display()
            );
        }
        state = saved_state;
        model = load_module(&cfg.arch, &paths.last(), &ad)?;
        let bytes = std::fs::read(paths.optimizer())?;
        optim = optim
            .from_bytes(Bytes::from_bytes_vec(bytes))
            .map_err(|e| anyhow::anyhow!("optimizer checkpoint unreadable: {e:?}"))?;
        eprintln!(
            "resuming {} after epoch {} (best val acc {:.4} at epoch {})",
            cfg.name, state.epochs_done, state.best_val_acc, state.best_epoch
        );
    } else if paths.state().is_file() {
        bail!(
            "{} already holds a run; pass --resume to continue it or choose another --out",
            paths.dir.display()
        );
    } else if let Some(src) = &cfg.recipe.init_from {
        let (start, seconds) = start_from(cfg, Path::new(src), &device)?;
        // Through a record, as a resumed run loads its checkpoint onto the autodiff device.
        model = cfg.arch.init(&ad).load_record(start.into_record());
        // The source run's training is part of what this model cost.
        state.train_seconds = seconds;
    }
    let mut ema = cfg.recipe.ema.map(|d| Ema::new(d, model.valid()));
    if let (Some(e), true) = (ema.as_mut(), resuming) {
        e.model = load_module(&cfg.arch, &paths.ema(), &device)?;
    }
    write_json(&paths.config(), cfg)?;
    state.skipped_corrupt = train_set
        .iter()
        .chain(val_set)
        .filter(|(id, _)| cache.get(*id).is_none())
        .count();

    let empties = cfg.recipe.station.as_ref().map_or(0, |st| {
        (train_set.len() as f32 * st.empty_share).round() as u64
    });
    let others: &[u64] = if cfg.recipe.station.is_some() {
        negatives
    } else {
        &[]
    };
    let epoch_len = train_set.len() + others.len() + empties as usize;
    let station_val = cfg.recipe.station.as_ref().map(|_| {
        eprintln!("rendering station validation frames (mild, hard, empty)");
        StationVal::new(cache, val_set)
    });
    let teacher = match &cfg.recipe.distill {
        Some(d) => {
            eprintln!(
                "teachers: {} on {} training photos",
                d.teachers.join(", "),
                train_set.len()
            );
            let ids: Vec<u64> = train_set.iter().map(|&(id, _)| id).collect();
            let products = &cfg.labels[..cfg.labels.len() - cfg.recipe.station.is_some() as usize];
            let started = Instant::now();
            let t = distill::teacher_targets(d, cache, &ids, products)?;
            // Part of what this run costs, like the epochs.
            state.train_seconds += started.elapsed().as_secs_f64();
            Some(t)
        }
        None => None,
    };
    let teacher = teacher.as_ref();
    let steps_per_epoch = epoch_len.div_ceil(cfg.recipe.batch_size);
    let warmup_steps = cfg.recipe.warmup_epochs * steps_per_epoch;
    let total_steps = steps_per_epoch * cfg.epochs;
    if let Some(e) = ema.as_mut() {
        // A resumed run continues the decay's ramp where it stopped.
        e.updates = (state.epochs_done * steps_per_epoch) as u64;
    }
    let interactive = std::io::stderr().is_terminal();
    let last_epoch = stop_after
        .map(|n| (state.epochs_done + n).min(cfg.epochs))
        .unwrap_or(cfg.epochs);
    for epoch in state.epochs_done + 1..=last_epoch {
        let started = Instant::now();
        let mut order: Vec<Sample> = train_set
            .iter()
            .map(|&(id, c)| Sample::Product(id, c))
            .chain(others.iter().map(|&id| Sample::Other(id)))
            .chain((0..empties).map(|k| Sample::Empty(((epoch as u64) << 32) | k)))
            .collect();
        order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(
            cfg.recipe.seed.wrapping_add(epoch as u64),
        ));
        let bar = progress(order.len() as u64, &format!("epoch {epoch}/{}", cfg.epochs));
        let (mut loss_sum, mut hits, mut counted, mut seen) = (0.0f64, 0usize, 0usize, 0usize);
        let mut lr = cfg.recipe.lr;
        let classes = cfg.labels.len();
        // Batches are built by a producer thread (on rayon's workers) while this one trains;
        // two batches ahead at most.
        model = std::thread::scope(|scope| -> Result<Cnn> {
            let mut model = model;
            let (tx, rx) = std::sync::mpsc::sync_channel::<Batch>(2);
            let order = &order;
            scope.spawn(move || {
                for chunk in order.chunks(cfg.recipe.batch_size) {
                    if tx
                        .send(make_batch(
                            &cfg.recipe,
                            &cfg.labels,
                            &cfg.normalization,
                            cache,
                            chunk,
                            epoch,
                            teacher,
                            heads,
                        ))
                        .is_err()
                    {
                        break;
                    }
                }
            });
            for (b, batch) in rx.iter().enumerate() {
                let step = (epoch - 1) * steps_per_epoch + b;
                lr = scheduled_lr(cfg.recipe.lr, step, total_steps, warmup_steps);
                let n = batch.n;
                if n == 0 {
                    continue;
                }
                let x = Tensor::<4>::from_data(
                    TensorData::new(batch.input, [n, 3, HEIGHT as usize, WIDTH as usize]),
                    &ad,
                );
                let t = Tensor::<2>::from_data(TensorData::new(batch.targets, [n, classes]), &ad);
                let (logits, aux_logits) = model.forward_all(x);
                let pred: Vec<i64> = logits
                    .clone()
                    .argmax(1)
                    .into_data()
                    .convert::<i64>()
                    .try_to_vec::<i64>()
                    .map_err(|e| anyhow::anyhow!("reading predictions: {e:?}"))?;
                // Cross-entropy against soft targets (label smoothing, flat targets for other
                // kinds); equal to the usual loss for one-hot targets.
                let logp = burn::tensor::activation::log_softmax(logits, 1);
                let mut loss = (logp * t).sum_dim(1).mean().neg();
                for (j, (head, al)) in cfg.recipe.heads.iter().zip(aux_logits).enumerate() {
                    // Masked cross-entropy: rows without a value have an all-zero target and
                    // the mean is over the rows that have one.
                    let size = head.labels.len();
                    let mut onehot = vec![0f32; n * size];
                    let mut valid = 0usize;
                    for i in 0..n {
                        let c = batch.aux[i * cfg.recipe.heads.len() + j];
                        if c >= 0 {
                            onehot[i * size + c as usize] = 1.0;
                            valid += 1;
                        }
                    }
                    if valid == 0 {
                        continue;
                    }
                    let th = Tensor::<2>::from_data(TensorData::new(onehot, [n, size]), &ad);
                    let lp = burn::tensor::activation::log_softmax(al, 1);
                    let head_loss = (lp * th).sum().neg() / valid as f32;
                    loss = loss + head_loss * head.weight;
                }
                let loss_value = loss.clone().into_scalar::<f32>() as f64;
                for (p, &h) in pred.iter().zip(&batch.hard) {
                    if h >= 0 {
                        counted += 1;
                        hits += (*p == h) as usize;
                    }
                }
                let grads = GradientsParams::from_grads(loss.backward(), &model);
                model = optim.step(lr, model, grads);
                if let Some(e) = ema.as_mut() {
                    e.update(&model.valid());
                }
                loss_sum += loss_value * n as f64;
                seen += n;
                bar.inc(n as u64);
                if b % 20 == 0 {
                    bar.set_message(format!("ep {epoch} loss {:.3}", loss_sum / seen as f64));
                }
                if !interactive && b % 100 == 0 && b > 0 {
                    // Logs of background runs (nohup) get a line now and then instead of a bar.
                    eprintln!(
                        "  epoch {epoch} step {b}/{steps_per_epoch} loss {:.4} acc {:.4}",
                        loss_sum / seen as f64,
                        hits as f64 / counted.max(1) as f64
                    );
                }
            }
            Ok(model)
        })?;
        bar.finish_and_clear();
        let train_seconds = started.elapsed().as_secs_f64();
        let live = model.valid();
        // With `--ema` the average is what is validated, selected and exported.
        let eval_model = ema
            .as_ref()
            .map_or_else(|| live.clone(), |e| e.model.clone());
        let (val_logits, val_targets) = predict(
            &eval_model,
            cache,
            val_set,
            &cfg.normalization,
            &device,
            "validating",
        );
        let val_heads = (!cfg.recipe.heads.is_empty())
            .then(|| head_accuracies(&eval_model, cfg, cache, val_set, heads, &device));
        let station_scores = station_val
            .as_ref()
            .map(|sv| sv.score(&eval_model, cfg, &device));
        let log = EpochLog {
            epoch,
            lr,
            train_loss: loss_sum / seen.max(1) as f64,
            train_acc: hits as f64 / counted.max(1) as f64,
            val_loss: mean_ce(&val_logits, &val_targets),
            val_acc: accuracy(&val_logits, &val_targets),
            seconds: started.elapsed().as_secs_f64(),
            images_per_s: seen as f64 / train_seconds,
            val_mild: station_scores.map(|s| s.0),
            val_hard: station_scores.map(|s| s.1),
            val_empty_product: station_scores.map(|s| s.2),
            val_heads,
        };
        if let Some(h) = &log.val_heads {
            eprintln!("           heads val: {h}");
        }
        if let Some((m, h, e)) = station_scores {
            eprintln!(
                "           station val: mild {m:.4} hard {h:.4} | empty reported as product {e:.4}"
            );
        }
        eprintln!(
            "epoch {epoch:>3}/{}: train loss {:.4} acc {:.4} | val loss {:.4} acc {:.4} | {:.0} img/s, {:.0}s",
            cfg.epochs,
            log.train_loss,
            log.train_acc,
            log.val_loss,
            log.val_acc,
            log.images_per_s,
            log.seconds
        );
        // Weights first, state last: state.json only ever points at complete files.
        save_module(&live, &paths.last())?;
        if let Some(e) = &ema {
            save_module(&e.model, &paths.ema())?;
        }
        let optim_bytes = optim
            .into_bytes()
            .map_err(|e| anyhow::anyhow!("cannot serialise optimizer: {e:?}"))?;
        write_atomic(&paths.optimizer(), &optim_bytes)?;
        if log.selection_score() > state.best_score || state.best_epoch == 0 {
            state.best_score = log.selection_score();
            state.best_val_acc = log.val_acc;
            state.best_epoch = epoch;
            save_module(&eval_model, &paths.best())?;
        }
        state.train_seconds += log.seconds;
        state.epochs_done = epoch;
        state.history.push(log);
        write_history_csv(&paths.history_csv(), &state.history)?;
        write_json(&paths.state(), &state)?;
    }
    Ok(state)
}

fn write_history_csv(path: &Path, history: &[EpochLog]) -> Result<()> {
    let mut w = csv::Writer::from_writer(vec![]);
    for h in history {
        w.serialize(h)?;
    }
    write_atomic(path, &w.into_inner()?)
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn cosine_schedule_decays_to_one_percent() {
        assert!((cosine_lr(1e-3, 0, 100) - 1e-3).abs() < 1e-12);
        assert!((cosine_lr(1e-3, 100, 100) - 1e-5).abs() < 1e-12);
        assert!(cosine_lr(1e-3, 30, 100) > cosine_lr(1e-3, 60, 100));
    }

    #[test]
    fn cross_entropy_and_accuracy() {
        let logits = vec![vec![2.0, 0.0], vec![0.0, 2.0]];
        assert_eq!(accuracy(&logits, &[0, 0]), 0.5);
        let ce = mean_ce(&logits, &[0, 1]);
        assert!((ce - (1.0f64 + (-2.0f64).exp()).ln()).abs() < 1e-6);
    }
}
