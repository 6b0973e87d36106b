//! onnxruntime backend (cargo feature `ort`), for comparison with tract and for devices where
//! onnxruntime is already installed. The library is loaded at run time from `ORT_DYLIB_PATH`
//! (e.g. `onnxruntime/capi/libonnxruntime.so.*` from the PyPI wheel): nothing is downloaded.

use super::Backend;
use crate::preprocess::{CHANNELS, HEIGHT, WIDTH};
use anyhow::{anyhow, Result};
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::TensorRef;
use std::sync::{Mutex, OnceLock};

static ENV: OnceLock<Result<ort::environment::Environment, String>> = OnceLock::new();

fn environment() -> Result<&'static ort::environment::Environment> {
    ENV.get_or_init(|| {
        let path = std::env::var_os("ORT_DYLIB_PATH").ok_or_else(|| {
            "ORT_DYLIB_PATH is not set: point it at libonnxruntime.so (pip install onnxruntime; \
             the library is under onnxruntime/capi/)"
                .to_string()
        })?;
        ort::init_from(&path)
            .map_err(|e| {
                format!(
                    "cannot load onnxruntime from {}: {e}",
                    path.to_string_lossy()
                )
            })?
            .with_name("fashion-tagger")
            .build()
            .map_err(|e| format!("onnxruntime failed to start: {e}"))
    })
    .as_ref()
    .map_err(|e| anyhow!("{e}"))
}

pub struct OrtBackend {
    session: Mutex<Session>,
}

impl OrtBackend {
    pub fn new(onnx: &[u8], threads: usize) -> Result<Self> {
        if crate::format::Format::sniff(onnx) == crate::format::Format::Nnef {
            anyhow::bail!(
                "onnxruntime reads ONNX models only and this one is NNEF: give its .onnx file, \
                 or run this one with --backend tract"
            );
        }
        let env = environment()?;
        let session = Session::builder(env)
            .and_then(|b| Ok(b.with_optimization_level(GraphOptimizationLevel::Level3)?))
            .and_then(|b| Ok(b.with_intra_threads(threads.max(1))?))
            .and_then(|mut b| b.commit_from_memory(onnx))
            .map_err(|e| anyhow!("onnxruntime cannot load the model: {e}"))?;
        Ok(Self {
            session: Mutex::new(session),
        })
    }
}

impl Backend for OrtBackend {
    fn name(&self) -> &'static str {
        "ort"
    }

    fn run_all(&self, input: &[f32], n: usize) -> Result<Vec<Vec<f32>>> {
        let shape = [n, CHANNELS, HEIGHT as usize, WIDTH as usize];
        let tensor = TensorRef::from_array_view((shape, input))
            .map_err(|e| anyhow!("bad input batch: {e}"))?;
        let mut session = self
            .session
            .lock()
            .map_err(|_| anyhow!("session poisoned"))?;
        let outputs = session
            .run(ort::inputs![tensor])
            .map_err(|e| anyhow!("onnxruntime inference failed: {e}"))?;
        (0..outputs.len())
            .map(|i| {
                let (_, values) = outputs[i]
                    .try_extract_tensor::<f32>()
                    .map_err(|e| anyhow!("model output {i} is not f32 logits: {e}"))?;
                Ok(values.to_vec())
            })
            .collect()
    }
}
