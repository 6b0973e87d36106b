//! The training loop: AdamW, cosine learning-rate decay, cross-entropy, a checkpoint after every
//! epoch (model + optimizer + history, each written atomically) and `--resume` that continues
//! exactly where a killed run stopped.
//!
//! burn's `Learner` was evaluated and not used: its checkpoints are not written atomically, its
//! data pipeline would not reuse our decoded u8 cache, and its dashboard needs a terminal. The loop
//! itself is ~100 lines.

use super::batch::*;
use super::checkpoint::*;
use super::predict::*;
use super::run::*;
use crate::data::cache::ImageCache;
use crate::data::heads::HeadTargets;
use crate::data::split::Entry;
use crate::fit::distill::{self};
use crate::fit::ema::Ema;
use crate::model::Cnn;
use crate::util::{progress, write_atomic, write_json};
use anyhow::{bail, Result};
use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::{Bytes, TensorData};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::io::IsTerminal;
use std::path::Path;
use std::time::Instant;
use tagger_core::preprocess::{HEIGHT, WIDTH};

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_schedule_decays_to_one_percent() {
        assert!((cosine_lr(1e-3, 0, 100) - 1e-3).abs() < 1e-12);
        assert!((cosine_lr(1e-3, 100, 100) - 1e-5).abs() < 1e-12);
        assert!(cosine_lr(1e-3, 30, 100) > cosine_lr(1e-3, 60, 100));
    }
}
