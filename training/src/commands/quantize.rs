//! `training quantize`: see [`Args`] for what it does and its options.

use super::open_cache;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use training::data::split::Split;
use training::onnx::quantize::{Calibration, Int8Form};

/// Quantize an exported float model to int8 (QLinearConv), calibrated on training images,
/// then score float and int8 side by side on val and test (into the model card).
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub input: super::DataArgs,
    /// Float ONNX model written by `training export`.
    #[arg(long)]
    pub model: PathBuf,
    /// int8 ONNX to write; default <model>.int8.onnx.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Calibration images, drawn from the training split only.
    #[arg(long, default_value_t = 300)]
    pub calibration_images: usize,
    #[arg(long, value_enum, default_value_t = Calibration::Percentile)]
    pub method: Calibration,
    /// Graph form: QLinearConv (true int8 in tract; <model>.int8.onnx) or QDQ for
    /// onnxruntime (<model>.qdq.onnx).
    #[arg(long, value_enum, default_value_t = Int8Form::Qlinear)]
    pub form: Int8Form,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

pub fn run(args: Args) -> Result<()> {
    let Args {
        input,
        model,
        out,
        calibration_images,
        method,
        form,
        seed,
    } = args;
    let super::DataArgs {
        data,
        split,
        cache_dir,
    } = input;
    quantize_cmd(
        &data,
        &split,
        &model,
        out,
        calibration_images,
        (method, form),
        seed,
        &cache_dir,
    )
}

