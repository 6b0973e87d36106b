//! The model compiled into `tag` (cargo feature `builtin`, on by default), so a fresh checkout
//! tags images with no download. The station binary leaves it out and runs the model file its
//! device config names (docs/speed.md, "The station binary").

use crate::backend::BackendKind;
use crate::model::Model;
use anyhow::Result;

/// `lite0-distilled-112-e16-seed2`: EfficientNet-Lite0 (ImageNet weights) fine-tuned for 16
/// epochs on catalogue photos, station frames, empty belts (`none`) and real-train phone photos,
/// `tag`'s 80x60 input enlarged to 112x84 inside the network, also learning the soft targets of a
/// 224x168 teacher (a frozen backbone's linear head). The one model for the three looks `tag`
/// meets: catalogue photos, station cameras and real photos, where the small CNNs recognise
/// almost no real shoes (docs/models.md). Float: tract runs the int8 forms slower
/// (docs/quantization.md).
#[cfg(feature = "builtin")]
pub const MODEL_BYTES: &[u8] = include_bytes!("../models/lite0-distilled-112-e16-seed2.onnx");
/// Where the built-in model came from, for `--version` and outputs.
pub const MODEL_FILE: &str = "models/lite0-distilled-112-e16-seed2.onnx";

/// The built-in model's bytes, or why this build has none.
pub fn bytes() -> Result<&'static [u8]> {
    #[cfg(feature = "builtin")]
    return Ok(MODEL_BYTES);
    #[cfg(not(feature = "builtin"))]
    anyhow::bail!(
        "this `tag` has no built-in model (built without the `builtin` feature, as the station \
         build is): give --model PATH (a .nnef.tgz file, `tag convert` writes one), or [model] \
         path in the station config"
    )
}

/// The built-in model, loaded into `kind`.
pub fn model(kind: BackendKind, threads: usize) -> Result<Model> {
    Model::from_bytes(bytes()?, format!("embedded:{MODEL_FILE}"), kind, threads)
}
