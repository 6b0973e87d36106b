//! A loaded classifier: the model file's bytes (ONNX or NNEF), their self-description and a backend to run them.

use crate::backend::{self, Backend, BackendKind};
use crate::metadata::ModelInfo;
use crate::preprocess::{self, IMAGE_LEN};
use anyhow::{anyhow, bail, Context, Result};
use std::path::Path;

pub struct Model {
    pub info: ModelInfo,
    /// Where the model came from: the path given, or what the caller says (`embedded:<file>`).
    pub source: String,
    pub bytes_len: usize,
    backend: Box<dyn Backend>,
}

/// Reads the self-description in a model file (ONNX or NNEF) without building a runnable model.
pub fn read_info(bytes: &[u8]) -> Result<ModelInfo> {
    crate::format::read_info(bytes)
}

impl Model {
    /// A model file exported by the training crate.
    pub fn from_path(path: &Path, kind: BackendKind, threads: usize) -> Result<Self> {
        let bytes = crate::limits::read_file_as(path, crate::limits::MAX_MODEL_BYTES, "model")
            .map_err(|e| anyhow!(e))?;
        Self::from_bytes(&bytes, path.display().to_string(), kind, threads)
            .with_context(|| format!("model {}", path.display()))
    }

    pub fn from_bytes(
        bytes: &[u8],
        source: String,
        kind: BackendKind,
        threads: usize,
    ) -> Result<Self> {
        let (backend, info) = backend::load(kind, bytes, threads)?;
        let model = Self {
            info,
            source,
            bytes_len: bytes.len(),
            backend,
        };
        // One blank image checks that outputs and labels agree before any real input is spent.
        let outputs = model.backend.run_all(&vec![0.0; IMAGE_LEN], 1)?;
        if outputs.len() != 1 + model.info.heads.len() {
            bail!(
                "model has {} outputs but its metadata describes {} (logits and {} extra heads)",
                outputs.len(),
                1 + model.info.heads.len(),
                model.info.heads.len()
            );
        }
        let logits = &outputs[0];
        if logits.len() != model.info.labels.len() {
            bail!(
                "model outputs {} classes but its metadata lists {} labels",
                logits.len(),
                model.info.labels.len()
            );
        }
        for (h, out) in model.info.heads.iter().zip(&outputs[1..]) {
            if out.len() != h.labels.len() {
                bail!(
                    "model head `{}` outputs {} values but its metadata lists {} labels",
                    h.name,
                    out.len(),
                    h.labels.len()
                );
            }
        }
        if outputs.iter().flatten().any(|v| !v.is_finite()) {
            bail!(
                "model gives non-finite outputs (NaN or infinity) on a blank image: its weights \
                 are broken; re-export it"
            );
        }
        Ok(model)
    }

    /// The backend itself: benchmarks time its own batching, which `logits` may split.
    pub fn backend(&self) -> &dyn Backend {
        self.backend.as_ref()
    }

    /// The project's own kernels the backend runs this model with ([`Backend::kernels`]).
    pub fn kernels(&self) -> Option<String> {
        self.backend.kernels()
    }

    pub fn backend_name(&self) -> &'static str {
        self.backend.name()
    }

    pub fn classes(&self) -> usize {
        self.info.labels.len()
    }

    /// Logits for `n` normalised images, in batches the backend runs best.
    pub fn logits(&self, input: &[f32], n: usize) -> Result<Vec<f32>> {
        Ok(self.outputs(input, n)?.swap_remove(0))
    }

    /// Every output (class logits, then each extra head's) for `n` normalised images, in
    /// batches the backend runs best.
    pub fn outputs(&self, input: &[f32], n: usize) -> Result<Vec<Vec<f32>>> {
        debug_assert_eq!(input.len(), n * IMAGE_LEN);
        let max = self.backend.max_batch().max(1);
        if n <= max {
            return self.backend.run_all(input, n);
        }
        let mut out: Vec<Vec<f32>> = vec![vec![]; 1 + self.info.heads.len()];
        for chunk in input.chunks(max * IMAGE_LEN) {
            let part = self.backend.run_all(chunk, chunk.len() / IMAGE_LEN)?;
            if part.len() != out.len() {
                bail!("model gave {} outputs, expected {}", part.len(), out.len());
            }
            for (o, p) in out.iter_mut().zip(part) {
                o.extend(p);
            }
        }
        Ok(out)
    }

    /// Normalises CHW u8 images (as [`preprocess::bytes_to_chw`] gives) into one input batch.
    pub fn batch_input(&self, images: &[&[u8]]) -> Vec<f32> {
        let mut input = vec![0f32; images.len() * IMAGE_LEN];
        for (img, out) in images.iter().zip(input.chunks_mut(IMAGE_LEN)) {
            preprocess::normalize_into(img, &self.info.normalization, out);
        }
        input
    }
}
