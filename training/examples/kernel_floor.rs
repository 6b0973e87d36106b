//! Writes the "kernel floor" models that `benches/report.sh` times on tract and onnxruntime: one
//! 3x3 conv of 96 -> 128 channels over the whole 80x60 image (1.06 GFLOP, after a cheap 1x1 conv
//! that makes the 96 channels), float and int8. So much work in one conv hides every per-node
//! overhead, so the time per image measures each engine's convolution kernels alone: how fast any
//! network of such convs can run, and how far apart the two engines are at best. Random weights
//! (speed does not depend on them), written by the same exporter and quantizer as the shipped
//! models.
//!
//! `cargo run --release -p training --example kernel_floor -- OUT_DIR`
//! writes OUT_DIR/floor.onnx, floor.int8.onnx and floor.json (its FLOPs).

use anyhow::{Context, Result};
use burn::prelude::*;
use tagger_core::metadata::ModelInfo;
use tagger_core::preprocess::{Normalization, IMAGE_LEN};
use training::model::Arch;
use training::onnx::quantize::{self, Calibration, Int8Form, QuantSettings};
use training::util::write_atomic;

fn main() -> Result<()> {
    let out = std::path::PathBuf::from(std::env::args().nth(1).context("usage: OUT_DIR")?);
    std::fs::create_dir_all(&out)?;
    let arch = Arch::from_layers(
        vec!["96:1".parse().unwrap(), "128".parse().unwrap()],
        0.0,
        13,
    );
    let device = Device::flex();
    let net = training::onnx::export::fold(&arch.init(&device), &arch, &[]);
    let info = ModelInfo {
        labels: (0..13).map(|i| format!("class{i}")).collect(),
        label_column: "subCategory".into(),
        name: "floor".into(),
        version: "1".into(),
        normalization: Normalization::default(),
        quantization: None,
        heads: vec![],
    };
    let float = training::onnx::export::float_model(&net, &info);
    write_atomic(&out.join("floor.onnx"), &training::onnx::encode(&float))?;

    // Calibration on a smooth synthetic image: ranges only have to be plausible for timing.
    let n = 4;
    let images: Vec<f32> = (0..n * IMAGE_LEN)
        .map(|i| ((i % 97) as f32 / 48.0) - 1.0)
        .collect();
    let ranges = quantize::calibrate(&net, &info, &images, n, Calibration::MinMax)?;
    let settings = QuantSettings::new(
        &info,
        Int8Form::Qlinear,
        Calibration::MinMax,
        &ranges,
        n,
        "synthetic".into(),
    );
    let int8 = quantize::int8_bytes(&net, &info, &ranges, &settings)?;
    write_atomic(&out.join("floor.int8.onnx"), &int8)?;
    let card = serde_json::json!({ "flops_per_image": arch.flops(), "layers": arch.describe() });
    write_atomic(&out.join("floor.json"), card.to_string().as_bytes())?;
    eprintln!(
        "wrote {}/floor{{,.int8}}.onnx: {:.0} MFLOP per image",
        out.display(),
        arch.flops() as f64 / 1e6
    );
    Ok(())
}
