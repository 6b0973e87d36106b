//! A warning when a model runs in a form that is slower than its alternative here.
//!
//! tract 0.23.9 lowers a quantized convolution to a materialised im2col and a requantisation pass
//! outside its int8 matmul kernels: every int8 model measured runs slower than its float form on
//! tract, on an AVX-512 VNNI CPU as on AVX2-only ones (up to 70x there), while onnxruntime runs
//! int8 faster (docs/BENCHMARKS.md, docs/quantization.md). So an int8 model on tract is worth a
//! line on stderr naming the faster choice; whether it is slower is measured by `tag bench`.

use crate::model::Model;

/// The warning for `model`, if it is an int8 model run by tract.
pub fn slow_form(model: &Model) -> Option<String> {
    if model.info.quantization.is_none() || model.backend_name() != "tract" {
        return None;
    }
    let float = model
        .source
        .strip_suffix(".int8.onnx")
        .or_else(|| model.source.strip_suffix(".qdq.onnx"))
        .map(|stem| format!("{stem}.onnx"))
        .filter(|f| std::path::Path::new(f).is_file())
        .unwrap_or_else(|| "its float model".into());
    Some(format!(
        "{} is an int8 model: tract runs int8 convolutions slower than float on every CPU \
         measured (docs/BENCHMARKS.md); use {float}, or `--backend ort` where onnxruntime is \
         installed (`tag bench` compares them here)",
        model.source
    ))
}
