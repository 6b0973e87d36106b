//! Fine-tuning the pretrained EfficientNet-Lite0 (backbone/trainable.rs) in burn on the station
//! recipe's samples (fit/batch.rs `make_batch`: products on rendered belts and trays, the catalogue
//! look, empty frames towards `none`, other kinds towards a flat output), optionally the
//! real-train photos (mirrored at random), and optionally a teacher's soft targets (distill.rs).
//!
//! An epoch is a fresh draw of `epoch_size` samples from that pool: at ~25 images/s on 2 cores a
//! full pass takes over 20 minutes, and a run should checkpoint, validate and be resumable every
//! few minutes. Weights, optimizer and state are written after every epoch (state last).

use crate::backbone::efficientnet::Lite;
use crate::backbone::trainable::LiteNet;
use crate::data::cache::ImageCache;
use crate::data::heads::HeadTargets;
use crate::fit::distill::TeacherTargets;
use crate::fit::{load_weights, make_batch, save_module, scheduled_lr, Recipe, RunPaths, Sample};
use crate::util::{progress, write_atomic, write_json};
use anyhow::{bail, Context, Result};
use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::{Bytes, TensorData};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::io::IsTerminal;
use std::time::Instant;
use tagger_core::preprocess::{normalize_into, Normalization, HEIGHT, IMAGE_LEN, WIDTH};

/// Everything that defines a fine-tuning run; saved as `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiteConfig {
    pub name: String,
    /// Size (h, w) the 80x60 input is enlarged to inside the network; None: 80x60 as it is.
    pub resize: Option<(usize, usize)>,
    /// Leading blocks (with the stem) kept at their pretrained weights.
    pub freeze_blocks: usize,
    pub epochs: usize,
    /// Samples drawn per epoch.
    pub epoch_size: usize,
    pub dropout: f64,
    #[serde(flatten)]
    pub recipe: Recipe,
    /// Real-train photos in the pool, each this many times (0: none).
    pub real_train_repeat: usize,
    /// Teacher (a probe model) whose soft targets the product samples learn, when distilling.
    pub teacher: Option<String>,
    pub normalization: Normalization,
    pub labels: Vec<String>,
}

/// Validation figures of one epoch.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LiteEpoch {
    pub epoch: usize,
    pub lr: f64,
    pub train_loss: f64,
    pub seconds: f64,
    pub images_per_s: f64,
    pub catalogue_val: f64,
    pub mild_val: f64,
    pub hard_val: f64,
    pub real_val: crate::eval::real::RealScores,
    /// Accuracy on a station's own validation photos, when fine-tuning on them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub photos_val: Option<f64>,
}

impl LiteEpoch {
    /// What picks the kept epoch: the mean of catalogue, station hard and real-val balanced
    /// accuracy (the three looks the one model must serve); when fine-tuning on a station's
    /// photos, their validation part instead of real-val.
    pub fn score(&self) -> f64 {
        let third = self.photos_val.unwrap_or(self.real_val.balanced);
        (self.catalogue_val + self.hard_val + third) / 3.0
    }
}

