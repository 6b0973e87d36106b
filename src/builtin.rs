//! The model compiled into `tag`, so a fresh checkout tags images with no download.

use crate::backend::BackendKind;
use crate::model::Model;
use anyhow::Result;

/// `lite0-distilled-112`: EfficientNet-Lite0 (ImageNet weights) fine-tuned on catalogue photos,
/// station frames, empty belts (`none`) and real-train phone photos, `tag`'s 80x60 input enlarged
/// to 112x84 inside the network, also learning the soft targets of a 224x168 teacher (a frozen
/// backbone's linear head). The one
/// model for the three looks `tag` meets: catalogue photos, station cameras and real photos,
/// where the small CNNs recognise almost no real shoes (docs/models.md). Float: tract runs the
/// int8 forms slower (docs/quantization.md).
pub const MODEL_BYTES: &[u8] = include_bytes!("../models/lite0-distilled-112.onnx");
/// Where the built-in model came from, for `--version` and outputs.
pub const MODEL_FILE: &str = "models/lite0-distilled-112.onnx";

/// The built-in model, loaded into `kind`.
pub fn model(kind: BackendKind, threads: usize) -> Result<Model> {
    Model::from_bytes(MODEL_BYTES, format!("embedded:{MODEL_FILE}"), kind, threads)
}
