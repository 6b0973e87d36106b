//! `training finetune` on fixtures: an exported (and calibrated) classifier reads back into the
//! weights it was written from; a station collection labelled as `tag review` writes it trains
//! the model into a new file with its before/after card; a model that does not meet the
//! catalogue margin is refused and not written. Needs the pretrained weights, like lite.rs.

use std::path::Path;
use std::process::Command;
use tagger_core::collection::Labels;
use training::backbone::efficientnet::Lite;
use training::backbone::trainable::LiteNet;
use training::backbone::{graph, reload, weights};
use training::data::negatives::Negatives;

mod common;
mod fixture;

/// A collection of `photos` (dataset image id, label or None for unlabelled), one second apart.
fn collection(dir: &Path, photos: &[(u64, Option<&str>)]) {
    let mut labels = Labels::load(dir).unwrap();
    for (i, (id, label)) in photos.iter().enumerate() {
        let item_id = format!("20261207T1000{i:02}.000Z-{i:09}");
        let item = dir.join("items").join(&item_id);
        std::fs::create_dir_all(&item).unwrap();
        std::fs::copy(
            fixture::fixture().join("images").join(format!("{id}.jpg")),
            item.join("crop.jpg"),
        )
        .unwrap();
        let time = format!("2026-12-07T10:00:{i:02}.000Z");
        std::fs::write(
            item.join("item.json"),
            serde_json::json!({"id": item_id, "time": time}).to_string(),
        )
        .unwrap();
        if let Some(l) = label {
            labels.decide(&item_id, l, &time).unwrap();
        }
    }
}

#[test]
fn finetune_trains_on_a_labelled_collection_and_refuses_a_model_below_the_margin() {
    let Some(weights_path) = common::pretrained_path() else {
        return;
    };
    let lite = Lite::from_state_dict(&weights::StateDict::load(&weights_path).unwrap()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let s = fixture::split();
    let split_path = tmp.path().join("split.json");
    s.save(&split_path).unwrap();
    let neg_path = tmp.path().join("negatives.json");
    // The fixture split keeps every class: no other kinds.
    Negatives {
        split_sha256: training::util::sha256_hex(&std::fs::read(&split_path).unwrap()),
        seed: 1,
        kinds: vec![],
        shared_with_split: 0,
        train: vec![],
        val: vec![],
        test: vec![],
    }
    .save(&neg_path)
    .unwrap();
    let mut labels = s.labels.clone();
    labels.push("none".into());

    // The source: the pretrained backbone, a fresh head, calibrated at T = 2.
    let net = LiteNet::new(
        &lite,
        (80, 60),
        Some((96, 72)),
        labels.len(),
        None,
        0.0,
        &burn::prelude::Device::flex(),
    );
    let (hw, hb) = net.head();
    let plain = graph::classifier_bytes(
        &lite,
        Some((96, 72)),
        (&hw, &hb),
        "fixture",
        &labels,
        &s.label_column,
    );
    let bytes = training::onnx::temperature::apply(&plain, 2.0).unwrap();
    let back = reload::classifier(&bytes, &lite).unwrap();
    assert_eq!(back.temperature, Some(2.0));
    assert_eq!(back.resize, Some((96, 72)));
    assert_eq!(back.info.labels, labels);
    let worst = back
        .head
        .0
        .iter()
        .zip(&hw)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(worst < 1e-5, "the temperature is undone ({worst})");
    assert_eq!(back.lite.blocks[7].depthwise.w, lite.blocks[7].depthwise.w);
    assert!(reload::classifier(
        &std::fs::read(common::root().join("models/robust.onnx")).unwrap(),
        &lite
    )
    .is_err());
    let source = tmp.path().join("source.onnx");
    std::fs::write(&source, &bytes).unwrap();

    // Ten labelled crops of test photos (one not a class of the model), two unlabelled.
    let coll = tmp.path().join("collection");
    let mut photos: Vec<(u64, Option<&str>)> = s
        .test
        .iter()
        .take(10)
        .map(|&(id, c)| (id, Some(s.labels[c].as_str())))
        .collect();
    photos[3].1 = Some("Umbrellas");
    photos.push((s.val[0].0, None));
    photos.push((s.val[1].0, None));
    collection(&coll, &photos);

    let finetune = |out: &Path, run: &str, photos: &Path, extra: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_training"));
        c.env(weights::ENV, &weights_path).args([
            "finetune",
            "--data",
            fixture::fixture().to_str().unwrap(),
            "--split",
            split_path.to_str().unwrap(),
            "--negatives",
            neg_path.to_str().unwrap(),
            "--cache-dir",
            tmp.path().join("cache").to_str().unwrap(),
            "--from",
            source.to_str().unwrap(),
            "--photos",
            photos.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--run",
            tmp.path().join(run).to_str().unwrap(),
            "--epochs",
            "1",
            "--epoch-size",
            "16",
            "--batch-size",
            "8",
            "--val-photos",
            "4",
            "--check-photos",
            "0",
            "--empties",
            "4",
        ]);
        c.args(extra).output().unwrap()
    };
    let out = tmp.path().join("station.onnx");
    let o = finetune(&out, "run", &coll, &["--allow-worse"]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(stderr.contains("| catalogue (test) |"), "{stderr}");
    let m = tagger_core::model::Model::from_path(&out, tagger_core::backend::BackendKind::Tract, 1)
        .unwrap();
    assert_eq!(m.info.labels, labels);
    assert_eq!(m.info.name, "fixture-ft");
    let card: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.with_extension("finetune.json")).unwrap())
            .unwrap();
    assert_eq!(card["photos"]["layout"], "collection");
    assert_eq!(
        card["photos"]["train"], 7,
        "9 usable, the latest 2 validate"
    );
    assert_eq!(card["photos"]["val"], 2);
    assert_eq!(card["photos"]["left_out"].as_array().unwrap().len(), 1);
    assert_eq!(card["from"]["temperature"], 2.0);
    assert_eq!(card["state"]["epochs_done"], 1);
    assert!(card["state"]["history"][0]["photos_val"].is_number());
    for side in ["before", "after"] {
        assert_eq!(card[side]["photos_val"]["photos"], 2);
        assert_eq!(card[side]["station_test"]["images"], s.test.len());
    }
    let drop = card["before"]["station_test"]["catalogue"]
        .as_f64()
        .unwrap()
        - card["after"]["station_test"]["catalogue"].as_f64().unwrap();
    assert_eq!(card["allowed_worse"], drop * 100.0 > 1.0);

    // Asked for a gain no model can make: refused, exit 1, nothing written.
    let refused = tmp.path().join("refused.onnx");
    let o = finetune(&refused, "run2", &coll, &["--max-catalogue-drop=-101"]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--allow-worse"), "{stderr}");
    assert!(!refused.exists() && !refused.with_extension("finetune.json").exists());

    // Not a collection: a clear error, exit 2.
    let o = finetune(&tmp.path().join("x.onnx"), "run3", tmp.path(), &[]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("neither a collection"), "{stderr}");
}