/// What `validate` measures after each epoch.
pub struct Validation {
    pub catalogue: f64,
    pub mild: f64,
    pub hard: f64,
    pub real: crate::eval::real::RealScores,
    pub photos: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LiteState {
    pub epochs_done: usize,
    pub best_epoch: usize,
    pub train_seconds: f64,
    pub history: Vec<LiteEpoch>,
}

/// What `training lite` saves beside the model (`<model>.lite.json`).
#[derive(serde::Serialize, serde::Deserialize)]
pub struct LiteSummary {
    pub name: String,
    pub onnx: String,
    pub onnx_sha256: String,
    pub macs: u64,
    pub params: usize,
    pub config: LiteConfig,
    pub state: LiteState,
    /// Val photos per station view scored each epoch (evenly spaced through val).
    pub val_photos: usize,
    /// Largest logit difference between the exported model (tract) and burn on val photos.
    pub export_check: f32,
    pub reproduce: String,
}

/// The station recipe's pool of one split: every training product, the other kinds
/// (negatives) and empty frames in the recipe's share of the products.
pub struct Pool {
    pub samples: Vec<Sample>,
    pub products: usize,
    pub others: usize,
    pub empties: u64,
}

pub fn station_pool(
    split: &crate::data::split::Split,
    neg: &crate::data::negatives::Negatives,
    cache: &ImageCache,
) -> Pool {
    let (ids, y) = crate::fit::probe::present(split.part("train"), cache);
    let empties = (ids.len() as f32 * crate::fit::StationTraining::new(None).empty_share) as u64;
    let others: Vec<u64> = neg
        .ids("train")
        .into_iter()
        .filter(|&id| cache.get(id).is_some())
        .collect();
    let samples = ids
        .iter()
        .zip(&y)
        .map(|(&id, &c)| Sample::Product(id, c))
        .chain(others.iter().map(|&id| Sample::Other(id)))
        .chain((0..empties).map(Sample::Empty))
        .collect();
    Pool {
        samples,
        products: ids.len(),
        others: others.len(),
        empties,
    }
}

/// Real photos to train on: network inputs and targets (`None`: another kind, flat target).
pub struct RealRows {
    pub inputs: Vec<Vec<u8>>,
    pub targets: Vec<Option<usize>>,
}

/// One pool entry: a station-recipe sample or a real photo (index into [`RealRows`]).
#[derive(Debug, Clone, Copy)]
enum Item {
    Station(Sample),
    Real(usize),
}

/// What the loop trains on.
pub struct LiteData<'a> {
    pub cache: &'a ImageCache,
    pub samples: Vec<Sample>,
    pub real: RealRows,
    pub teacher: Option<TeacherTargets>,
    /// The head to start from (weights `[1280, outputs]`, bias); `None`: a fresh one.
    pub head: Option<(Vec<f32>, Vec<f32>)>,
}

/// The network of a config on `device`: `lite`'s backbone and `head`, or a fresh head.
pub fn init(
    cfg: &LiteConfig,
    lite: &Lite,
    head: Option<&(Vec<f32>, Vec<f32>)>,
    device: &Device,
) -> LiteNet {
    LiteNet::new(
        lite,
        (HEIGHT as usize, WIDTH as usize),
        cfg.resize,
        cfg.labels.len(),
        head.map(|(w, b)| (w.as_slice(), b.as_slice())),
        cfg.dropout,
        device,
    )
}

/// A batch of the pool as tensors' data: inputs and soft targets.
fn build(
    cfg: &LiteConfig,
    data: &LiteData,
    items: &[Item],
    epoch: usize,
) -> (Vec<f32>, Vec<f32>, usize) {
    let samples: Vec<Sample> = items
        .iter()
        .filter_map(|i| match i {
            Item::Station(s) => Some(*s),
            Item::Real(_) => None,
        })
        .collect();
    let b = make_batch(
        &cfg.recipe,
        &cfg.labels,
        &cfg.normalization,
        data.cache,
        &samples,
        epoch,
        data.teacher.as_ref(),
        &HeadTargets::default(),
    );
    let (mut input, mut targets, mut n) = (b.input, b.targets, b.n);
    let k = cfg.labels.len();
    let products = k - 1;
    let mut rng = rand::rngs::StdRng::seed_from_u64(cfg.recipe.seed ^ (epoch as u64) << 40);
    for item in items {
        let Item::Real(i) = *item else { continue };
        let img = &data.real.inputs[i];
        let mirrored;
        let img = if rng.random_bool(0.5) {
            mirrored = crate::scene::mirrored(img);
            &mirrored
        } else {
            img
        };
        let mut x = vec![0f32; IMAGE_LEN];
        normalize_into(img, &cfg.normalization, &mut x);
        input.extend(x);
        let mut t = vec![0f32; k];
        match data.real.targets[i] {
            Some(c) => t[c] = 1.0,
            None => t[..products]
                .iter_mut()
                .for_each(|v| *v = 1.0 / products as f32),
        }
        targets.extend(t);
        n += 1;
    }
    (input, targets, n)
}

