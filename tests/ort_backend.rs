//! tract and onnxruntime give the same verdicts (cargo feature `ort`). Ignored unless asked for:
//! they need ORT_DYLIB_PATH naming libonnxruntime.so, and fail without it (`.ci/run` runs them
//! with `--ignored`).
#![cfg(feature = "ort")]

use std::path::Path;
use tagger::backend::BackendKind;
use tagger::model::Model;
use tagger::preprocess;

fn require_onnxruntime() {
    assert!(
        std::env::var_os("ORT_DYLIB_PATH").is_some(),
        "set ORT_DYLIB_PATH to libonnxruntime.so (pip install onnxruntime; it is under onnxruntime/capi/)"
    );
}

#[test]
#[ignore = "needs onnxruntime: ORT_DYLIB_PATH=... cargo test --features ort -- --ignored"]
fn ort_and_tract_agree_on_real_photos() {
    require_onnxruntime();
    let tract = tagger::builtin::model(BackendKind::Tract, 1).unwrap();
    let ort = tagger::builtin::model(BackendKind::Ort, 1).unwrap();
    assert_eq!(ort.backend_name(), "ort");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/examples");
    let mut images = vec![];
    for e in std::fs::read_dir(dir).unwrap() {
        images.push(preprocess::file_to_chw(&e.unwrap().path()).unwrap());
    }
    let refs: Vec<&[u8]> = images.iter().map(Vec::as_slice).collect();
    let input = tract.batch_input(&refs);
    for n in [1, refs.len()] {
        let a = tract
            .logits(&input[..n * preprocess::IMAGE_LEN], n)
            .unwrap();
        let b = ort.logits(&input[..n * preprocess::IMAGE_LEN], n).unwrap();
        assert_eq!(a.len(), b.len());
        let diff = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max);
        assert!(diff < 1e-4, "batch {n}: logits differ by {diff}");
    }
}

#[test]
#[ignore = "needs onnxruntime: ORT_DYLIB_PATH=... cargo test --features ort -- --ignored"]
fn ort_and_tract_agree_on_every_head_of_a_multi_head_model() {
    require_onnxruntime();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/multihead.onnx");
    let tract = Model::from_path(&path, BackendKind::Tract, 1).unwrap();
    let ort = Model::from_path(&path, BackendKind::Ort, 1).unwrap();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/examples");
    let images: Vec<Vec<u8>> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| preprocess::file_to_chw(&e.unwrap().path()).unwrap())
        .collect();
    let refs: Vec<&[u8]> = images.iter().map(Vec::as_slice).collect();
    let input = tract.batch_input(&refs);
    let (a, b) = (
        tract.outputs(&input, refs.len()).unwrap(),
        ort.outputs(&input, refs.len()).unwrap(),
    );
    assert_eq!(a.len(), 1 + tract.info.heads.len());
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.len(), y.len());
        let diff = x
            .iter()
            .zip(y)
            .map(|(p, q)| (p - q).abs())
            .fold(0.0, f32::max);
        assert!(diff < 1e-4, "outputs differ by {diff}");
    }
}
