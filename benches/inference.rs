//! Inference latency of every shipped model, float and int8 (QLinear and QDQ forms), on tract and onnxruntime, with 1 and
//! 2 threads, at batch 1 and 32; and one camera frame end to end (decode, ROI, preprocess,
//! inference, verdict). Ids: `<backend>/<model>/<f32|int8|qdq>/t<threads>/b<batch>`.
//!
//! onnxruntime runs when this is built with `--features ort` and ORT_DYLIB_PATH names
//! libonnxruntime.so; otherwise those benches are skipped with a message.
//! Select models with BENCH_MODELS=baseline,tuned (default: every models/*.onnx float model).
//! With BENCH_FLOOR_DIR set (written by `training --example kernel_floor`), the "kernel floor"
//! models are timed too (ids `floor/<backend>/<f32|int8>`): one 1-GFLOP conv, the engines'
//! convolution speed without per-node overheads.
//! `benches/report.sh` runs these and writes docs/BENCHMARKS.md.

mod common;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use std::time::Duration;
use tagger::backend::BackendKind;
use tagger::model::Model;
use tagger::preprocess::{self, IMAGE_LEN};
use tagger::tract_onnx::prelude::*;

fn models() -> Vec<String> {
    let wanted = std::env::var("BENCH_MODELS").ok();
    let mut names: Vec<String> = std::fs::read_dir("models")
        .expect("models/ (run from the repository root)")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|f| f.strip_suffix(".onnx").map(str::to_string))
        .filter(|n| !n.ends_with(".int8") && !n.ends_with(".qdq"))
        .filter(|n| wanted.as_ref().is_none_or(|w| w.split(',').any(|x| x == n)))
        .collect();
    names.sort();
    names
}

fn backends() -> Vec<BackendKind> {
    let mut b = vec![BackendKind::Tract];
    if cfg!(feature = "ort") && std::env::var_os("ORT_DYLIB_PATH").is_some() {
        b.push(BackendKind::Ort);
    } else {
        eprintln!(
            "onnxruntime benches skipped: build with `--features ort` and set ORT_DYLIB_PATH to \
             libonnxruntime.so (e.g. from `pip install onnxruntime`)"
        );
    }
    b
}

fn inference(c: &mut Criterion) {
    let mut g = c.benchmark_group("inference");
    for backend in backends() {
        for name in models() {
            for (form, file) in [
                ("f32", format!("models/{name}.onnx")),
                ("int8", format!("models/{name}.int8.onnx")),
                ("qdq", format!("models/{name}.qdq.onnx")),
            ] {
                if !std::path::Path::new(&file).exists() {
                    continue;
                }
                for threads in [1, 2] {
                    let model = Model::from_path(file.as_ref(), backend, threads)
                        .unwrap_or_else(|e| panic!("{file}: {e:#}"));
                    for batch in [1usize, 32] {
                        let input = vec![0.1f32; batch * IMAGE_LEN];
                        g.throughput(Throughput::Elements(batch as u64));
                        let id = format!("{backend}/{name}/{form}/t{threads}/b{batch}");
                        // tract's matmul executor is process-wide: set it for this bench.
                        tagger::backend::tract::set_threads(threads);
                        g.bench_function(BenchmarkId::from_parameter(id), |b| {
                            // The backend's own batch (Model::logits would split it).
                            b.iter(|| model.backend().run(black_box(&input), batch).unwrap())
                        });
                    }
                }
            }
        }
    }
    g.finish();
}

