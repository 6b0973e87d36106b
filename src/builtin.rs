//! The model compiled into `tag`, so a fresh checkout tags images with no download.

use crate::backend::BackendKind;
use crate::model::Model;
use anyhow::Result;

/// `fast`: the fastest model on tract whose validation accuracy is within one standard error of
/// the best (docs/REPORT.md, README); float rather than int8 because tract runs the int8 graph
/// slower (docs/BENCHMARKS.md).
pub const MODEL_BYTES: &[u8] = include_bytes!("../models/fast.onnx");
/// Where the built-in model came from, for `--version` and outputs.
pub const MODEL_FILE: &str = "models/fast.onnx";

/// The built-in model, loaded into `kind`.
pub fn model(kind: BackendKind, threads: usize) -> Result<Model> {
    Model::from_bytes(MODEL_BYTES, format!("embedded:{MODEL_FILE}"), kind, threads)
}
