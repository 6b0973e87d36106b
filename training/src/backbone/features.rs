//! Pooled backbone features of network inputs, computed by tract (several times faster than
//! burn's forward pass on these cores) and cached on disk, so heads train on fixed views of every
//! photo in seconds instead of running the frozen backbone each epoch.

use super::efficientnet::{Lite, FEATURES};
use super::graph::{self, Output};
use crate::util::{progress, write_atomic};
use anyhow::{bail, Context, Result};
use rayon::prelude::*;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use tagger_core::backend::tract::{set_threads, TractBackend};
use tagger_core::backend::Backend;
use tagger_core::metadata::ModelInfo;
use tagger_core::preprocess::{normalize_into, Normalization, HEIGHT, IMAGE_LEN, WIDTH};

/// Images per tract call: small batches on each core beat one big batch here.
const CHUNK: usize = 8;

/// Runs the frozen backbone on network-sized CHW u8 inputs.
pub struct Extractor {
    backend: TractBackend,
    norm: Normalization,
}

impl Extractor {
    /// The backbone enlarging the input to `resize` (h, w) inside the graph.
    pub fn new(lite: &Lite, resize: (usize, usize)) -> Result<Self> {
        let g = graph::graph(
            lite,
            (HEIGHT as usize, WIDTH as usize),
            Some(resize),
            &Output::Features,
        );
        let info = ModelInfo {
            labels: vec!["features".into()],
            label_column: String::new(),
            name: "backbone".into(),
            version: "0".into(),
            normalization: Normalization::default(),
            quantization: None,
            heads: vec![],
        };
        let bytes = crate::onnx::encode(&crate::onnx::model(g, &info));
        // One tract thread per call; rayon spreads the calls over the cores.
        set_threads(1);
        Ok(Self {
            backend: TractBackend::new(&bytes, 1)?,
            norm: Normalization::default(),
        })
    }

    /// Features `[n, 1280]` of `inputs`, with a progress bar named `what`.
    pub fn features<F: AsRef<[u8]> + Sync>(&self, inputs: &[F], what: &str) -> Result<Vec<f32>> {
        let bar = progress(inputs.len() as u64, what);
        // Logs of background runs (nohup) get a line per tenth instead of a bar.
        let log = !std::io::IsTerminal::is_terminal(&std::io::stderr());
        let (started, done) = (std::time::Instant::now(), AtomicUsize::new(0));
        let tenth = inputs.len().div_ceil(10).max(1);
        let parts: Vec<Vec<f32>> = inputs
            .par_chunks(CHUNK)
            .map(|chunk| {
                let mut x = vec![0f32; chunk.len() * IMAGE_LEN];
                for (c, dst) in chunk.iter().zip(x.chunks_mut(IMAGE_LEN)) {
                    normalize_into(c.as_ref(), &self.norm, dst);
                }
                let out = self.backend.run(&x, chunk.len())?;
                bar.inc(chunk.len() as u64);
                let before = done.fetch_add(chunk.len(), Ordering::Relaxed);
                if log && (before + chunk.len()) / tenth > before / tenth {
                    let n = before + chunk.len();
                    let rate = n as f64 / started.elapsed().as_secs_f64();
                    eprintln!("  {what}: {n}/{} ({rate:.0} images/s)", inputs.len());
                }
                Ok(out)
            })
            .collect::<Result<_>>()?;
        bar.finish_and_clear();
        Ok(parts.concat())
    }
}

/// Features of `n` inputs from `path` when it holds exactly that many, else computed by `make`
/// and saved (little-endian f32, atomically) for the next run.
pub fn cached(path: &Path, n: usize, make: impl FnOnce() -> Result<Vec<f32>>) -> Result<Vec<f32>> {
    if let Ok(bytes) = std::fs::read(path) {
        if bytes.len() == n * FEATURES * 4 {
            return Ok(bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect());
        }
        eprintln!("{}: stale feature cache, recomputing", path.display());
    }
    let f = make()?;
    if f.len() != n * FEATURES {
        bail!("backbone gave {} values for {n} inputs", f.len());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let bytes: Vec<u8> = f.iter().flat_map(|v| v.to_le_bytes()).collect();
    write_atomic(path, &bytes)?;
    Ok(f)
}
