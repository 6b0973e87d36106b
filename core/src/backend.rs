//! Inference backends. A backend turns a batch of normalised NCHW images into logits; the rest of
//! the tagger (preprocessing, softmax, labels, output) does not care which one ran.

pub mod tract;

#[cfg(feature = "ort")]
pub mod ort;

use crate::metadata::ModelInfo;
use anyhow::Result;

/// Runs a classifier on a batch.
pub trait Backend: Send + Sync {
    /// Short name reported in outputs (`tract`, `ort`).
    fn name(&self) -> &'static str;
    /// Every output of the model in graph order (`logits` first, then any extra heads), each
    /// `n * outputs` values, for `n` images laid out as `[n, 3, 80, 60]` in `input`.
    fn run_all(&self, input: &[f32], n: usize) -> Result<Vec<Vec<f32>>>;
    /// The first output (the class logits), `n * classes` values.
    fn run(&self, input: &[f32], n: usize) -> Result<Vec<f32>> {
        self.run_all(input, n)?
            .into_iter()
            .next()
            .ok_or_else(|| anyhow::anyhow!("model has no output"))
    }
    /// Largest batch worth sending at once; [`crate::model::Model::logits`] splits bigger ones.
    fn max_batch(&self) -> usize {
        usize::MAX
    }
    /// Which of the project's own kernels the plans built so far run, for benchmarks and logs
    /// (None: only the engine's own).
    fn kernels(&self) -> Option<String> {
        None
    }
}

/// Which backend to load a model with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// tract, pure Rust (default, always available).
    Tract,
    /// onnxruntime through the `ort` crate (cargo feature `ort`, `ORT_DYLIB_PATH` set).
    Ort,
}

impl BackendKind {
    /// Every backend by its command-line and TOML name.
    pub const ALL: [BackendKind; 2] = [BackendKind::Tract, BackendKind::Ort];

    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Tract => "tract",
            BackendKind::Ort => "ort",
        }
    }
}

impl std::str::FromStr for BackendKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| format!("unknown backend `{s}`; use tract or ort"))
    }
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Builds the backend for a model file's bytes, with the file's self-description. tract takes
/// it from the graph it loads (tract keeps the metadata as model properties), so the file is
/// parsed once; onnxruntime gets it from the ONNX metadata first.
pub fn load(
    kind: BackendKind,
    bytes: &[u8],
    threads: usize,
) -> Result<(Box<dyn Backend>, ModelInfo)> {
    match kind {
        BackendKind::Tract => {
            let graph = crate::format::typed_model(bytes)?;
            let info = crate::format::info_from_properties(&graph)?;
            Ok((
                Box::new(tract::TractBackend::from_model(graph, threads)?),
                info,
            ))
        }
        #[cfg(feature = "ort")]
        BackendKind::Ort => {
            let info = crate::format::read_info(bytes)?;
            Ok((Box::new(ort::OrtBackend::new(bytes, threads)?), info))
        }
        #[cfg(not(feature = "ort"))]
        BackendKind::Ort => {
            crate::format::read_info(bytes)?;
            anyhow::bail!(
                "this `tag` was built without onnxruntime support: rebuild with `--features ort` \
                 and set ORT_DYLIB_PATH to libonnxruntime.so"
            )
        }
    }
}
