//! The training loop: AdamW, cosine learning-rate decay, cross-entropy, a checkpoint after every
//! epoch (model + optimizer + history, each written atomically) and `--resume` that continues
//! exactly where a killed run stopped.
//!
//! burn's `Learner` was evaluated and not used: its checkpoints are not written atomically, its
//! data pipeline would not reuse our decoded u8 cache, and its dashboard needs a terminal. The loop
//! itself is ~100 lines.

use crate::augment::Augment;
use crate::cache::ImageCache;
use crate::model::{Arch, Cnn};
use crate::split::Entry;
use crate::util::{progress, write_atomic, write_json};
use anyhow::{bail, Context, Result};
use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::{Bytes, TensorData};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tagger::preprocess::{normalize_into, Normalization, HEIGHT, IMAGE_LEN, WIDTH};

/// Everything that defines a run; saved as `config.json` in the run directory.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TrainConfig {
    pub name: String,
    pub arch: Arch,
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub weight_decay: f64,
    pub seed: u64,
    pub augment: Option<Augment>,
    pub normalization: Normalization,
    pub label_column: String,
    pub labels: Vec<String>,
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

/// A batch of normalised images and their targets, ready for burn.
pub fn batch_tensors(
    cache: &ImageCache,
    entries: &[Entry],
    norm: &Normalization,
    device: &Device,
    augment: Option<(&Augment, u64)>,
) -> (Tensor<4>, Tensor<1, Int>, usize) {
    let mut input = vec![0f32; entries.len() * IMAGE_LEN];
    let mut targets = Vec::with_capacity(entries.len());
    let mut n = 0;
    let mut scratch = vec![0u8; IMAGE_LEN];
    for &(id, class) in entries {
        let Some(img) = cache.get(id) else { continue };
        let out = &mut input[n * IMAGE_LEN..(n + 1) * IMAGE_LEN];
        match augment {
            Some((aug, seed)) => {
                aug.apply(
                    img,
                    &mut scratch,
                    seed ^ id.wrapping_mul(0x9E37_79B9_7F4A_7C15),
                );
                normalize_into(&scratch, norm, out);
            }
            None => normalize_into(img, norm, out),
        }
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
        let (x, _, n) = batch_tensors(cache, chunk, norm, device, None);
        if n > 0 {
            let y = model.forward(x);
            let [_, classes] = y.dims();
            let v: Vec<f32> = y
                .into_data()
                .convert::<f32>()
                .try_to_vec::<f32>()
                .expect("f32 logits");
            logits.extend(v.chunks(classes).map(<[f32]>::to_vec));
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
        .filter(|(l, &t)| tagger::classify::argmax(l) == t)
        .count();
    hits as f64 / targets.len().max(1) as f64
}

fn save_module(model: &Cnn, path: &Path) -> Result<()> {
    let bytes = model
        .clone()
        .into_record()
        .into_bytes()
        .map_err(|e| anyhow::anyhow!("cannot serialise model: {e:?}"))?;
    write_atomic(path, &bytes)
}

/// Loads weights saved by a run into a fresh model of `arch` on `device`.
pub fn load_module(arch: &Arch, path: &Path, device: &Device) -> Result<Cnn> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read checkpoint {}", path.display()))?;
    let record = burn::store::ModuleRecord::from_bytes(Bytes::from_bytes_vec(bytes))
        .map_err(|e| anyhow::anyhow!("{} is not a model checkpoint: {e:?}", path.display()))?;
    arch.init(device).try_load_record(record).map_err(|e| {
        anyhow::anyhow!(
            "checkpoint {} does not fit the architecture: {e:?}",
            path.display()
        )
    })
}

/// Trains (or resumes) a run in `paths.dir`. `stop_after` ends the call after that many epochs
/// (the schedule still spans `cfg.epochs`), so a long run can be split across sessions.
pub fn train(
    cfg: &TrainConfig,
    paths: &RunPaths,
    cache: &ImageCache,
    train_set: &[Entry],
    val_set: &[Entry],
    resume: bool,
    stop_after: Option<usize>,
) -> Result<RunState> {
    if train_set.is_empty() || val_set.is_empty() {
        bail!("the split has an empty train or validation set: is the data directory complete?");
    }
    let device = Device::flex();
    device.seed(cfg.seed);
    let ad = device.clone().autodiff();
    let mut model = cfg.arch.init(&ad);
    let mut optim = AdamWConfig::new()
        .with_weight_decay(cfg.weight_decay as f32)
        .init();
    let mut state = RunState::default();

    if resume && paths.state().is_file() {
        let saved: TrainConfig = serde_json::from_slice(&std::fs::read(paths.config())?)
            .context("run directory has a state but no readable config.json")?;
        if saved != *cfg {
            bail!(
                "{} was started with other settings; resume with the same options or use a new --out",
                paths.dir.display()
            );
        }
        state = serde_json::from_slice(&std::fs::read(paths.state())?)
            .context("state.json is unreadable")?;
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
    }
    write_json(&paths.config(), cfg)?;
    state.skipped_corrupt = train_set
        .iter()
        .chain(val_set)
        .filter(|(id, _)| cache.get(*id).is_none())
        .count();

    let loss_fn = CrossEntropyLossConfig::new().init(&ad);
    let steps_per_epoch = train_set.len().div_ceil(cfg.batch_size);
    let total_steps = steps_per_epoch * cfg.epochs;
    let interactive = std::io::stderr().is_terminal();
    let last_epoch = stop_after
        .map(|n| (state.epochs_done + n).min(cfg.epochs))
        .unwrap_or(cfg.epochs);
    for epoch in state.epochs_done + 1..=last_epoch {
        let started = Instant::now();
        let mut order = train_set.to_vec();
        order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(
            cfg.seed.wrapping_add(epoch as u64),
        ));
        let bar = progress(order.len() as u64, &format!("epoch {epoch}/{}", cfg.epochs));
        let (mut loss_sum, mut hits, mut seen) = (0.0f64, 0usize, 0usize);
        let mut lr = cfg.lr;
        for (b, chunk) in order.chunks(cfg.batch_size).enumerate() {
            let step = (epoch - 1) * steps_per_epoch + b;
            lr = cosine_lr(cfg.lr, step, total_steps);
            let aug_seed = cfg.seed ^ ((epoch as u64) << 32);
            let (x, y, n) = batch_tensors(
                cache,
                chunk,
                &cfg.normalization,
                &ad,
                cfg.augment.as_ref().map(|a| (a, aug_seed)),
            );
            if n == 0 {
                continue;
            }
            let logits = model.forward(x);
            let pred = logits.clone().argmax(1).flatten::<1>(0, 1);
            let loss = loss_fn.forward(logits, y.clone());
            let loss_value = loss.clone().into_scalar::<f32>() as f64;
            hits += pred.equal(y).int().sum().into_scalar::<i64>() as usize;
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(lr, model, grads);
            loss_sum += loss_value * n as f64;
            seen += n;
            bar.inc(chunk.len() as u64);
            if b % 20 == 0 {
                bar.set_message(format!("ep {epoch} loss {:.3}", loss_sum / seen as f64));
            }
            if !interactive && b % 100 == 0 && b > 0 {
                // Logs of background runs (nohup) get a line now and then instead of a bar.
                eprintln!(
                    "  epoch {epoch} step {b}/{steps_per_epoch} loss {:.4} acc {:.4}",
                    loss_sum / seen as f64,
                    hits as f64 / seen as f64
                );
            }
        }
        bar.finish_and_clear();
        let train_seconds = started.elapsed().as_secs_f64();
        let eval_model = model.valid();
        let (val_logits, val_targets) = predict(
            &eval_model,
            cache,
            val_set,
            &cfg.normalization,
            &device,
            "validating",
        );
        let log = EpochLog {
            epoch,
            lr,
            train_loss: loss_sum / seen.max(1) as f64,
            train_acc: hits as f64 / seen.max(1) as f64,
            val_loss: mean_ce(&val_logits, &val_targets),
            val_acc: accuracy(&val_logits, &val_targets),
            seconds: started.elapsed().as_secs_f64(),
            images_per_s: seen as f64 / train_seconds,
        };
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
        save_module(&eval_model, &paths.last())?;
        let optim_bytes = optim
            .into_bytes()
            .map_err(|e| anyhow::anyhow!("cannot serialise optimizer: {e:?}"))?;
        write_atomic(&paths.optimizer(), &optim_bytes)?;
        if log.val_acc > state.best_val_acc {
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