#[allow(clippy::too_many_arguments)]
fn quantize_cmd(
    data: &Path,
    split_file: &Path,
    model: &Path,
    out: Option<PathBuf>,
    calibration_images: usize,
    (method, form): (Calibration, Int8Form),
    seed: u64,
    cache_dir: &Path,
) -> Result<()> {
    use rand::seq::SliceRandom;
    use rand::SeedableRng;
    use tagger_core::tract_onnx::prelude::Framework;
    let bytes = std::fs::read(model).with_context(|| format!("cannot read {}", model.display()))?;
    let info = tagger_core::model::read_info(&bytes)
        .with_context(|| format!("{} is not a tagger float model", model.display()))?;
    let proto = tagger_core::tract_onnx::onnx()
        .proto_model_for_read(&mut std::io::Cursor::new(&bytes))
        .map_err(|e| anyhow::anyhow!("{}: not an ONNX model: {e}", model.display()))?;
    // One of the plain CNNs, or any other graph of convolutions (the fine-tuned backbone), which
    // only the QDQ form writes (onnx/qdq_graph.rs).
    let net = training::onnx::quantize::folded_from_onnx(&proto).ok();
    let form = if net.is_none() && form == Int8Form::Qlinear {
        eprintln!("{}: not a plain CNN; writing the QDQ form", model.display());
        Int8Form::Qdq
    } else {
        form
    };
    let out = out.unwrap_or_else(|| {
        model.with_extension(match form {
            Int8Form::Qlinear => "int8.onnx",
            Int8Form::Qdq => "qdq.onnx",
        })
    });
    if calibration_images == 0 {
        return Err(training::error::usage(anyhow::anyhow!(
            "the calibration set is empty: pass --calibration-images N with N > 0"
        )));
    }
    let split = Split::load(split_file)?;
    if !info.labels.starts_with(&split.labels) {
        return Err(training::error::data(anyhow::anyhow!(
            "{} was trained on other labels than {}",
            model.display(),
            split_file.display()
        )));
    }
    let cache = open_cache(data, cache_dir, &split)?;
    let mut pool = split.train.clone();
    pool.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
    let catalogue: Vec<&[u8]> = pool
        .iter()
        .filter_map(|e| cache.get(e.0))
        .take(calibration_images)
        .collect();
    // A station model (with a `none` output) sees belts and trays: half of its calibration
    // images are training photos composited by the training scene (and a few empty belts), so
    // the activation ranges cover dark and coloured surfaces, not only catalogue white.
    let station = info.labels.iter().any(|l| l == tagger_core::classify::NONE);
    let rendered: Vec<Vec<u8>> = if station {
        use training::scene::{self as st, mix, Product, Scene};
        let scene = Scene::training();
        catalogue
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 2 == 1)
            .map(|(i, img)| {
                let seed = mix(seed ^ i as u64);
                // One in ten is an empty belt: no product, so no mask to cut.
                let mask = (i % 10 != 1).then(|| training::scene::cutout::product_mask(img));
                let product = mask.as_ref().map(|mask| Product { chw: img, mask });
                st::network_frame(product, &scene, mix(seed ^ 1), seed).to_chw()
            })
            .collect()
    } else {
        vec![]
    };
    let calib: Vec<&[u8]> = catalogue
        .iter()
        .enumerate()
        .filter(|(i, _)| !station || i % 2 == 0)
        .map(|(_, c)| *c)
        .chain(rendered.iter().map(Vec::as_slice))
        .collect();
    let mut input = vec![0f32; calib.len() * tagger_core::preprocess::IMAGE_LEN];
    for (img, o) in calib
        .iter()
        .zip(input.chunks_mut(tagger_core::preprocess::IMAGE_LEN))
    {
        tagger_core::preprocess::normalize_into(img, &info.normalization, o);
    }
    let source = if station {
        format!("training split, seed {seed}: half catalogue, half station frames (training scene, 1 in 10 empty)")
    } else {
        format!("training split, seed {seed}")
    };
    let (q, settings) = match &net {
        Some(net) => {
            let ranges =
                training::onnx::quantize::calibrate(net, &info, &input, calib.len(), method)?;
            let settings = training::onnx::quantize::QuantSettings::new(
                &info,
                form,
                method,
                &ranges,
                calib.len(),
                source,
            );
            let q = training::onnx::quantize::int8_bytes(net, &info, &ranges, &settings)?;
            (q, settings)
        }
        None => {
            use training::onnx::qdq_graph;
            let ranges = qdq_graph::calibrate(&bytes, &input, calib.len(), method)?;
            let settings = training::onnx::quantize::QuantSettings {
                form,
                method,
                calibration_images: calib.len(),
                calibration_source: source,
                weights: "int8 symmetric per output channel".into(),
                activations: "u8 per tensor, asymmetric; ReLU6 as the output quantizer".into(),
                input_scale: 0.0,
                input_zero_point: 0,
                activation_scales: ranges.values().map(|r| (r.1 - r.0) / 255.0).collect(),
            };
            let (q, convs) =
                qdq_graph::qdq_bytes(&bytes, &ranges, &serde_json::to_string(&settings)?)?;
            eprintln!(
                "{convs} convolutions quantized, {} tensors calibrated",
                ranges.len()
            );
            (q, settings)
        }
    };
    // tract must load and run it before it is written.
    tagger_core::model::Model::from_bytes(
        &q,
        out.display().to_string(),
        tagger_core::backend::BackendKind::Tract,
        1,
    )
    .context("tract cannot run the quantized model")?;
    training::util::write_atomic(&out, &q)?;
    eprintln!(
        "wrote {} ({} bytes, float {} bytes)",
        out.display(),
        q.len(),
        bytes.len()
    );
    let cmp = training::eval::compare::float_vs_int8(&bytes, &q, &split, &cache)?;
    cmp.print();
    // The QLinear form is "the" int8 model; the QDQ form gets its own section.
    let section = training::report::card::Int8Section {
        onnx: out
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default(),
        onnx_bytes: q.len(),
        onnx_sha256: training::util::sha256_hex(&q),
        settings,
        comparison: cmp,
        reproduce: format!(
            "cargo run --release -p training -- quantize --data ../shared/data/fashion-product-images-small --split {} --model {} --out {} --calibration-images {} --method {} --form {} --seed {}",
            split_file.display(), model.display(), out.display(), calibration_images,
            match method { Calibration::MinMax => "min-max", Calibration::Percentile => "percentile" },
            match form { Int8Form::Qlinear => "qlinear", Int8Form::Qdq => "qdq" }, seed
        ),
    };
    let updated = training::report::card::update(model, |c| match form {
        Int8Form::Qlinear => c.int8 = Some(section),
        Int8Form::Qdq => c.int8_qdq = Some(section),
    })?;
    if let Some(card) = updated {
        eprintln!("float vs int8 written to {}", card.display());
    }
    Ok(())
}
