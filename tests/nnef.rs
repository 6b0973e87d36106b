//! The NNEF form of every shipped model (`tag convert`) describes itself as its ONNX file does
//! and tags the fixture photos with the same labels and confidences, through the real binary.

mod common;

use common::{jsonl, stderr, tag};
use std::path::{Path, PathBuf};

/// Largest confidence difference allowed between a model's ONNX and NNEF forms on a photo.
const TOLERANCE: f64 = 1e-4;

fn shipped_models() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "onnx"))
        .collect();
    v.sort();
    assert!(v.len() >= 10, "models/ lists {} ONNX files", v.len());
    v
}

fn photos() -> Vec<String> {
    ["tests/fixtures/examples", "tests/fixtures/frames"]
        .iter()
        .map(|d| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(d)
                .display()
                .to_string()
        })
        .collect()
}

#[test]
fn every_shipped_model_tags_the_same_as_nnef() {
    let dir = tempfile::tempdir().unwrap();
    for onnx in shipped_models() {
        let name = onnx.file_stem().unwrap().to_string_lossy().into_owned();
        let nnef = dir.path().join(format!("{name}.nnef.tgz"));
        let o = tag(&["convert", onnx.to_str().unwrap(), nnef.to_str().unwrap()]);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        assert_eq!(
            tagger::model::read_info(&std::fs::read(&onnx).unwrap()).unwrap(),
            tagger::model::read_info(&std::fs::read(&nnef).unwrap()).unwrap(),
            "{name}: metadata"
        );
        let run = |model: &Path| {
            let mut args = vec!["--model", model.to_str().unwrap(), "--format", "jsonl"];
            args.extend(["--top-k", "3"]);
            let p = photos();
            args.extend(p.iter().map(String::as_str));
            let o = tag(&args);
            assert!(o.status.success(), "{}: {}", model.display(), stderr(&o));
            jsonl(&o)
        };
        let (a, b) = (run(&onnx), run(&nnef));
        assert!(a.len() >= 20, "{name}: {} results", a.len());
        assert_eq!(a.len(), b.len(), "{name}");
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x["path"], y["path"]);
            assert_eq!(x["label"], y["label"], "{name}: {}", x["path"]);
            for (p, q) in x["top"]
                .as_array()
                .unwrap()
                .iter()
                .zip(y["top"].as_array().unwrap())
            {
                assert_eq!(p["label"], q["label"], "{name}: {}", x["path"]);
                let d = (p["score"].as_f64().unwrap() - q["score"].as_f64().unwrap()).abs();
                assert!(d <= TOLERANCE, "{name}: {} differs by {d}", x["path"]);
            }
        }
    }
}

#[test]
fn convert_refuses_what_it_cannot_convert() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.onnx");
    std::fs::write(&junk, b"not a model").unwrap();
    let o = tag(&["convert", junk.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("junk.onnx"), "{}", stderr(&o));
    assert!(!dir.path().join("junk.nnef.tgz").exists());

    let fast = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/fast.onnx");
    let nnef = dir.path().join("fast.nnef.tgz");
    assert!(
        tag(&["convert", fast.to_str().unwrap(), nnef.to_str().unwrap()])
            .status
            .success()
    );
    let o = tag(&[
        "convert",
        nnef.to_str().unwrap(),
        dir.path().join("again").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("NNEF already"), "{}", stderr(&o));
}