/// Trains (or resumes) the run in `paths.dir`; `validate` scores the network after each epoch.
pub fn fit(
    cfg: &LiteConfig,
    lite: &Lite,
    paths: &RunPaths,
    data: &LiteData,
    resume: bool,
    validate: impl Fn(&LiteNet) -> Result<Validation>,
) -> Result<(LiteNet, LiteState)> {
    let device = Device::flex();
    device.seed(cfg.recipe.seed);
    let ad = device.clone().autodiff();
    let mut net = init(cfg, lite, data.head.as_ref(), &ad).freeze(cfg.freeze_blocks);
    let mut optim = AdamWConfig::new()
        .with_weight_decay(cfg.recipe.weight_decay as f32)
        .init();
    let mut state = LiteState::default();
    if resume && paths.state().is_file() {
        let saved: LiteConfig = serde_json::from_slice(&std::fs::read(paths.config())?)
            .with_context(|| format!("reading {}", paths.config().display()))?;
        if saved != *cfg {
            bail!(
                "{} was started with other settings; resume with the same options or use a new --out",
                paths.dir.display()
            );
        }
        state = serde_json::from_slice(&std::fs::read(paths.state())?)
            .with_context(|| format!("reading {}", paths.state().display()))?;
        net = load_weights(init(cfg, lite, data.head.as_ref(), &ad), &paths.last())?
            .freeze(cfg.freeze_blocks);
        optim = optim
            .from_bytes(Bytes::from_bytes_vec(std::fs::read(paths.optimizer())?))
            .map_err(|e| anyhow::anyhow!("optimizer checkpoint unreadable: {e:?}"))?;
        eprintln!("resuming {} after epoch {}", cfg.name, state.epochs_done);
    } else if paths.state().is_file() {
        bail!(
            "{} already holds a run; pass --resume to continue it or choose another --out",
            paths.dir.display()
        );
    }
    std::fs::create_dir_all(&paths.dir)?;
    write_json(&paths.config(), cfg)?;
    let pool: Vec<Item> = data
        .samples
        .iter()
        .map(|&s| Item::Station(s))
        .chain((0..cfg.real_train_repeat).flat_map(|_| (0..data.real.inputs.len()).map(Item::Real)))
        .collect();
    if pool.is_empty() {
        bail!("nothing to train on");
    }
    let steps = cfg.epoch_size.div_ceil(cfg.recipe.batch_size);
    let total = steps * cfg.epochs;
    let warmup = cfg.recipe.warmup_epochs * steps;
    let k = cfg.labels.len();
    let interactive = std::io::stderr().is_terminal();
    for epoch in state.epochs_done + 1..=cfg.epochs {
        let started = Instant::now();
        let mut order = pool.clone();
        order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(
            cfg.recipe.seed.wrapping_add(epoch as u64),
        ));
        order.truncate(cfg.epoch_size);
        let bar = progress(order.len() as u64, &format!("epoch {epoch}/{}", cfg.epochs));
        let (mut loss_sum, mut seen, mut lr) = (0.0f64, 0usize, cfg.recipe.lr);
        net = std::thread::scope(|scope| -> Result<LiteNet> {
            let mut net = net;
            let (tx, rx) = std::sync::mpsc::sync_channel(2);
            let order = &order;
            scope.spawn(move || {
                for chunk in order.chunks(cfg.recipe.batch_size) {
                    if tx.send(build(cfg, data, chunk, epoch)).is_err() {
                        break;
                    }
                }
            });
            for (b, (input, targets, n)) in rx.iter().enumerate() {
                if n == 0 {
                    continue;
                }
                lr = scheduled_lr(cfg.recipe.lr, (epoch - 1) * steps + b, total, warmup);
                let x = Tensor::<4>::from_data(
                    TensorData::new(input, [n, 3, HEIGHT as usize, WIDTH as usize]),
                    &ad,
                );
                let t = Tensor::<2>::from_data(TensorData::new(targets, [n, k]), &ad);
                let logp = burn::tensor::activation::log_softmax(net.forward(x), 1);
                let loss = (logp * t).sum_dim(1).mean().neg();
                loss_sum += loss.clone().into_scalar::<f32>() as f64 * n as f64;
                seen += n;
                let grads = GradientsParams::from_grads(loss.backward(), &net);
                net = optim.step(lr, net, grads);
                bar.inc(n as u64);
                if !interactive && b % 50 == 0 && b > 0 {
                    eprintln!(
                        "  epoch {epoch} step {b}/{steps} loss {:.4} ({:.1} img/s)",
                        loss_sum / seen as f64,
                        seen as f64 / started.elapsed().as_secs_f64()
                    );
                }
            }
            Ok(net)
        })?;
        bar.finish_and_clear();
        let train_seconds = started.elapsed().as_secs_f64();
        let valid = net.valid();
        let v = validate(&valid)?;
        let log = LiteEpoch {
            epoch,
            lr,
            train_loss: loss_sum / seen.max(1) as f64,
            seconds: started.elapsed().as_secs_f64(),
            images_per_s: seen as f64 / train_seconds,
            catalogue_val: v.catalogue,
            mild_val: v.mild,
            hard_val: v.hard,
            real_val: v.real,
            photos_val: v.photos,
        };
        eprintln!(
            "epoch {epoch}/{}: loss {:.4} | val catalogue {:.4} mild {:.4} hard {:.4} | {} | {:.1} img/s, {:.0}s",
            cfg.epochs,
            log.train_loss,
            log.catalogue_val,
            log.mild_val,
            log.hard_val,
            match log.photos_val {
                Some(p) => format!("station photos val {p:.4}"),
                None => format!("real-val {}", log.real_val.line()),
            },
            log.images_per_s,
            log.seconds
        );
        save_module(&valid, &paths.last())?;
        let optim_bytes = optim
            .into_bytes()
            .map_err(|e| anyhow::anyhow!("cannot serialise optimizer: {e:?}"))?;
        write_atomic(&paths.optimizer(), &optim_bytes)?;
        let best = state
            .history
            .iter()
            .find(|h| h.epoch == state.best_epoch)
            .map(LiteEpoch::score);
        if best.is_none_or(|b| log.score() > b) {
            state.best_epoch = epoch;
            save_module(&valid, &paths.best())?;
        }
        state.train_seconds += log.seconds;
        state.epochs_done = epoch;
        state.history.push(log);
        write_json(&paths.state(), &state)?;
    }
    let best = load_weights(init(cfg, lite, data.head.as_ref(), &device), &paths.best())?;
    Ok((best, state))
}

/// Logits of network inputs through a (non-training) network, 64 at a time.
pub fn logits<I: AsRef<[u8]>>(
    net: &LiteNet,
    inputs: &[I],
    norm: &Normalization,
    device: &Device,
) -> Vec<f32> {
    let mut out = vec![];
    for chunk in inputs.chunks(64) {
        let mut x = vec![0f32; chunk.len() * IMAGE_LEN];
        for (i, o) in chunk.iter().zip(x.chunks_mut(IMAGE_LEN)) {
            normalize_into(i.as_ref(), norm, o);
        }
        let t = Tensor::<4>::from_data(
            TensorData::new(x, [chunk.len(), 3, HEIGHT as usize, WIDTH as usize]),
            device,
        );
        out.extend(
            net.forward(t)
                .into_data()
                .convert::<f32>()
                .try_to_vec::<f32>()
                .expect("f32 logits"),
        );
    }
    out
}

pub fn accuracy(logits: &[f32], truth: &[usize], k: usize) -> f64 {
    let right = logits
        .chunks(k)
        .zip(truth)
        .filter(|(l, &t)| tagger_core::classify::argmax(l) == t)
        .count();
    right as f64 / truth.len().max(1) as f64
}
