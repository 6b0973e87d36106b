//! Saving and loading network weights: a run's checkpoints, and starting a run from another
//! run's best weights with the outputs matched by label (`--init-from`).

use super::run::*;
use crate::model::{Arch, Cnn};
use crate::util::write_atomic;
use anyhow::{bail, Context, Result};
use burn::module::Module;
use burn::prelude::*;
use burn::tensor::Bytes;
use std::path::Path;

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
