//! `tag convert`: a model's NNEF form, which the station binary (no ONNX parser) runs. The
//! converted file is checked before it is written: same metadata (core `format`) and the same
//! outputs as the ONNX model, through tract, on a blank image and on seeded noise images.

use crate::backend::BackendKind;
use crate::model::Model;
use crate::preprocess::IMAGE_LEN;
use anyhow::{anyhow, bail, Context, Result};
use std::path::{Path, PathBuf};

/// Largest difference allowed between an output of the ONNX model and of its NNEF form. Both
/// run the same decluttered graph through tract; only the optimiser's choices may differ.
pub const TOLERANCE: f32 = 1e-4;

/// What a conversion wrote and how closely the two forms agree.
#[derive(Debug)]
pub struct Converted {
    pub out: PathBuf,
    pub onnx_bytes: usize,
    pub nnef_bytes: usize,
    pub images: usize,
    pub max_abs_diff: f32,
}

/// `MODEL.onnx` -> `MODEL.nnef.tgz` next to it.
pub fn default_out(model: &Path) -> PathBuf {
    let stem = model
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let stem = stem.strip_suffix(".onnx").unwrap_or(&stem);
    model.with_file_name(format!("{stem}.nnef.tgz"))
}

/// Converts the ONNX model at `model` and writes its NNEF form to `out` atomically, once both
/// forms give the same outputs.
pub fn to_nnef(model: &Path, out: &Path) -> Result<Converted> {
    let onnx = crate::limits::read_file_as(model, crate::limits::MAX_MODEL_BYTES, "model")
        .map_err(|e| anyhow!(e))?;
    let nnef =
        crate::format::onnx_to_nnef(&onnx).with_context(|| format!("model {}", model.display()))?;
    let a = Model::from_bytes(&onnx, model.display().to_string(), BackendKind::Tract, 1)?;
    let b = Model::from_bytes(&nnef, out.display().to_string(), BackendKind::Tract, 1)?;
    let images = probe_images();
    let n = images.len() / IMAGE_LEN;
    let mut worst = 0f32;
    for (x, y) in a.outputs(&images, n)?.iter().zip(b.outputs(&images, n)?) {
        if x.len() != y.len() {
            bail!(
                "the NNEF form gives {} outputs where ONNX gives {}",
                y.len(),
                x.len()
            );
        }
        for (p, q) in x.iter().zip(&y) {
            // A NaN on either side counts as the largest difference.
            let d = (p - q).abs();
            worst = if d.is_nan() {
                f32::INFINITY
            } else {
                worst.max(d)
            };
        }
    }
    if worst > TOLERANCE {
        bail!("the NNEF form's outputs differ from the ONNX model's by {worst} (> {TOLERANCE})");
    }
    crate::fsio::write_atomic(out, &nnef)
        .with_context(|| format!("cannot write {}", out.display()))?;
    Ok(Converted {
        out: out.to_path_buf(),
        onnx_bytes: onnx.len(),
        nnef_bytes: nnef.len(),
        images: n,
        max_abs_diff: worst,
    })
}

/// A blank image and three of seeded noise in the normalised range, so every class's logit is
/// exercised without shipping photos in the binary.
fn probe_images() -> Vec<f32> {
    let mut rng = fastrand::Rng::with_seed(7);
    let mut v = vec![0f32; IMAGE_LEN];
    v.extend((0..3 * IMAGE_LEN).map(|_| rng.f32() * 2.0 - 1.0));
    v
}