fn floor(c: &mut Criterion) {
    let Some(dir) = std::env::var_os("BENCH_FLOOR_DIR") else {
        eprintln!("kernel floor skipped: set BENCH_FLOOR_DIR (benches/report.sh does)");
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    let mut g = c.benchmark_group("floor");
    g.throughput(Throughput::Elements(1));
    tagger::backend::tract::set_threads(1);
    for backend in backends() {
        for (form, file) in [("f32", "floor.onnx"), ("int8", "floor.int8.onnx")] {
            let path = dir.join(file);
            let model = Model::from_path(&path, backend, 1)
                .unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
            let input = vec![0.1f32; IMAGE_LEN];
            g.bench_function(format!("{backend}/{form}"), |b| {
                b.iter(|| model.backend().run(black_box(&input), 1).unwrap())
            });
        }
    }
    g.finish();
}

fn end_to_end(c: &mut Criterion) {
    let jpeg = common::camera_jpeg();
    let model = tagger::builtin::model(BackendKind::Tract, 1).unwrap();
    tagger::backend::tract::set_threads(1);
    let roi = preprocess::Roi::centre(0.8);
    let norm = model.info.normalization;
    let mut g = c.benchmark_group("frame");
    g.throughput(Throughput::Elements(1));
    g.bench_function("tract/builtin/640x480_jpeg_to_verdict", |b| {
        b.iter(|| {
            let img = preprocess::decode(black_box(&jpeg), "frame").unwrap();
            let chw = preprocess::to_chw_u8(&preprocess::fit(&roi.crop(&img)));
            let input = preprocess::normalize(&chw, &norm);
            let logits = model.logits(&input, 1).unwrap();
            tagger::classify::verdict(&logits, &model.info.labels, 1, 0.6)
        })
    });
    // The older path, in the same run: image's generic crop (pixel by pixel) and
    // Triangle resize, then the same padding, normalisation and model.
    g.bench_function("tract/builtin/640x480_jpeg_to_verdict_image_resize", |b| {
        b.iter(|| {
            let img = preprocess::decode(black_box(&jpeg), "frame").unwrap();
            let (x, y, w, h) = roi.pixels(img.width(), img.height());
            let crop = img.crop_imm(x, y, w, h).to_rgb8();
            let scale = f64::min(
                preprocess::WIDTH as f64 / w as f64,
                preprocess::HEIGHT as f64 / h as f64,
            );
            let (fw, fh) = (
                (w as f64 * scale).round() as u32,
                (h as f64 * scale).round() as u32,
            );
            let small =
                image::imageops::resize(&crop, fw, fh, image::imageops::FilterType::Triangle);
            let mut canvas = image::RgbImage::from_pixel(
                preprocess::WIDTH,
                preprocess::HEIGHT,
                image::Rgb([255; 3]),
            );
            image::imageops::overlay(
                &mut canvas,
                &small,
                ((preprocess::WIDTH - fw) / 2) as i64,
                ((preprocess::HEIGHT - fh) / 2) as i64,
            );
            let input = preprocess::normalize(&preprocess::to_chw_u8(&canvas), &norm);
            let logits = model.logits(&input, 1).unwrap();
            tagger::classify::verdict(&logits, &model.info.labels, 1, 0.6)
        })
    });
    // The stages, one at a time.
    let img = preprocess::decode(&jpeg, "frame").unwrap();
    let fitted = preprocess::fit(&roi.crop(&img));
    let input = preprocess::normalize(&preprocess::to_chw_u8(&fitted), &norm);
    g.bench_function("stage/decode", |b| {
        b.iter(|| preprocess::decode(black_box(&jpeg), "frame").unwrap())
    });
    g.bench_function("stage/crop_fit", |b| {
        b.iter(|| preprocess::fit(&roi.crop(black_box(&img))))
    });
    g.bench_function("stage/normalise", |b| {
        b.iter(|| preprocess::normalize(&preprocess::to_chw_u8(black_box(&fitted)), &norm))
    });
    g.bench_function("stage/inference", |b| {
        b.iter(|| model.logits(black_box(&input), 1).unwrap())
    });
    // A V4L2 YUYV frame: only the ROI is converted (the whole frame only for an overlay).
    let yuyv: Vec<u8> = (0..640 * 480 * 2).map(|i| (i * 31 % 251) as u8).collect();
    let yuyv = tagger::watch::yuyv::YuyvFrame::new(yuyv, 640, 480, 1280).unwrap();
    let (x, y, w, h) = roi.pixels(640, 480);
    g.bench_function("stage/yuyv_roi", |b| {
        b.iter(|| black_box(&yuyv).region_to_rgb(x, y, w, h))
    });
    g.bench_function("stage/yuyv_whole", |b| b.iter(|| black_box(&yuyv).to_rgb()));
    g.finish();
}

/// The machine's practical f32 peak through tract's own kernels: a 512x512x512 matmul, the
/// densest work tract does. Model FLOPs / this = the fastest a model could possibly run.
fn peak(c: &mut Criterion) {
    let n = 512;
    let mut m = TypedModel::default();
    let a = m.add_source("a", f32::fact([n, n])).unwrap();
    let b = m.add_source("b", f32::fact([n, n])).unwrap();
    let out = m
        .wire_node(
            "gemm",
            tagger::tract_onnx::tract_core::ops::einsum::EinSum::new(
                "mk,kn->mn".parse().unwrap(),
                f32::datum_type(),
            ),
            &[a, b],
        )
        .unwrap();
    m.select_output_outlets(&out).unwrap();
    let plan = m.into_optimized().unwrap().into_runnable().unwrap();
    let x: TValue = Tensor::from(tract_ndarray::Array2::<f32>::from_elem((n, n), 0.5)).into();
    let mut g = c.benchmark_group("peak");
    g.throughput(Throughput::Elements((2 * n * n * n) as u64));
    for threads in [1, 2] {
        tagger::backend::tract::set_threads(threads);
        g.bench_function(format!("tract_matmul_512/t{threads}"), |bch| {
            bch.iter(|| plan.run(tvec![x.clone(), x.clone()]).unwrap())
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_millis(1500));
    targets = peak, floor, inference, end_to_end
}
criterion_main!(benches);
